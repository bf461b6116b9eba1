package proxy

import (
	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/proxy/cache"
)

// cacheFetch carries one request's forwarding state into the cache's Fetcher. Its
// fetch method value is bound once and the struct pooled, so handing the cache a
// Fetcher allocates nothing per request (a closure would).
type cacheFetch struct {
	s    *Server
	rt   *route
	ctx  *fasthttp.RequestCtx
	o    outbound // a copy: a pointer to the caller's would move it to the heap
	fn   cache.Fetcher
	err  error
	info reqInfo // a copy, for the same reason as o
}

func (f *cacheFetch) fetch(req *fasthttp.Request, resp *fasthttp.Response) error {
	o := f.o
	if req != &f.ctx.Request {
		// The cache's own request (a revalidation): written from fasthttp's
		// parsed header, which the cache edited, rather than the client's lines.
		o.parsed = true
	}
	err := f.s.exchange(f.ctx.RemoteAddr(), f.rt, req, &o, resp, f.rt.cache.Options().MaxObjectBytes, &f.info)
	f.err = err
	return err
}

// serveCached answers through the route's cache.
func (s *Server) serveCached(ctx *fasthttp.RequestCtx, rt *route, o *outbound, info *reqInfo) {
	f := s.fetches.Get().(*cacheFetch)
	f.s, f.rt, f.ctx, f.o, f.err, f.info = s, rt, ctx, *o, nil, reqInfo{}
	res := s.cache.Serve(ctx, rt.cache, f.fn)
	info.cache = res.String()
	info.backend = f.info.backend
	if f.err != nil {
		if clientError(f.err, ctx.RemoteAddr(), o.fr.chunked) != nil {
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
