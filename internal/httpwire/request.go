package httpwire

import (
	"bytes"
	"errors"
)

// Request validation. fasthttp is a lenient parser; a proxy must not be, because any
// message that two parsers could frame differently is a smuggling vector (RFC 9112
// §6.3, §11.2). fasthttp already refuses some of these (duplicate Content-Length,
// whitespace before a colon, Transfer-Encoding in HTTP/1.0); we check everything
// again on the exact wire bytes it keeps (RequestHeader.RawHeaders), so the guarantee
// does not depend on the library's version. Every check is a single pass over bytes
// already in memory and allocates nothing.

// Errors of ValidateRequestLine and ValidateHeaders. The proxy answers each with
// 400 and closes the connection.
var (
	ErrBadRequestLine   = errors.New("httpwire: malformed request line")
	ErrBadTarget        = errors.New("httpwire: request target must be origin-form")
	ErrBadVersion       = errors.New("httpwire: unsupported HTTP version")
	ErrBadHeaderLine    = errors.New("httpwire: malformed header line")
	ErrObsFold          = errors.New("httpwire: obsolete line folding")
	ErrBadHeaderName    = errors.New("httpwire: invalid header name")
	ErrBadHeaderValue   = errors.New("httpwire: invalid header value")
	ErrBadContentLength = errors.New("httpwire: invalid or repeated Content-Length")
	ErrBadTransferEnc   = errors.New("httpwire: unsupported Transfer-Encoding")
	ErrAmbiguousLength  = errors.New("httpwire: both Content-Length and Transfer-Encoding")
	ErrBadHost          = errors.New("httpwire: missing, repeated or invalid Host")
)

// ValidateRequestLine checks method, target and version as fasthttp split them.
// The target must be origin-form ("/path?query"), absolute-form with an http or
// https scheme ("http://host/path", which every HTTP/1.1 server must accept, RFC
// 9112 §3.2.2; the proxy turns it into origin-form and its authority into the Host),
// or "*" for OPTIONS. Authority-form (CONNECT) is not proxied.
func ValidateRequestLine(method, target, proto []byte) error {
	if len(method) == 0 {
		return ErrBadRequestLine
	}
	for _, c := range method {
		if !IsTokenChar(c) {
			return ErrBadRequestLine
		}
	}
	if len(target) == 0 || string(method) == "CONNECT" {
		// CONNECT's target is an authority (RFC 9110 §9.3.6), never a
		// path: it is not proxied, whatever its target says.
		return ErrBadTarget
	}
	if target[0] != '/' {
		if len(target) == 1 && target[0] == '*' && string(method) == "OPTIONS" {
			return nil
		}
		if _, _, err := SplitAbsolute(target); err != nil {
			return err
		}
	}
	for _, c := range target {
		// Visible ASCII only: no spaces, controls, raw UTF-8 or fragments.
		if c <= 0x20 || c >= 0x7f || c == '#' {
			return ErrBadTarget
		}
	}
	if !ValidVersion(proto) {
		return ErrBadVersion
	}
	return nil
}

// SplitAbsolute splits an absolute-form target, "http://authority/path?query"
// (scheme in any case, http or https only), into its authority and the rest, the
// origin-form without its leading "/" when the path is empty. The authority must
// be a valid Host (ValidHost): userinfo is refused (RFC 9110 §4.2.4), as is an
// empty one.
func SplitAbsolute(target []byte) (authority, rest []byte, err error) {
	i := 0
	for i < len(target) && target[i] != ':' {
		i++
	}
	scheme := target[:i]
	if !EqualFold(scheme, "http") && !EqualFold(scheme, "https") {
		return nil, nil, ErrBadTarget
	}
	if len(target) < i+3 || string(target[i:i+3]) != "://" {
		return nil, nil, ErrBadTarget
	}
	target = target[i+3:]
	j := 0
	for j < len(target) && target[j] != '/' && target[j] != '?' {
		j++
	}
	authority, rest = target[:j], target[j:]
	if !ValidHost(authority) {
		return nil, nil, ErrBadHost
	}
	return authority, rest, nil
}

// RequestHead is what ValidateHeaders learns about the message while checking it.
type RequestHead struct {
	Chunked       bool  // Transfer-Encoding: chunked
	ContentLength bool  // a Content-Length field
	Length        int64 // the declared Content-Length, when ContentLength
	Fields        int   // header lines
	Upgrade       bool  // a WebSocket upgrade: a Connection: upgrade token and Upgrade: websocket
	hosts         int
	connUpgrade   bool
	websocket     bool
}

// ValidateHeaders checks the raw header block (each line "name: value\r\n", ending
// with an empty line) strictly: CRLF line endings only, no obs-fold, token names
// with the colon right after them, values free of CTLs, at most one Content-Length
// of digits only, Transfer-Encoding exactly "chunked" and never beside
// Content-Length or in HTTP/1.0, and exactly one Host in HTTP/1.1.
func ValidateHeaders(raw []byte, http11 bool) (RequestHead, error) {
	var f RequestHead
	i := 0
	for i < len(raw) {
		// Find the end of the line; it must be CRLF.
		j := i
		for j < len(raw) && raw[j] != '\n' {
			j++
		}
		if j == len(raw) || j == i || raw[j-1] != '\r' {
			return f, ErrBadHeaderLine
		}
		line := raw[i : j-1]
		i = j + 1
		if len(line) == 0 {
			// The empty line ends the block; nothing may follow it here.
			if i != len(raw) {
				return f, ErrBadHeaderLine
			}
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return f, ErrObsFold
		}
		f.Fields++
		colon := 0
		for colon < len(line) && line[colon] != ':' {
			if !IsTokenChar(line[colon]) {
				return f, ErrBadHeaderName
			}
			colon++
		}
		if colon == 0 || colon == len(line) {
			return f, ErrBadHeaderName
		}
		name, value := line[:colon], TrimOWS(line[colon+1:])
		for _, c := range value {
			if (c < 0x20 && c != '\t') || c == 0x7f {
				return f, ErrBadHeaderValue
			}
		}
		switch {
		case EqualFold(name, "content-length"):
			n, ok := ParseContentLength(value)
			if f.ContentLength || !ok {
				return f, ErrBadContentLength
			}
			f.Length, f.ContentLength = n, true
		case EqualFold(name, "transfer-encoding"):
			if f.Chunked || !http11 || !EqualFold(value, "chunked") {
				return f, ErrBadTransferEnc
			}
			f.Chunked = true
		case EqualFold(name, "host"):
			f.hosts++
			if !ValidHost(value) {
				return f, ErrBadHost
			}
		case EqualFold(name, "connection"):
			if HasToken(value, "upgrade") {
				f.connUpgrade = true
			}
			if HasToken(value, "host") {
				// The Host line would be removed as hop-by-hop: the
				// backend would answer from its default virtual host,
				// not the one floodgate routed on.
				return f, ErrBadHeaderValue
			}
		case (name[0]|0x20) == 'x' && isForwardedAlias(name):
			// X_Forwarded_For and the like: CGI-style backends (PHP, WSGI,
			// Rack) read them as the X-Forwarded-* fields floodgate writes,
			// so a client could set its own address or scheme past them.
			return f, ErrBadHeaderName
		case (name[0]|0x20) == 'x' && (EqualFoldDash(name, "x-original-url") || EqualFoldDash(name, "x-rewrite-url")):
			// Backends that take the path from these (Symfony before
			// 3.4.14, Zend: CVE-2018-14773) would serve another path
			// than the one routed, past its route's allow list.
			return f, ErrBadHeaderName
		case EqualFold(name, "upgrade"):
			// Only WebSocket is tunnelled. Any other upgrade (h2c above all) is
			// dropped with the hop-by-hop fields, and the request forwarded as
			// plain HTTP/1.1: a backend that switched to h2c behind floodgate
			// would take requests that never went through its routing.
			// Only "websocket" alone: beside another protocol ("websocket,
			// h2c") the backend would be free to switch to that one.
			if EqualFold(value, "websocket") {
				f.websocket = true
			}
		}
	}
	if f.Chunked && f.ContentLength {
		return f, ErrAmbiguousLength
	}
	if f.hosts > 1 || (http11 && f.hosts == 0) {
		return f, ErrBadHost
	}
	f.Upgrade = f.connUpgrade && f.websocket
	return f, nil
}

// isForwardedAlias reports whether name is X-Forwarded-For, -Proto or -Host
// spelled with at least one underscore for a dash.
func isForwardedAlias(name []byte) bool {
	if len(name) < 15 || len(name) > 17 || bytes.IndexByte(name, '_') < 0 {
		return false
	}
	return EqualFoldDash(name, "x-forwarded-for") || EqualFoldDash(name, "x-forwarded-proto") || EqualFoldDash(name, "x-forwarded-host")
}

// ValidHost accepts uri-host [":" port] (RFC 9110 §7.2): reg-name characters, an
// IPv6 literal in brackets, and a numeric port. It refuses userinfo, paths and
// whitespace, which some backends would read as a different authority.
func ValidHost(h []byte) bool {
	if len(h) == 0 || len(h) > 255 {
		return false
	}
	i := 0
	if h[0] == '[' {
		for i < len(h) && h[i] != ']' {
			c := h[i]
			if !(c == '[' || c == ':' || c == '.' || IsHex(c)) {
				return false
			}
			i++
		}
		if i == len(h) {
			return false
		}
		i++
	} else {
		for i < len(h) && h[i] != ':' {
			c := h[i]
			if c == '.' && (i == 0 || h[i-1] == '.') {
				// An empty label (".a", "a..b", "a.."): backends trim or
				// split it differently from the router (one trailing
				// dot, "a.", is the same host as "a" and is allowed).
				return false
			}
			if !(isAlnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '%' ||
				c == '!' || c == '$' || c == '&' || c == '\'' || c == '(' || c == ')' ||
				c == '*' || c == '+' || c == ',' || c == ';' || c == '=') {
				return false
			}
			i++
		}
	}
	if i < len(h) {
		if h[i] != ':' {
			return false
		}
		for _, c := range h[i+1:] {
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	return true
}
