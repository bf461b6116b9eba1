package httpwire

import (
	"errors"
	"net/netip"
	"unsafe"
)

// ErrAmbiguousPath: the path means different things to different backends (see
// CheckPath).
var ErrAmbiguousPath = errors.New("httpwire: ambiguous request path")

// PathOf returns the path of an origin-form target: everything before the query.
func PathOf(target []byte) []byte {
	for i, c := range target {
		if c == '?' {
			return target[:i]
		}
	}
	return target
}

// CheckPath refuses the paths that common backends read differently from each
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
// so that the proxy checks that the route stays the same under that reading
// (CanonicalPath).
func CheckPath(p []byte) (mayDiffer bool, err error) {
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
	if len(p) < 3 || !IsHex(p[1]) || !IsHex(p[2]) {
		return true
	}
	var limit byte // the first continuation byte that would not be overlong
	switch Unhex(p[1])<<4 | Unhex(p[2]) {
	case 0xc0, 0xc1:
		limit = 0xc0
	case 0xe0:
		limit = 0xa0
	case 0xf0:
		limit = 0x90
	default:
		return false
	}
	if len(p) < 6 || p[3] != '%' || !IsHex(p[4]) || !IsHex(p[5]) {
		return false
	}
	next := Unhex(p[4])<<4 | Unhex(p[5])
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

// CanonicalPathMax bounds the canonical path the proxy computes: route prefixes are
// at most 1024 bytes (conf), and a prefix match needs no more of the path than
// the prefix is long.
const CanonicalPathMax = 1024

// CanonicalPath appends to dst (up to its capacity) the path as the most
// lenient common backend reads it: percent-decoded, twice where a decoded '%'
// makes another percent-encoding (a backend that decodes twice), ASCII letters
// in lower case (IIS), path parameters removed (Tomcat, Spring), encoded
// slashes and backslashes as separators and empty segments merged (nginx), and
// trailing dots and spaces dropped from each segment (Windows drops them from
// file and directory names: "/admin./x" and "/admin%20/x" open "/admin/x" on a
// Windows backend), and ASP.NET's cookieless session segments ("(S(...))")
// dropped. Dot segments are refused before (CheckPath), so none are
// left to resolve. Route prefixes are put through the same function, and the proxy
// refuses a request whose canonical path would pick another route than its raw
// path does.
func CanonicalPath(dst, p []byte) []byte {
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
		case c == '%' && i+2 < len(p) && IsHex(p[i+1]) && IsHex(p[i+2]):
			c = Unhex(p[i+1])<<4 | Unhex(p[i+2])
			i += 2
			if c == '%' && i+2 < len(p) && IsHex(p[i+1]) && IsHex(p[i+2]) {
				c = Unhex(p[i+1])<<4 | Unhex(p[i+2]) // %2541: decoded twice, 'A'
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

// HostOnly strips the port from a Host value. The result aliases h and must not be
// modified: it is what the backend will see.
func HostOnly(h []byte) []byte {
	if n := len(h); n > 0 && h[n-1] != ']' {
		for i := n - 1; i >= 0; i-- {
			if h[i] == ':' {
				return h[:i]
			}
			if h[i] < '0' || h[i] > '9' {
				break
			}
		}
	}
	return h
}

// AppendHostName appends the canonical form of a host name without its port,
// the one the cache's keys use: lower case, a trailing dot of a DNS name
// dropped, an IPv6 literal in its RFC 5952 form. The proxy routes on it, so
// that two spellings the cache stores as one host also reach one route. It
// does not allocate once dst has room.
func AppendHostName(dst, name []byte) []byte {
	if n := len(name); n > 2 && name[0] == '[' && name[n-1] == ']' {
		// A string view of the bytes, for a call that does not keep it.
		if a, err := netip.ParseAddr(unsafe.String(unsafe.SliceData(name[1:n-1]), n-2)); err == nil && a.Is6() {
			dst = append(dst, '[')
			dst = a.AppendTo(dst)
			return append(dst, ']')
		}
		return AppendLower(dst, name)
	}
	for len(name) > 1 && name[len(name)-1] == '.' {
		name = name[:len(name)-1]
	}
	return AppendLower(dst, name)
}

// AppendLower appends b to dst with ASCII letters in lower case.
func AppendLower(dst, b []byte) []byte {
	for _, c := range b {
		dst = append(dst, LowerASCII(c))
	}
	return dst
}
