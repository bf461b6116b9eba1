package cache

import (
	"time"

	"github.com/valyala/fasthttp"
)

// Fetcher sends req to a backend and fills resp: status, header fields and
// the whole body, or a body stream (resp.IsBodyStream()) for a body too
// large to buffer, which the cache passes through unstored. A non-nil error
// means there is no usable response (refused, reset, timed out); that is
// when stale-if-error applies. The cache owns neither req nor resp after
// the call returns and never calls a Fetcher concurrently with itself for
// the same req/resp pair. Background refreshes call it from another
// goroutine after Serve has returned, with their own req and resp.
type Fetcher func(req *fasthttp.Request, resp *fasthttp.Response) error

// Upstream is a request's way to its backend, for ServeUpstream. Fetch is
// called like a Fetcher, only on the goroutine of the Serve call and before it
// returns, so it may use per-request state the caller recycles afterwards.
// Detach is called (on that goroutine, before Serve returns) when a
// stale-while-revalidate refresh is about to start in the background: it
// returns a Fetcher that owns everything it needs, stays valid after Serve
// returns, and is called once, from another goroutine, with the refresh's own
// request and response.
type Upstream interface {
	Fetch(req *fasthttp.Request, resp *fasthttp.Response) error
	Detach() Fetcher
}

// Fetch calls f.
func (f Fetcher) Fetch(req *fasthttp.Request, resp *fasthttp.Response) error { return f(req, resp) }

// Detach returns f itself: a plain Fetcher must stay valid after Serve returns.
func (f Fetcher) Detach() Fetcher { return f }

var _ Upstream = Fetcher(nil)

// Serve answers ctx for a cache-enabled route, following RFC 9111 for a
// shared cache; docs/cache.md lists the rules and the deviations. ctx.Request must already be what the backend
// should see. GET and HEAD go through the cache; any other method is
// forwarded with fetch (using ctx.Request and ctx.Response directly) and,
// when it succeeds and the method is unsafe, invalidates the stored
// responses for the target URI and same-origin Location and
// Content-Location (RFC 9111 §4.4). Serve always writes a complete answer
// into ctx.Response, with Age and Cache-Status (RFC 9211) when it comes
// from the store, and returns what it did. p and fetch must not be nil.
// A hit allocates nothing. Serve does not retain ctx after returning.
func (c *Cache) Serve(ctx *fasthttp.RequestCtx, p *Policy, fetch Fetcher) Result {
	return c.ServeUpstream(ctx, p, fetch)
}

// ServeUpstream is Serve with an Upstream, for a fetcher bound to per-request
// state that a background refresh must not share: see Upstream.
func (c *Cache) ServeUpstream(ctx *fasthttp.RequestCtx, p *Policy, up Upstream) Result {
	h := &ctx.Request.Header
	if !h.IsGet() && !h.IsHead() {
		return c.serveUnsafe(ctx, p, up)
	}
	o := op{c: c, ctx: ctx, p: p, up: up, sc: getScratch()}
	r := o.serve()
	putScratch(o.sc)
	return r
}

// serve answers a GET or HEAD: from the store when a stored response may be
// used, otherwise by forwarding, possibly collapsed with other requests for
// the same response.
func (o *op) serve() Result {
	c, sc, rq := o.c, o.sc, &o.rq
	o.begin()
	sc.gen = c.genOf(o.hash) // before any fetch

	if rq.flags&rqPrecondition != 0 {
		// RFC 9111 §4.3.2: If-Match and If-Unmodified-Since are for the
		// origin to evaluate; pass the request through untouched.
		res := o.forward(nil, fwdBypass)
		if res == Miss {
			res = Bypass
		}
		return res
	}

	e, fwd, marker := o.lookup()
	if marker {
		rq.flags |= rqMarked
	}
	if e != nil && rq.flags&rqAuth != 0 && !e.sharedForAuth() {
		// RFC 9111 §3.5: the stored response says nothing about requests
		// with credentials; the origin answers this one. Its answer is
		// not stored (storable) and leaves e as it is.
		e, fwd = nil, fwdRequest
	}
	forced := false
	if e != nil {
		var act action
		act, forced = decide(e, rq, o.now)
		switch act {
		case actFresh:
			return o.answerStored(e, csHit, fwdNone, "", Hit)
		case actMaxStale:
			return o.answerStored(e, csHit, fwdNone, "max-stale", Stale)
		case actSWR:
			if !rq.cc.has(qcNoStore) {
				// A refresh for a request that forbids storing its answer
				// could not update the entry: leave it to another request.
				o.refreshAsync(e)
			}
			return o.answerStored(e, csHit, fwdNone, "stale-while-revalidate", Stale)
		}
		fwd = storedFwd(forced)
	}
	if rq.cc.has(qcOnlyIfCached) {
		// RFC 9111 §5.2.1.7: no usable stored response, 504.
		o.gatewayTimeout(fwdNone, 0, "only-if-cached")
		c.count(o.p, o.now, Miss)
		return Miss
	}

	collapse := c.coalesce > 0 && !marker && !forced &&
		rq.flags&(rqHead|rqRange) == 0 && !rq.cc.has(qcNoStore|qcNoCache|qcMaxAge|qcMinFresh) &&
		(e == nil || (e.lifetime > 0 && e.flags&fNoCache == 0))
	if !collapse {
		return o.forward(e, fwd)
	}
	sc.fkey = append(sc.fkey[:0], sc.key...)
	switch {
	case e != nil:
		sc.fkey = append(append(sc.fkey, 0), e.vkey()...)
	case fwd == fwdVaryMiss:
		sc.fkey = append(append(sc.fkey, 0), sc.vkey...)
	}
	f, leader := o.s.join(sc.fkey)
	if leader {
		defer o.s.finish(f)
		return o.forward(e, fwd)
	}
	if c.onWait != nil {
		c.onWait()
	}
	t := time.NewTimer(c.coalesce)
	woke := false
	select {
	case <-f.done:
		woke = true
	case <-t.C:
	}
	t.Stop()
	// Waiting took time: read the clock again for this decision.
	o.now = c.nowNano()
	e, fwd, _ = o.lookup()
	if e != nil && rq.flags&rqAuth != 0 && !e.sharedForAuth() {
		e, fwd = nil, fwdRequest // as above
	}
	if e != nil {
		act, forced := decide(e, rq, o.now)
		if act == actFresh {
			// The leader's response was stored and is fresh: reuse it
			// (RFC 9111 §4, collapsed requests). Counted as a hit since
			// the backend never saw this request.
			kind := csHit
			if woke {
				kind = csCollapsed
			}
			return o.answerStored(e, kind, fwdURIMiss, "", Hit)
		}
		fwd = storedFwd(forced)
	}
	// The leader's answer was not reusable (private, uncacheable, an
	// error) or took too long: go to the backend ourselves. One client's
	// unstored response is never handed to another.
	return o.forward(e, fwd)
}

// ServeStale serves a stored response for ctx in degraded mode: if one
// exists for the GET or HEAD request (Vary honoured) and is fresh or at
// most p.MaxStale past its freshness lifetime, it writes it into
// ctx.Response with Age and "Cache-Status: floodgate; hit; ttl=N;
// detail=degraded", counts a Stale result and returns true; otherwise it
// writes nothing and returns false. It never contacts a backend.
//
// This deliberately ignores no-cache, must-revalidate, proxy-revalidate and
// s-maxage, and request directives: RFC 9111 §4.2.4 forbids serving such
// responses stale, but the operator opted in with max_stale for when the
// backends are saturated, and serving a page a few minutes old beats
// failing. Warning is not generated (RFC 9111 obsoleted it).
func (c *Cache) ServeStale(ctx *fasthttp.RequestCtx, p *Policy) bool {
	return c.serveStored(ctx, p, p.maxStaleNs, "degraded", Stale)
}

// ServeFresh serves a stored response for ctx only if it is fresh, as a hit
// ("Cache-Status: floodgate; hit; ttl=N"), and returns true; otherwise it writes
// nothing and returns false. It never contacts a backend. Degraded mode uses it
// for requests it refuses: a fresh page costs the backends nothing, so refusing
// it would only throw an answer away. Request directives (no-cache, max-age)
// are not honoured: the alternative is a refusal, not a fresher copy.
func (c *Cache) ServeFresh(ctx *fasthttp.RequestCtx, p *Policy) bool {
	return c.serveStored(ctx, p, -1, "", Hit)
}

// serveStored answers from a stored entry at most maxStaleNs past its
// freshness lifetime (negative: fresh only), with detail in Cache-Status, and
// counts r.
func (c *Cache) serveStored(ctx *fasthttp.RequestCtx, p *Policy, maxStaleNs int64, detail string, r Result) bool {
	h := &ctx.Request.Header
	if !h.IsGet() && !h.IsHead() {
		return false
	}
	o := op{c: c, ctx: ctx, p: p, sc: getScratch()}
	defer putScratch(o.sc)
	o.begin()
	now := o.now
	e, _, _ := o.lookup()
	if e == nil {
		return false
	}
	ttl := e.ttlNs(now)
	if ttl <= 0 && (maxStaleNs < 0 || -ttl > maxStaleNs) {
		return false
	}
	o.answerStored(e, csHit, fwdNone, detail, r)
	return true
}

// answerStored answers from the stored entry e, with Cache-Status kind, fwd
// and detail, and counts r, which it returns.
func (o *op) answerStored(e *entry, kind int, fwd fwdReason, detail string, r Result) Result {
	o.sc.cs = appendStatus(o.sc.cs[:0], kind, fwd, 0, e.ttlNs(o.now), detail)
	o.respond(e, o.now)
	o.c.count(o.p, o.now, r)
	return r
}

// storedFwd is why a request goes to the backend although an entry is
// stored: to revalidate a stale one, or because the request forced it.
func storedFwd(forced bool) fwdReason {
	if forced {
		return fwdRequest
	}
	return fwdStale
}
