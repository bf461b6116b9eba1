package cache

import "github.com/floodgate/floodgate/internal/httpwire"

// CDN-Cache-Control (RFC 9213) is a targeted cache-control field for the
// caches of a CDN, which floodgate's shared cache is: when a response has one
// with a valid, non-empty value, its directives replace those of
// Cache-Control and Expires is ignored (RFC 9213 §2.1). Its syntax is a
// Structured Field Dictionary (RFC 8941 §3.2); a value that does not parse,
// or whose max-age, s-maxage, stale-while-revalidate or stale-if-error is
// not an Integer, is ignored as a whole (RFC 9213 §2.2). The field itself is
// passed on to clients unchanged.

// maxCDNLines bounds the CDN-Cache-Control lines a response may carry; a
// response with more is not stored (see respMeta.analyze).
const maxCDNLines = 4

// targeted returns the directives of the CDN-Cache-Control lines, and
// whether they are valid and non-empty.
func targeted(lines [][]byte) (d respDirectives, ok bool) {
	empty := true
	for _, l := range lines {
		l = trimSP(l)
		if len(l) == 0 {
			continue
		}
		if !validCDNDictionary(l) {
			return respDirectives{}, false
		}
		empty = false
		d.parse(l)
	}
	return d, !empty
}

func trimSP(b []byte) []byte {
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	for len(b) > 0 && b[len(b)-1] == ' ' {
		b = b[:len(b)-1]
	}
	return b
}

// validCDNDictionary reports whether v is an RFC 8941 Dictionary whose
// delta-seconds directives carry non-negative Integers.
func validCDNDictionary(v []byte) bool {
	i := 0
	for {
		key, n := sfKey(v[i:])
		if n == 0 {
			return false
		}
		i += n
		if i < len(v) && v[i] == '=' {
			i++
			start := i
			if i < len(v) && v[i] == '(' {
				n = sfInnerList(v[i:])
			} else {
				n = sfBareItem(v[i:])
			}
			if n == 0 {
				return false
			}
			if deltaDirective(key) && !allDigits(v[start:start+n]) {
				return false
			}
			i += n
		} else if deltaDirective(key) {
			return false // a Boolean true, not an Integer
		}
		if n = sfParams(v[i:]); n < 0 {
			return false
		}
		i += n
		for i < len(v) && httpwire.IsOWS(v[i]) {
			i++
		}
		if i == len(v) {
			return true
		}
		if v[i] != ',' {
			return false
		}
		i++
		for i < len(v) && httpwire.IsOWS(v[i]) {
			i++
		}
		if i == len(v) {
			return false // trailing comma
		}
	}
}

func deltaDirective(k []byte) bool {
	switch string(k) {
	case "max-age", "s-maxage", "stale-while-revalidate", "stale-if-error":
		return true
	}
	return false
}

func allDigits(b []byte) bool { return len(b) > 0 && digitRun(b) == len(b) }

// sfKey returns the key at the start of b and its length (0: none).
func sfKey(b []byte) ([]byte, int) {
	if len(b) == 0 || !(b[0] >= 'a' && b[0] <= 'z' || b[0] == '*') {
		return nil, 0
	}
	n := 1
	for n < len(b) {
		c := b[n]
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '*' {
			n++
			continue
		}
		break
	}
	return b[:n], n
}

// sfParams returns the length of the parameters at the start of b, -1 when
// they are malformed.
func sfParams(b []byte) int {
	i := 0
	for i < len(b) && b[i] == ';' {
		i++
		for i < len(b) && b[i] == ' ' {
			i++
		}
		_, n := sfKey(b[i:])
		if n == 0 {
			return -1
		}
		i += n
		if i < len(b) && b[i] == '=' {
			i++
			if n = sfBareItem(b[i:]); n == 0 {
				return -1
			}
			i += n
		}
	}
	return i
}

// sfInnerList returns the length of the inner list with its parameters at
// the start of b (0: malformed).
func sfInnerList(b []byte) int {
	i := 1
	for {
		for i < len(b) && b[i] == ' ' {
			i++
		}
		if i == len(b) {
			return 0
		}
		if b[i] == ')' {
			i++
			n := sfParams(b[i:])
			if n < 0 {
				return 0
			}
			return i + n
		}
		n := sfBareItem(b[i:])
		if n == 0 {
			return 0
		}
		i += n
		m := sfParams(b[i:])
		if m < 0 {
			return 0
		}
		i += m
		if i < len(b) && b[i] != ' ' && b[i] != ')' {
			return 0
		}
	}
}

// digitRun returns the number of ASCII digits at the start of b.
func digitRun(b []byte) int {
	n := 0
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		n++
	}
	return n
}

// sfBareItem returns the length of the bare item at the start of b (0:
// none): an Integer or Decimal, a String, a Token, a Byte Sequence or a
// Boolean.
func sfBareItem(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	switch c := b[0]; {
	case c == '-' || c >= '0' && c <= '9':
		i := 0
		if c == '-' {
			i++
		}
		d := digitRun(b[i:])
		i += d
		if d == 0 || d > 15 {
			return 0
		}
		if i < len(b) && b[i] == '.' {
			if d > 12 {
				return 0
			}
			i++
			f := digitRun(b[i:])
			i += f
			if f == 0 || f > 3 {
				return 0
			}
		}
		return i
	case c == '"':
		for i := 1; i < len(b); i++ {
			switch {
			case b[i] == '\\':
				i++
				if i == len(b) || (b[i] != '"' && b[i] != '\\') {
					return 0
				}
			case b[i] == '"':
				return i + 1
			case b[i] < 0x20 || b[i] > 0x7e:
				return 0
			}
		}
		return 0
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '*':
		i := 1
		for i < len(b) && (httpwire.IsTokenChar(b[i]) || b[i] == ':' || b[i] == '/') {
			i++
		}
		return i
	case c == ':':
		for i := 1; i < len(b); i++ {
			switch x := b[i]; {
			case x == ':':
				return i + 1
			case x >= 'a' && x <= 'z' || x >= 'A' && x <= 'Z' || x >= '0' && x <= '9' || x == '+' || x == '/' || x == '=':
			default:
				return 0
			}
		}
		return 0
	case c == '?':
		if len(b) > 1 && (b[1] == '0' || b[1] == '1') {
			return 2
		}
	}
	return 0
}
