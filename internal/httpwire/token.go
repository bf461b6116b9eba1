package httpwire

// tchar from RFC 9110 §5.6.2.
var tchar = func() (t [256]bool) {
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

// IsTokenChar reports whether c may appear in a token (tchar, RFC 9110 §5.6.2).
func IsTokenChar(c byte) bool { return tchar[c] }

// IsOWS reports whether c is optional whitespace: a space or a tab (RFC 9110
// §5.6.3).
func IsOWS(c byte) bool { return c == ' ' || c == '\t' }

// TrimOWS removes optional whitespace from both ends of b.
func TrimOWS(b []byte) []byte {
	for len(b) > 0 && IsOWS(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && IsOWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// LowerASCII returns c in lower case if it is an ASCII letter, else c.
func LowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// EqualFold reports whether b equals the lower-case ASCII string s, ignoring
// the case of b. Field names, tokens and directive names are case-insensitive
// (RFC 9110 §5.1, RFC 9111 §5.2).
func EqualFold(b []byte, s string) bool {
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

// EqualFoldBytes reports whether a and b are equal, ignoring ASCII case.
func EqualFoldBytes(a, b []byte) bool { return equalFold(a, b, LowerASCII) }

// EqualFoldDash is EqualFoldBytes where '_' and '-' are the same: CGI-style
// backends (PHP, WSGI, Rack) read a field name with underscores as the one
// with dashes.
func EqualFoldDash(a []byte, b string) bool { return equalFold(a, b, foldDash) }

// equalFold reports whether a and b are equal once fold has mapped each byte of
// both. It inlines into its callers together with fold.
func equalFold[T []byte | string](a []byte, b T, fold func(byte) byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		if fold(a[i]) != fold(b[i]) {
			return false
		}
	}
	return true
}

// foldDash is LowerASCII with '_' read as '-'.
func foldDash(c byte) byte {
	if c = LowerASCII(c); c == '_' {
		return '-'
	}
	return c
}

// CutElement returns the first element of the comma-separated list v, not
// trimmed, and the rest of the list after its comma (nil when there is none).
func CutElement(v []byte) (elem, rest []byte) {
	for i, c := range v {
		if c == ',' {
			return v[:i], v[i+1:]
		}
	}
	return v, nil
}

// HasToken reports whether the comma-separated list v has the element token
// (given in lower case), ignoring case and optional whitespace.
func HasToken(v []byte, token string) bool {
	for len(v) > 0 {
		var t []byte
		if t, v = CutElement(v); EqualFold(TrimOWS(t), token) {
			return true
		}
	}
	return false
}

// HasTokenDash reports whether the comma-separated list v has the element name,
// ignoring case and optional whitespace, and '_' for '-' (EqualFoldDash).
func HasTokenDash(v []byte, name string) bool {
	for len(v) > 0 {
		var t []byte
		if t, v = CutElement(v); EqualFoldDash(TrimOWS(t), name) {
			return true
		}
	}
	return false
}

// ListHas reports whether the comma-separated list v has a non-empty element
// equal to name, ignoring case and optional whitespace.
func ListHas(v, name []byte) bool {
	for len(v) > 0 {
		var t []byte
		t, v = CutElement(v)
		if t = TrimOWS(t); len(t) > 0 && EqualFoldBytes(t, name) {
			return true
		}
	}
	return false
}

// AppendTokens appends the non-empty elements of the comma-separated list v
// to dst without growing it beyond its capacity; overflow reports elements
// that did not fit. With a fixed array behind dst this stays on the stack.
func AppendTokens(dst [][]byte, v []byte) (out [][]byte, overflow bool) {
	for len(v) > 0 {
		var t []byte
		t, v = CutElement(v)
		if t = TrimOWS(t); len(t) == 0 {
			continue
		}
		if len(dst) < cap(dst) {
			dst = append(dst, t)
		} else {
			overflow = true
		}
	}
	return dst, overflow
}

// AppendListsTokens is AppendTokens over each of lists in turn, such as the
// values of every Connection line.
func AppendListsTokens(dst [][]byte, lists [][]byte) (out [][]byte, overflow bool) {
	for _, v := range lists {
		var o bool
		dst, o = AppendTokens(dst, v)
		overflow = overflow || o
	}
	return dst, overflow
}

// AppendAllTokens is AppendTokens without a bound, for cold paths: it may
// allocate.
func AppendAllTokens(dst [][]byte, v []byte) [][]byte {
	for len(v) > 0 {
		var t []byte
		t, v = CutElement(v)
		if t = TrimOWS(t); len(t) > 0 {
			dst = append(dst, t)
		}
	}
	return dst
}

// NamedIn reports whether one of tokens equals name, ignoring case.
func NamedIn(tokens [][]byte, name []byte) bool {
	for _, t := range tokens {
		if len(t) == len(name) && EqualFoldBytes(t, name) {
			return true
		}
	}
	return false
}

// IsHex reports whether c is a hexadecimal digit.
func IsHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// Unhex returns the value of the hexadecimal digit c (IsHex(c) must hold).
func Unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func isAlnum(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// IsToken reports whether s is a non-empty RFC 9110 token (§5.6.2), the syntax
// of methods and field names. It sets no length cap: callers that need one
// (the config file caps methods and header names at 64) check it themselves.
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tchar[s[i]] {
			return false
		}
	}
	return true
}
