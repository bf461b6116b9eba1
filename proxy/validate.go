package proxy

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
// The target must be origin-form ("/path?query"), absolute-form with an http or
// https scheme ("http://host/path", which every HTTP/1.1 server must accept, RFC
// 9112 §3.2.2; handle turns it into origin-form and its authority into the Host),
// or "*" for OPTIONS. Authority-form (CONNECT) is not proxied.
func validateRequestLine(method, target, proto []byte) error {
	if len(method) == 0 {
		return ErrBadRequestLine
	}
	for _, c := range method {
		if !isTokenChar[c] {
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
		if _, _, err := splitAbsolute(target); err != nil {
			return err
		}
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

// splitAbsolute splits an absolute-form target, "http://authority/path?query"
// (scheme in any case, http or https only), into its authority and the rest, the
// origin-form without its leading "/" when the path is empty. The authority must
// be a valid Host (validHost): userinfo is refused (RFC 9110 §4.2.4), as is an
// empty one.
func splitAbsolute(target []byte) (authority, rest []byte, err error) {
	i := 0
	for i < len(target) && target[i] != ':' {
		i++
	}
	scheme := target[:i]
	if !equalFold(scheme, "http") && !equalFold(scheme, "https") {
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
	if !validHost(authority) {
		return nil, nil, ErrBadHost
	}
	return authority, rest, nil
}

// ErrAmbiguousPath: the path means different things to different backends (see
// checkPath).
var ErrAmbiguousPath = errors.New("proxy: ambiguous request path")

// pathOf returns the path of an origin-form target: everything before the query.
func pathOf(target []byte) []byte {
	for i, c := range target {
		if c == '?' {
			return target[:i]
		}
	}
	return target
}

// checkPath refuses the paths that common backends read differently from each
// other and from floodgate's router, where the difference is never needed by an
// honest client (browsers resolve all of these before sending):
//
//   - a backslash: IIS reads it as a slash;
//   - a dot segment, "." or "..", also percent-encoded (%2E) or with a path
//     parameter (Tomcat and Spring read "..;x" as ".."), and with encoded
//     slashes or backslashes (%2F, %5C) counting as separators;
//   - a double-encoded dot, slash or backslash (%252E, %252F, %255C), which a
//     backend that decodes twice turns into one of the above;
//   - a malformed percent-encoding or the start of an overlong UTF-8 sequence
//     (badPercent).
//
// It reports whether the path has anything else that a backend may read
// differently (percent-encoding, a ";", an upper-case letter, an empty segment,
// a segment ending in a dot, a "("),
// so that handle checks that the route stays the same under that reading
// (canonicalPath).
func checkPath(p []byte) (mayDiffer bool, err error) {
	// A segment is a dot segment while it holds only dots (raw or %2E), one or
	// two of them, up to its end or its first ";".
	dots, inDots, params := 0, true, false
	prevSep := false
	endSegment := func() bool {
		bad := inDots && (dots == 1 || dots == 2)
		dots, inDots, params = 0, true, false
		return bad
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '\\':
			return true, ErrAmbiguousPath
		case c == '/' || (c == '%' && isEncodedSep(p[i:])):
			if i > 0 && endSegment() {
				return true, ErrAmbiguousPath
			}
			if i > 0 && p[i-1] == '.' {
				mayDiffer = true // "name.": Windows drops the dot
			}
			if c == '%' {
				mayDiffer = true
				i += 2
			} else if prevSep {
				mayDiffer = true // an empty segment: merged by nginx and others
			}
			prevSep = true
			continue
		case c == '%':
			mayDiffer = true
			if badPercent(p[i:]) {
				return true, ErrAmbiguousPath
			}
			if len(p) >= i+5 && p[i+1] == '2' && p[i+2] == '5' && isEncodedDotOrSep(p[i+3], p[i+4]) {
				return true, ErrAmbiguousPath
			}
			if !params && inDots && len(p) >= i+3 && p[i+1] == '2' && (p[i+2] == 'e' || p[i+2] == 'E') {
				dots++
				i += 2
				prevSep = false
				continue
			}
			if !params {
				inDots = false
			}
		case c == ';':
			mayDiffer = true
			params = true
		case c == '.':
			if !params {
				dots++
			}
		default:
			if (c >= 'A' && c <= 'Z') || c == '(' {
				mayDiffer = true // '(': maybe an ASP.NET cookieless segment
			}
			if !params {
				inDots = false
			}
		}
		prevSep = false
	}
	if endSegment() {
		return true, ErrAmbiguousPath
	}
	if len(p) > 0 && p[len(p)-1] == '.' {
		mayDiffer = true
	}
	return mayDiffer, nil
}

// badPercent reports whether p, which starts with '%', is not a valid
// percent-encoding (RFC 3986 §2.1: '%' and two hex digits), as IIS's %uXXXX is
// not ("%u002f" is a slash there), or starts an overlong UTF-8 sequence (%C0 or
// %C1 before a continuation byte %80-%BF, %E0 before %80-%9F, %F0 before
// %80-%8F), which old decoders (IIS, Tomcat CVE-2008-2938) turn into a dot or
// a slash: "%c0%ae", "%c0%af". Valid UTF-8 has no such sequence; a Latin-1
// path ("%C0-propos") is not one either.
func badPercent(p []byte) bool {
	if len(p) < 3 || !isHex(p[1]) || !isHex(p[2]) {
		return true
	}
	var limit byte // the first continuation byte that would not be overlong
	switch unhex(p[1])<<4 | unhex(p[2]) {
	case 0xc0, 0xc1:
		limit = 0xc0
	case 0xe0:
		limit = 0xa0
	case 0xf0:
		limit = 0x90
	default:
		return false
	}
	if len(p) < 6 || p[3] != '%' || !isHex(p[4]) || !isHex(p[5]) {
		return false
	}
	next := unhex(p[4])<<4 | unhex(p[5])
	return next >= 0x80 && next < limit
}

// isEncodedSep reports whether p starts with %2F or %5C, in any case.
func isEncodedSep(p []byte) bool {
	return len(p) >= 3 && p[0] == '%' && ((p[1] == '2' && (p[2] == 'f' || p[2] == 'F')) || (p[1] == '5' && (p[2] == 'c' || p[2] == 'C')))
}

func isEncodedDotOrSep(a, b byte) bool {
	b |= 0x20
	return (a == '2' && (b == 'e' || b == 'f')) || (a == '5' && b == 'c')
}

// canonicalPathMax bounds the canonical path handle computes: route prefixes are
// at most 1024 bytes (conf), and a prefix match needs no more of the path than
// the prefix is long.
const canonicalPathMax = 1024

// canonicalPath appends to dst (up to its capacity) the path as the most
// lenient common backend reads it: percent-decoded, twice where a decoded '%'
// makes another percent-encoding (a backend that decodes twice), ASCII letters
// in lower case (IIS), path parameters removed (Tomcat, Spring), encoded
// slashes and backslashes as separators and empty segments merged (nginx), and
// trailing dots and spaces dropped from each segment (Windows drops them from
// file and directory names: "/admin./x" and "/admin%20/x" open "/admin/x" on a
// Windows backend), and ASP.NET's cookieless session segments ("(S(...))")
// dropped. Dot segments are refused before (checkPath), so none are
// left to resolve. Route prefixes are put through the same function, and handle
// refuses a request whose canonical path would pick another route than its raw
// path does.
func canonicalPath(dst, p []byte) []byte {
	params := false
	seg := len(dst) // where the current segment starts in dst
	i := 0
	for ; i < len(p) && len(dst) < cap(dst); i++ {
		c := p[i]
		if c == '/' || c == '\\' || (c == '%' && isEncodedSep(p[i:])) {
			if c == '%' {
				i += 2
			}
			params = false
			dst = dropCookieless(trimSegment(dst, seg), seg)
			if len(dst) == 0 || dst[len(dst)-1] != '/' {
				dst = append(dst, '/')
			}
			seg = len(dst)
			continue
		}
		if params {
			continue
		}
		switch {
		case c == ';':
			params = true
			continue
		case c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]):
			c = unhex(p[i+1])<<4 | unhex(p[i+2])
			i += 2
			if c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
				c = unhex(p[i+1])<<4 | unhex(p[i+2]) // %2541: decoded twice, 'A'
				i += 2
			}
		}
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	if i == len(p) {
		dst = dropCookieless(trimSegment(dst, seg), seg) // the last segment, when it is whole
	}
	return dst
}

// dropCookieless drops the segment dst[seg:] when it is an ASP.NET cookieless
// session segment, "(S(...))" or "(A(...)F(...))": ASP.NET removes it from the
// path before routing, so "/(S(x))/admin/" is "/admin/" there.
func dropCookieless(dst []byte, seg int) []byte {
	s := dst[seg:]
	if n := len(s); n >= 5 && s[0] == '(' && s[1] >= 'a' && s[1] <= 'z' && s[2] == '(' && s[n-2] == ')' && s[n-1] == ')' {
		return dst[:seg]
	}
	return dst
}

// trimSegment drops the trailing dots and spaces of the segment dst[seg:].
func trimSegment(dst []byte, seg int) []byte {
	for len(dst) > seg && (dst[len(dst)-1] == '.' || dst[len(dst)-1] == ' ') {
		dst = dst[:len(dst)-1]
	}
	return dst
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// framing is what validateHeaders learns about the message while checking it.
type framing struct {
	chunked       bool
	contentLength bool
	length        int64 // the declared Content-Length, when contentLength
	host          int
	fields        int  // header lines
	upgrade       bool // a WebSocket upgrade: a Connection: upgrade token and Upgrade: websocket
	rehost        bool // absolute-form with another authority than the Host line: write the parsed header
	connUpgrade   bool
	websocket     bool
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
		f.fields++
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
				f.length = f.length*10 + int64(c-'0')
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
			if hasToken(value, "host") {
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
		case (name[0]|0x20) == 'x' && (equalFoldDash(name, "x-original-url") || equalFoldDash(name, "x-rewrite-url")):
			// Backends that take the path from these (Symfony before
			// 3.4.14, Zend: CVE-2018-14773) would serve another path
			// than the one routed, past its route's allow list.
			return f, ErrBadHeaderName
		case equalFold(name, "upgrade"):
			// Only WebSocket is tunnelled. Any other upgrade (h2c above all) is
			// dropped with the hop-by-hop fields, and the request forwarded as
			// plain HTTP/1.1: a backend that switched to h2c behind floodgate
			// would take requests that never went through its routing.
			// Only "websocket" alone: beside another protocol ("websocket,
			// h2c") the backend would be free to switch to that one.
			if equalFold(value, "websocket") {
				f.websocket = true
			}
		}
	}
	if f.chunked && f.contentLength {
		return f, ErrAmbiguousLength
	}
	if f.host > 1 || (http11 && f.host == 0) {
		return f, ErrBadHost
	}
	f.upgrade = f.connUpgrade && f.websocket
	return f, nil
}

// isForwardedAlias reports whether name is X-Forwarded-For, -Proto or -Host
// spelled with at least one underscore for a dash.
func isForwardedAlias(name []byte) bool {
	if len(name) < 15 || len(name) > 17 || bytes.IndexByte(name, '_') < 0 {
		return false
	}
	return equalFoldDash(name, "x-forwarded-for") || equalFoldDash(name, "x-forwarded-proto") || equalFoldDash(name, "x-forwarded-host")
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
