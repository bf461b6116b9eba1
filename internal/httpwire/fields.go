package httpwire

import "bytes"

// FieldIter walks the field lines of a raw header block: "name: value" lines
// ended by CRLF (or a bare LF), up to the empty line that ends the block.
// Lines without a colon are skipped. It is meant for blocks already
// validated (ValidateHeaders) or built by floodgate itself.
type FieldIter struct{ raw []byte }

// Fields returns an iterator over the field lines of raw.
func Fields(raw []byte) FieldIter { return FieldIter{raw} }

// Next returns the name and value (without surrounding whitespace) of the next
// field line; ok is false at the end of the block.
func (it *FieldIter) Next() (name, value []byte, ok bool) {
	for len(it.raw) > 0 {
		// bytes.IndexByte, not a byte loop: the proxy runs this over every
		// header line several times per request (writeRawHeader's two passes).
		line := it.raw
		if i := bytes.IndexByte(it.raw, '\n'); i >= 0 {
			line, it.raw = it.raw[:i], it.raw[i+1:]
		} else {
			it.raw = nil
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) == 0 {
			it.raw = nil
			return nil, nil, false
		}
		c := bytes.IndexByte(line, ':')
		if c < 0 {
			continue
		}
		return line[:c], TrimOWS(line[c+1:]), true
	}
	return nil, nil, false
}

// Value returns the value of the first field of raw called name, ignoring
// case (names are kept as sent, so fasthttp's own lookup would be
// case-sensitive); nil when there is none.
func Value(raw []byte, name string) []byte {
	for it := (FieldIter{raw}); ; {
		k, v, ok := it.Next()
		if !ok {
			return nil
		}
		if len(k) == len(name) && EqualFoldBytes(k, []byte(name)) {
			return v
		}
	}
}

// Has reports whether raw has a field called name (given in lower case),
// ignoring the name's case.
func Has(raw []byte, name string) bool {
	for it := (FieldIter{raw}); ; {
		k, _, ok := it.Next()
		if !ok {
			return false
		}
		if EqualFold(k, name) {
			return true
		}
	}
}

// ConnectionNames reports whether a Connection field of raw names the field
// name (RFC 9110 §7.6.1).
func ConnectionNames(raw, name []byte) bool {
	for it := (FieldIter{raw}); ; {
		k, v, ok := it.Next()
		if !ok {
			return false
		}
		if EqualFold(k, "connection") && ListHas(v, name) {
			return true
		}
	}
}

// ParseContentLength parses a Content-Length value: 1 to 18 decimal digits,
// nothing else (no sign, no list, no whitespace inside).
func ParseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// DeclaredLength returns the Content-Length of a raw header block (its first
// such field), when there is a valid one.
func DeclaredLength(raw []byte) (int64, bool) {
	return ParseContentLength(Value(raw, "content-length"))
}
