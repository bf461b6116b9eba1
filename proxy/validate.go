package proxy

import "errors"

// Request validation. fasthttp is a lenient parser; a proxy must not be, because any
// message that two parsers could frame differently is a smuggling vector (RFC 9112
// §6.3, §11.2). fasthttp already refuses some of these (duplicate Content-Length,
// whitespace before a colon, Transfer-Encoding in HTTP/1.0); we check everything
// again on the exact wire bytes it keeps (RequestHeader.RawHeaders), so the guarantee
// does not depend on the library's version. Every check is a single pass over bytes
// already in memory and allocates nothing.

// Errors returned by validateRequest. Each maps to 400 and a closed connection.
var (
	ErrBadRequestLine   = errors.New("proxy: malformed request line")
	ErrBadTarget        = errors.New("proxy: request target must be origin-form")
	ErrBadVersion       = errors.New("proxy: unsupported HTTP version")
	ErrBadHeaderLine    = errors.New("proxy: malformed header line")
	ErrObsFold          = errors.New("proxy: obsolete line folding")
	ErrBadHeaderName    = errors.New("proxy: invalid header name")
	ErrBadHeaderValue   = errors.New("proxy: invalid header value")
	ErrBadContentLength = errors.New("proxy: invalid or repeated Content-Length")
	ErrBadTransferEnc   = errors.New("proxy: unsupported Transfer-Encoding")
	ErrAmbiguousLength  = errors.New("proxy: both Content-Length and Transfer-Encoding")
	ErrBadHost          = errors.New("proxy: missing, repeated or invalid Host")
)

// tchar from RFC 9110 §5.6.2.
var isTokenChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// validateRequestLine checks method, target and version as fasthttp split them.
// The target must be origin-form ("/path?query") or "*" for OPTIONS: absolute-form
// is refused so that the Host header is the only authority the backend can see, and
// authority-form (CONNECT) is not proxied.
func validateRequestLine(method, target, proto []byte) error {
	if len(method) == 0 {
		return ErrBadRequestLine
	}
	for _, c := range method {
		if !isTokenChar[c] {
			return ErrBadRequestLine
		}
	}
	if len(target) == 0 {
		return ErrBadTarget
	}
	if target[0] != '/' {
		if len(target) == 1 && target[0] == '*' && string(method) == "OPTIONS" {
			return nil
		}
		return ErrBadTarget
	}
	for _, c := range target {
		// Visible ASCII only: no spaces, controls, raw UTF-8 or fragments.
		if c <= 0x20 || c >= 0x7f || c == '#' {
			return ErrBadTarget
		}
	}
	if string(proto) != "HTTP/1.1" && string(proto) != "HTTP/1.0" {
		return ErrBadVersion
	}
	return nil
}

// framing is what validateHeaders learns about the message while checking it.
type framing struct {
	chunked       bool
	contentLength bool
	host          int
	upgrade       bool // a Connection: upgrade token and an Upgrade header
	connUpgrade   bool
	hasUpgradeHdr bool
}

// validateHeaders checks the raw header block (each line "name: value\r\n", ending
// with an empty line) strictly: CRLF line endings only, no obs-fold, token names
// with the colon right after them, values free of CTLs, at most one Content-Length
// of digits only, Transfer-Encoding exactly "chunked" and never beside
// Content-Length or in HTTP/1.0, and exactly one Host in HTTP/1.1.
func validateHeaders(raw []byte, http11 bool) (framing, error) {
	var f framing
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
		colon := 0
		for colon < len(line) && line[colon] != ':' {
			if !isTokenChar[line[colon]] {
				return f, ErrBadHeaderName
			}
			colon++
		}
		if colon == 0 || colon == len(line) {
			return f, ErrBadHeaderName
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		for _, c := range value {
			if (c < 0x20 && c != '\t') || c == 0x7f {
				return f, ErrBadHeaderValue
			}
		}
		switch {
		case equalFold(name, "content-length"):
			if f.contentLength || len(value) == 0 || len(value) > 18 {
				return f, ErrBadContentLength
			}
			for _, c := range value {
				if c < '0' || c > '9' {
					return f, ErrBadContentLength
				}
			}
			f.contentLength = true
		case equalFold(name, "transfer-encoding"):
			if f.chunked || !http11 || !equalFold(value, "chunked") {
				return f, ErrBadTransferEnc
			}
			f.chunked = true
		case equalFold(name, "host"):
			f.host++
			if !validHost(value) {
				return f, ErrBadHost
			}
		case equalFold(name, "connection"):
			if hasToken(value, "upgrade") {
				f.connUpgrade = true
			}
		case equalFold(name, "upgrade"):
			f.hasUpgradeHdr = true
		}
	}
	if f.chunked && f.contentLength {
		return f, ErrAmbiguousLength
	}
	if f.host > 1 || (http11 && f.host == 0) {
		return f, ErrBadHost
	}
	f.upgrade = f.connUpgrade && f.hasUpgradeHdr
	return f, nil
}

// validHost accepts uri-host [":" port] (RFC 9110 §7.2): reg-name characters, an
// IPv6 literal in brackets, and a numeric port. It refuses userinfo, paths and
// whitespace, which some backends would read as a different authority.
func validHost(h []byte) bool {
	if len(h) == 0 || len(h) > 255 {
		return false
	}
	i := 0
	if h[0] == '[' {
		for i < len(h) && h[i] != ']' {
			c := h[i]
			if !(c == '[' || c == ':' || c == '.' || isHex(c)) {
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

func isAlnum(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold reports whether b equals the lower-case ASCII string s, ignoring case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// hasToken reports whether the comma-separated list v contains token (lower-case),
// ignoring case and optional whitespace.
func hasToken(v []byte, token string) bool {
	for len(v) > 0 {
		i := 0
		for i < len(v) && v[i] != ',' {
			i++
		}
		if equalFold(trimOWS(v[:i]), token) {
			return true
		}
		if i == len(v) {
			break
		}
		v = v[i+1:]
	}
	return false
}
