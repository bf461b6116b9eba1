package proxy

import (
	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/internal/httpwire"
	"github.com/floodgate/floodgate/proxy/cache"
)

// cacheFetch carries one request's forwarding state into the cache (a
// cache.Upstream). It is pooled and handed to the cache as a pointer, so
// serving through the cache allocates nothing per request (a closure would).
// It is recycled as soon as Serve returns: a background refresh gets its own
// fetcher from Detach and never sees this one.
type cacheFetch struct {
	s    *Server
	rt   *route
	ctx  *fasthttp.RequestCtx
	o    outbound // a copy: a pointer to the caller's would move it to the heap
	err  error
	info reqInfo // a copy, for the same reason as o
}

var _ cache.Upstream = (*cacheFetch)(nil)

// Fetch is the cache's Fetcher for this request.
func (f *cacheFetch) Fetch(req *fasthttp.Request, resp *fasthttp.Response) error {
	o := f.o
	if req != &f.ctx.Request {
		// The cache's own request (a revalidation): written from fasthttp's
		// parsed header, which the cache edited, rather than the client's lines.
		o.parsed = true
	}
	err := f.s.exchange(o.peer, f.rt, req, &o, resp, f.rt.cache.Options().MaxObjectBytes, &f.info)
	f.err = err
	return err
}

// Detach returns the fetcher of a background refresh: it owns copies of what it
// needs from this request (the route, the client's address as forwarded, the
// scheme) and nothing that is recycled when the request ends. The request it is
// given is the cache's own copy, without a body.
func (f *cacheFetch) Detach() cache.Fetcher {
	d := &refreshFetch{s: f.s, rt: f.rt}
	d.o = outbound{
		peer:   f.o.peer,
		peerIP: append([]byte(nil), f.o.peerIP...),
		tls:    f.o.tls,
		host:   f.o.host,
		parsed: true,
	}
	return d.fetch
}

// refreshFetch is a detached cacheFetch, for one background refresh.
type refreshFetch struct {
	s  *Server
	rt *route
	o  outbound
}

func (d *refreshFetch) fetch(req *fasthttp.Request, resp *fasthttp.Response) error {
	o := d.o
	var info reqInfo
	return d.s.exchange(o.peer, d.rt, req, &o, resp, d.rt.cache.Options().MaxObjectBytes, &info)
}

// serveCached answers through the route's cache.
func (s *Server) serveCached(ctx *fasthttp.RequestCtx, rt *route, o *outbound, info *reqInfo) {
	f := s.fetches.Get().(*cacheFetch)
	f.s, f.rt, f.ctx, f.o, f.err, f.info = s, rt, ctx, *o, nil, reqInfo{maxWait: info.maxWait}
	res := s.cache.ServeUpstream(ctx, rt.cache, f)
	info.cache = res.String()
	info.backend = f.info.backend
	if f.err != nil {
		if clientError(f.err, ctx.RemoteAddr(), o.fr.Chunked) != nil {
			ctx.SetConnectionClose()
		} else if res != cache.Stale && noBackend(f.err) && rt.pool.gate.Degraded() {
			// Admitted, but no slot freed in time: the route's degraded
			// answer rather than the cache's error page.
			s.refuse(ctx, rt, info)
		}
	}
	f.rt, f.ctx, f.o, f.err, f.info = nil, nil, outbound{}, nil, reqInfo{}
	s.fetches.Put(f)
	if !ctx.Response.IsBodyStream() {
		if c := clientConn(ctx); c != nil {
			c.holdNext = true
		}
	}
}

// CacheError is the cache's ErrorHandler (cache.Options.ErrorHandler): errors
// become statuses in errors.go only. It does not use its receiver's state, so it
// may be set before the Server exists, as a method expression.
func CacheError(ctx *fasthttp.RequestCtx, err error) {
	if cerr := clientError(err, ctx.RemoteAddr(), false); cerr != nil {
		err = cerr
	}
	writeError(ctx, "", err)
}

// CacheForwarded is the cache's view of a request as writeRequest forwards it
// (cache.Options.Forwarded), so that Vary selects variants on what the backend
// received (RFC 9111 §4.1): X-Forwarded-For is the client's list with the peer's
// address appended, X-Forwarded-Proto and X-Forwarded-Host are floodgate's own,
// and hop-by-hop fields, fields named in Connection, Content-Length and the
// client's Forwarded never reach the backend. Any other field is forwarded as
// received: its raw lines, all of them, joined as one list. It must agree with
// writeRequest (write.go); TestCacheVaryUsesForwardedRequest checks it does.
func CacheForwarded(ctx *fasthttp.RequestCtx, name, dst []byte) (value []byte, present, handled bool) {
	h := &ctx.Request.Header
	raw := h.RawHeaders()
	switch {
	case httpwire.EqualFold(name, "x-forwarded-for"):
		for it := httpwire.Fields(raw); ; {
			n, v, ok := it.Next()
			if !ok {
				break
			}
			if httpwire.EqualFold(n, "x-forwarded-for") {
				dst = append(dst, v...)
				dst = append(dst, ", "...)
			}
		}
		if c := clientConn(ctx); c != nil {
			dst = append(dst, c.peerIPText()...)
		} else {
			dst = appendAddr(dst, ctx.RemoteAddr())
		}
		return dst, true, true
	case httpwire.EqualFold(name, "x-forwarded-proto"):
		if ctx.IsTLS() {
			return append(dst, "https"...), true, true
		}
		return append(dst, "http"...), true, true
	case httpwire.EqualFold(name, "x-forwarded-host"):
		return append(dst, h.Host()...), true, true
	case len(name) == 0 || httpwire.IsHopByHop(name) || isFramingOrForwarded(name):
		return dst, false, true
	}
	for it := httpwire.Fields(raw); ; {
		n, v, ok := it.Next()
		if !ok {
			break
		}
		if httpwire.EqualFold(n, "connection") && httpwire.ListHas(v, name) {
			return dst, false, true
		}
	}
	// Any other field: its lines as writeRequest copies them, every one in
	// order. fasthttp's parsed header keeps only the last User-Agent or
	// Content-Type line (and re-serialises Cookie), while the backend
	// receives all of them and may read the first: keyed on the parsed
	// value, a variant made for one value was stored as another's.
	for it := httpwire.Fields(raw); ; {
		n, v, ok := it.Next()
		if !ok {
			break
		}
		if httpwire.EqualFoldBytes(n, name) {
			if present {
				dst = append(dst, ", "...)
			}
			dst = append(dst, v...)
			present = true
		}
	}
	return dst, present, true
}
