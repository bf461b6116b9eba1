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
			sc.cs = appendStatus(sc.cs[:0], csHit, fwdNone, 0, e.ttlNs(o.now), "")
			o.respond(e, o.now)
			c.count(o.p, o.now, Hit)
			return Hit
		case actMaxStale:
			sc.cs = appendStatus(sc.cs[:0], csHit, fwdNone, 0, e.ttlNs(o.now), "max-stale")
			o.respond(e, o.now)
			c.count(o.p, o.now, Stale)
			return Stale
		case actSWR:
			if !rq.cc.has(qcNoStore) {
				// A refresh for a request that forbids storing its answer
				// could not update the entry: leave it to another request.
				o.refreshAsync(e)
			}
			sc.cs = appendStatus(sc.cs[:0], csHit, fwdNone, 0, e.ttlNs(o.now), "stale-while-revalidate")
			o.respond(e, o.now)
			c.count(o.p, o.now, Stale)
			return Stale
		}
		fwd = fwdStale
		if forced {
			fwd = fwdRequest
		}
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
			sc.cs = appendStatus(sc.cs[:0], kind, fwdURIMiss, 0, e.ttlNs(o.now), "")
			o.respond(e, o.now)
			c.count(o.p, o.now, Hit)
			return Hit
		}
		fwd = fwdStale
		if forced {
			fwd = fwdRequest
		}
	}
	// The leader's answer was not reusable (private, uncacheable, an
	// error) or took too long: go to the backend ourselves. One client's
	// unstored response is never handed to another.
	return o.forward(e, fwd)
}

// forward fetches from the backend, validating e when it has validators, and
// writes the answer: the stored (or freshened) response, a stale one when
// stale-if-error allows it, or the backend's response passed through.
func (o *op) forward(e *entry, fwd fwdReason) Result {
	o.e, o.fwd = e, fwd
	ctx, sc, rq := o.ctx, o.sc, &o.rq
	head := rq.flags&rqHead != 0
	bypass := fwd == fwdBypass
	validate := e != nil && !head && !bypass && e.hasValidator()
	// The client's own validators are answered from the stored response,
	// so they are not forwarded on a GET (they would turn a storable 200
	// into a 304 only this client can use). If-Range is not one of them: it
	// guards the client's Range, which goes forward unless this is a
	// validation, and without it the origin would send a 206 of a
	// representation the client does not hold (RFC 9110 §13.1.5).
	strip := !head && !bypass && rq.flags&(rqINM|rqIMS) != 0
	breq := &ctx.Request
	var own *fasthttp.Request
	if validate || strip {
		own = fasthttp.AcquireRequest()
		ctx.Request.CopyTo(own)
		delFold(&own.Header, "if-none-match", sc)
		delFold(&own.Header, "if-modified-since", sc)
		if validate {
			// A validation must produce a whole response or a 304;
			// ranges are served from the stored response.
			delFold(&own.Header, "if-range", sc)
			delFold(&own.Header, "range", sc)
			if et := e.etag(); len(et) > 0 {
				own.Header.SetBytesV(fasthttp.HeaderIfNoneMatch, et)
			}
			if lm := e.lastModRaw(); len(lm) > 0 {
				own.Header.SetBytesV(fasthttp.HeaderIfModifiedSince, lm)
			}
		}
		breq = own
	}
	resp := fasthttp.AcquireResponse()
	err := o.up.Fetch(breq, resp)
	o.respTime = o.c.nowNano()
	if own != nil {
		fasthttp.ReleaseRequest(own)
	}
	res, keep := o.answer(resp, err, validate)
	if !keep {
		fasthttp.ReleaseResponse(resp)
	}
	return res
}

// answer turns the backend's response (or error) into the client's answer.
// keep reports that resp's body now belongs to ctx.Response and resp must
// not be released.
func (o *op) answer(resp *fasthttp.Response, err error, validated bool) (Result, bool) {
	c, ctx, sc, rq, e, fwd, respTime := o.c, o.ctx, o.sc, &o.rq, o.e, o.fwd, o.respTime
	bypass := fwd == fwdBypass
	result := Miss
	if bypass {
		result = Bypass
	}
	if err != nil {
		if e != nil && staleIfError(e, rq, respTime) {
			sc.cs = appendStatus(sc.cs[:0], csForward, fwd, 0, e.ttlNs(respTime), "stale-if-error")
			o.respond(e, respTime)
			c.count(o.p, respTime, Stale)
			return Stale, false
		}
		if e != nil && e.flags&(fMustRevalidate|fSharedRevalidate) != 0 {
			// RFC 9111 §5.2.2.2: disconnected, must generate an error; 504.
			o.gatewayTimeout(fwd, 0, "must-revalidate")
			c.count(o.p, respTime, result)
			return result, false
		}
		c.onError(ctx, err)
		sc.cs = appendStatus(sc.cs[:0], csForward, fwd, 0, 0, "error")
		ctx.Response.Header.AddBytesKV(strCacheStatus, sc.cs)
		c.count(o.p, respTime, result)
		return result, false
	}
	status := resp.StatusCode()
	if resp.IsBodyStream() {
		// Too large to buffer: cannot be stored; stream it through.
		o.transfer(resp, nil, status)
		c.count(o.p, respTime, result)
		return result, true
	}
	sc.kvs = collectFields(sc.kvs[:0], &resp.Header)
	var m respMeta
	m.analyze(sc.kvs)
	sc.kvs = addDate(sc.kvs, &m, sc, respTime)

	if validated && status == fasthttp.StatusNotModified {
		if e2 := o.freshen(e, &m, false); e2 != nil {
			sc.cs = appendStatus(sc.cs[:0], csRevalidated, fwd, status, e2.ttlNs(respTime), "")
			o.respond(e2, respTime)
			o.passUnstored(&m)
			c.count(o.p, respTime, Revalidated)
			return Revalidated, false
		}
		// The 304 does not describe the stored response (RFC 9111 §4.3.4
		// finds no response to update): drop it and fetch afresh.
		c.remove(o.s, e)
		fasthttp.ReleaseResponse(resp)
		o.now = respTime // the new fetch's request time
		return o.forward(nil, fwdMiss), true
	}
	if status >= 500 && e != nil && !bypass {
		// RFC 9111 §4.3.3: on a 5xx during validation the cache may act as
		// if the server failed to respond.
		if staleIfError(e, rq, respTime) {
			sc.cs = appendStatus(sc.cs[:0], csForward, fwd, status, e.ttlNs(respTime), "stale-if-error")
			o.respond(e, respTime)
			c.count(o.p, respTime, Stale)
			return Stale, false
		}
		if e.flags&(fMustRevalidate|fSharedRevalidate) != 0 {
			o.gatewayTimeout(fwd, status, "must-revalidate")
			c.count(o.p, respTime, result)
			return result, false
		}
	}
	if rq.flags&rqHead != 0 {
		if status == fasthttp.StatusOK && e != nil {
			if e2 := o.headUpdate(e, &m); e2 != nil {
				// The HEAD response confirmed the stored one: answer with
				// the updated stored fields, which it may not all repeat.
				sc.cs = appendStatus(sc.cs[:0], csRevalidated, fwd, status, e2.ttlNs(respTime), "")
				o.respond(e2, respTime)
				o.passUnstored(&m)
				c.count(o.p, respTime, Revalidated)
				return Revalidated, false
			}
		}
		o.transfer(resp, nil, status)
		c.count(o.p, respTime, result)
		return result, false
	}
	var stored *entry
	if !bypass {
		stored = o.storeResponse(nil, status, resp.Header.StatusMessage(), &m, resp.Body())
		if stored == nil && e != nil && status < 500 && status != fasthttp.StatusPartialContent &&
			status != fasthttp.StatusNotModified && !rq.forbidsStore(&m) {
			// A full response replaces the stored one it was fetched for,
			// even when it may not be stored itself (no-store, private):
			// the old one must not be served again, fresh or stale.
			c.remove(o.s, e)
		}
	}
	if stored != nil && rq.flags&(rqINM|rqIMS) != 0 && rq.notModified(stored) {
		sc.cs = appendStatus(sc.cs[:0], csStored, fwd, status, stored.ttlNs(respTime), "")
		o.respond(stored, respTime)
		c.count(o.p, respTime, result)
		return result, false
	}
	keep := o.transfer(resp, stored, status)
	c.count(o.p, respTime, result)
	return result, keep
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
	sc, now := o.sc, o.now
	e, _, _ := o.lookup()
	if e == nil {
		return false
	}
	ttl := e.ttlNs(now)
	if ttl <= 0 && (maxStaleNs < 0 || -ttl > maxStaleNs) {
		return false
	}
	sc.cs = appendStatus(sc.cs[:0], csHit, fwdNone, 0, ttl, detail)
	o.respond(e, now)
	c.count(p, now, r)
	return true
}
