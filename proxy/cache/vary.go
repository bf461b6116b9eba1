package cache

import (
	"encoding/binary"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/internal/httpwire"
)

// maxVaryNames bounds how many distinct field names a stored Vary may list.
// A response varying on more is passed through unstored: that many selecting
// fields would fragment the cache into variants that are never reused.
const maxVaryNames = 8

// appendVaryNames appends the canonical form of a response's Vary field
// lines to dst: the field names lower-cased, de-duplicated, sorted and
// joined by commas, so that two responses listing the same names in another
// order or case select variants the same way (RFC 9111 §4.1). star reports
// a "*" member anywhere, which makes the response unusable for any later
// request (RFC 9110 §12.5.5) and so not worth storing; tooMany reports more
// than maxVaryNames names.
func appendVaryNames(dst []byte, lines [][]byte) (out []byte, star, tooMany bool) {
	var names [maxVaryNames][]byte
	n := 0
	for _, l := range lines {
		for len(l) > 0 {
			var f []byte
			f, l = httpwire.CutElement(l)
			f = httpwire.TrimOWS(f)
			if len(f) == 0 {
				continue
			}
			if len(f) == 1 && f[0] == '*' {
				return dst, true, false
			}
			dup := false
			for _, x := range names[:n] {
				if httpwire.EqualFoldBytes(x, f) {
					dup = true
					break
				}
			}
			if dup {
				continue
			}
			if n == maxVaryNames {
				return dst, false, true
			}
			names[n] = f
			n++
		}
	}
	// Insertion sort on the lower-cased names: n is tiny.
	for i := 1; i < n; i++ {
		for j := i; j > 0 && lessFold(names[j], names[j-1]); j-- {
			names[j], names[j-1] = names[j-1], names[j]
		}
	}
	for i := range names[:n] {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = httpwire.AppendLower(dst, names[i])
	}
	return dst, false, false
}

func lessFold(a, b []byte) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		x, y := httpwire.LowerASCII(a[i]), httpwire.LowerASCII(b[i])
		if x != y {
			return x < y
		}
	}
	return len(a) < len(b)
}

// caseInsensitiveValue reports whether the values of the request field name
// (lower case) compare case-insensitively, so a variant selected by
// "Accept-Encoding: GZIP" also serves "gzip" (RFC 9111 §4.1 allows
// "case-normalization, where values are defined to be case-insensitive").
func caseInsensitiveValue(name []byte) bool {
	switch string(name) {
	case "accept", "accept-encoding", "accept-language", "accept-charset":
		return true
	}
	return false
}

// appendVaryKey appends the secondary cache key of ctx's request as the
// backend receives it (c's Forwarded view) for the canonical Vary names: a
// field the proxy adds or replaces, such as X-Forwarded-For, is keyed on the
// value it forwards, not on what the client sent, and a field it strips is
// absent. Without a Forwarded view (or ctx) it keys the request as received.
func (c *Cache) appendVaryKey(dst, names []byte, ctx *fasthttp.RequestCtx, sc *scratch) []byte {
	if c.fwdView == nil {
		return appendVaryKey(dst, names, &ctx.Request.Header, nil, nil, nil)
	}
	return appendVaryKey(dst, names, &ctx.Request.Header, c.fwdView, ctx, &sc.fwd)
}

// appendVaryKey appends the secondary cache key of req for the canonical
// Vary names to dst. For each name it records either "absent" or the
// normalised field value: every line of that field combined, split into
// list members, each member stripped of surrounding whitespace, empty
// members dropped, and the members re-joined with a bare comma, which is the
// normalisation RFC 9111 §4.1 allows ("adding or removing whitespace",
// "combining multiple header field lines"). An absent field only matches an
// absent field (RFC 9111 §4.1). Values are length-prefixed so no value can
// imitate another name's boundary. It does not allocate once dst has grown.
//
// view, when not nil, gives the forwarded value of a field the proxy
// handles itself (see Forwarded), using *tmp as its buffer.
func appendVaryKey(dst, names []byte, req *fasthttp.RequestHeader, view Forwarded, ctx *fasthttp.RequestCtx, tmp *[]byte) []byte {
	for len(names) > 0 {
		var name []byte
		name, names = httpwire.CutElement(names)
		fold := caseInsensitiveValue(name)
		mark := len(dst)
		dst = append(dst, 0, 0, 0, 0, 0)
		start := len(dst)
		found := false
		if view != nil {
			if v, present, handled := view(ctx, name, (*tmp)[:0]); handled {
				if present {
					*tmp = v
					found = true
					dst = appendMembers(dst, start, v, fold)
				}
				goto done
			}
		}
		for k, v := range req.All() {
			if !httpwire.EqualFoldBytes(k, name) {
				continue
			}
			found = true
			dst = appendMembers(dst, start, v, fold)
		}
	done:
		if !found {
			dst = dst[:mark+1] // single 0 byte: absent
			continue
		}
		dst[mark] = 1
		binary.BigEndian.PutUint32(dst[mark+1:], uint32(len(dst)-start))
	}
	return dst
}

// appendMembers appends the list members of the field value v to dst, after
// a comma when dst already holds members past start.
func appendMembers(dst []byte, start int, v []byte, fold bool) []byte {
	for len(v) > 0 {
		var m []byte
		m, v = httpwire.CutElement(v)
		if m = httpwire.TrimOWS(m); len(m) == 0 {
			continue
		}
		if len(dst) > start {
			dst = append(dst, ',')
		}
		if fold {
			dst = httpwire.AppendLower(dst, m)
		} else {
			dst = append(dst, m...)
		}
	}
	return dst
}
