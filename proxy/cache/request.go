package cache

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/internal/httpwire"
)

// fwdReason is the RFC 9211 fwd parameter: why the request went forward.
type fwdReason uint8

const (
	fwdNone fwdReason = iota
	fwdBypass
	fwdMethod
	fwdURIMiss
	fwdVaryMiss
	fwdMiss
	fwdRequest
	fwdStale
)

var fwdNames = [...]string{"", "bypass", "method", "uri-miss", "vary-miss", "miss", "request", "stale"}

// Request facts gathered in one pass over the request header fields.
const (
	rqAuth uint32 = 1 << iota
	rqINM
	rqIMS
	rqIfRange
	rqRange
	rqPrecondition // If-Match or If-Unmodified-Since
	rqHasCC
	rqPragmaNoCache
	rqHead
	rqMarked // a live hit-for-miss marker exists for the URL
)

type reqInfo struct {
	cc      reqDirectives
	flags   uint32
	inm     []byte
	ims     []byte
	ifRange []byte
	rng     []byte
}

// parse reads everything the cache needs from the request in one pass.
// Field names are compared case-insensitively because the proxy may run
// fasthttp with header-name normalisation disabled, in which case
// Peek("Authorization") would miss an "authorization" field.
func (r *reqInfo) parse(h *fasthttp.RequestHeader) {
	for k, v := range h.All() {
		switch len(k) {
		case 5:
			if httpwire.EqualFold(k, "range") && r.flags&rqRange == 0 {
				r.flags |= rqRange
				r.rng = v
			}
		case 6:
			if httpwire.EqualFold(k, "pragma") && httpwire.HasToken(v, "no-cache") {
				r.flags |= rqPragmaNoCache
			}
		case 8:
			switch {
			case httpwire.EqualFold(k, "if-match"):
				r.flags |= rqPrecondition
			case httpwire.EqualFold(k, "if-range"):
				r.flags |= rqIfRange
				r.ifRange = v
			}
		case 13:
			switch {
			case httpwire.EqualFold(k, "cache-control"):
				r.flags |= rqHasCC
				r.cc.parse(v)
			case httpwire.EqualFold(k, "authorization"):
				r.flags |= rqAuth
			case httpwire.EqualFold(k, "if-none-match"):
				if r.flags&rqINM == 0 {
					r.flags |= rqINM
					r.inm = v
				}
			}
		case 17:
			if httpwire.EqualFold(k, "if-modified-since") && r.flags&rqIMS == 0 {
				r.flags |= rqIMS
				r.ims = v
			}
		case 19:
			if httpwire.EqualFold(k, "if-unmodified-since") {
				r.flags |= rqPrecondition
			}
		}
	}
	// RFC 9111 §5.4: Pragma: no-cache counts only without Cache-Control.
	if r.flags&rqPragmaNoCache != 0 && r.flags&rqHasCC == 0 {
		r.cc.flags |= qcNoCache
	}
	if h.IsHead() {
		r.flags |= rqHead
	}
}

// forbidsStore reports whether this request alone forbids storing m, its
// answer: the request's no-store (RFC 9111 §5.2.1.5), or its Authorization
// when m has no directive that lets a shared cache reuse it (RFC 9111 §3.5).
func (r *reqInfo) forbidsStore(m *respMeta) bool {
	return r.cc.has(qcNoStore) || (r.flags&rqAuth != 0 && !m.cc.has(rcPublic|rcSMaxAge|rcMustRevalidate))
}

// notModified evaluates the client's If-None-Match, or failing that its
// If-Modified-Since, against e (RFC 9110 §13.2.2 order, weak comparison
// for If-None-Match). It reports whether the answer is 304.
func (r *reqInfo) notModified(e *entry) bool {
	if r.flags&rqINM != 0 {
		return etagListMatch(r.inm, e.etag())
	}
	if r.flags&rqIMS != 0 {
		ims, ok := parseHTTPDate(r.ims)
		return ok && e.lastModifiedOrDate() <= ims
	}
	return false
}

// rangeOf returns the single byte range to serve from e, if the request
// asks for one that applies (RFC 9110 §14.2, §13.1.5 for If-Range).
func (r *reqInfo) rangeOf(e *entry) (first, last int, ok bool) {
	if r.flags&rqRange == 0 || r.flags&rqHead != 0 || e.status != fasthttp.StatusOK {
		return 0, 0, false
	}
	if r.flags&rqIfRange != 0 {
		v := httpwire.TrimOWS(r.ifRange)
		if len(v) > 0 && (v[0] == '"' || v[0] == 'W') {
			if !strongMatch(v, e.etag()) {
				return 0, 0, false
			}
		} else if t, okT := parseHTTPDate(v); !okT || e.flags&fLastMod == 0 || t != e.lastMod {
			return 0, 0, false
		}
	}
	return parseRange(r.rng, len(e.body))
}

// appendKey appends the primary cache key of the request: scheme, host in
// its canonical form (appendHost) and the request target's path and query as
// received, byte for byte (RFC 9111 §2).
func appendKey(dst []byte, ctx *fasthttp.RequestCtx) []byte {
	scheme := "http"
	if ctx.IsTLS() {
		scheme = "https"
	}
	return appendKeyParts(dst, scheme, ctx.Request.Header.Host(), ctx.Request.Header.RequestURI())
}

func appendKeyParts(dst []byte, scheme string, host, uri []byte) []byte {
	// An absolute-form target carries its own authority, which takes
	// precedence over Host (RFC 9112 §3.2.2).
	if n := len(uri); n > 8 && uri[0] != '/' {
		if i := bytes.Index(uri, []byte("://")); i > 0 && i < 6 {
			rest := uri[i+3:]
			j := bytes.IndexByte(rest, '/')
			if j < 0 {
				host, uri = rest, []byte("/")
			} else {
				host, uri = rest[:j], rest[j:]
			}
		}
	}
	dst = append(dst, scheme...)
	dst = append(dst, "://"...)
	dst = appendHost(dst, scheme, host)
	if len(uri) == 0 || uri[0] != '/' {
		dst = append(dst, '/')
	}
	return append(dst, uri...)
}

// delFold deletes every field named name (lower case) from h, whatever the
// case of the stored name.
func delFold(h *fasthttp.RequestHeader, name string, sc *scratch) {
	for range 8 {
		var found []byte
		for k := range h.All() {
			if httpwire.EqualFold(k, name) {
				found = append(sc.num[:0], k...)
				sc.num = found
				break
			}
		}
		if found == nil {
			return
		}
		h.DelBytes(found)
		// With name normalisation on, DelBytes normalises found; with it
		// off, it matches found exactly. Either way that field is gone;
		// loop for differently cased duplicates.
	}
}
