package cache

import (
	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/internal/panics"
)

// refreshAsync starts one background refresh of e for
// stale-while-revalidate (RFC 5861 §3), unless one is already running, the
// cache is closed, or too many are in flight. The refresh owns everything it
// uses: a copy of the request, a Fetcher from o.up.Detach, its own response
// and op; nothing of o, o.ctx or o.up's per-request state outlives Serve.
func (o *op) refreshAsync(e *entry) {
	c, p := o.c, o.p
	if !e.refreshing.CompareAndSwap(0, 1) {
		return
	}
	c.bgMu.Lock()
	if c.closed {
		c.bgMu.Unlock()
		e.refreshing.Store(0)
		return
	}
	select {
	case c.bgSlots <- struct{}{}:
	default:
		c.bgMu.Unlock()
		e.refreshing.Store(0)
		return
	}
	c.bg.Add(1)
	c.bgMu.Unlock()
	fetch := o.up.Detach()
	req := fasthttp.AcquireRequest()
	o.ctx.Request.Header.CopyTo(&req.Header) // the header only: a GET's body is not resent
	// The refresh replaces the stored GET response, whatever the method of
	// the request that found it stale: the answer to a HEAD has no body and
	// would be stored as an empty one.
	req.Header.SetMethod(fasthttp.MethodGet)
	go func() {
		defer func() {
			fasthttp.ReleaseRequest(req)
			e.refreshing.Store(0)
			<-c.bgSlots
			c.bg.Done()
		}()
		defer panics.Recover(c.log, "cache: stale-while-revalidate refresh")
		c.refresh(req, p, fetch, e)
	}()
}

// refresh revalidates or refetches e in the background and stores the
// result. It releases its response in every path: a body too large to buffer
// arrives as a stream that holds the backend's connection and in-flight slot,
// and is closed unread.
func (c *Cache) refresh(req *fasthttp.Request, p *Policy, fetch Fetcher, e *entry) {
	o := op{c: c, p: p, sc: getScratch(), hash: e.hash, s: c.shardOf(e.hash)}
	defer putScratch(o.sc)
	sc, rq := o.sc, &o.rq
	sc.key = append(sc.key[:0], e.key()...)
	sc.gen = c.genOf(e.hash) // before the fetch
	rq.parse(&req.Header)
	validation(&req.Header, e, sc)
	rq.flags &^= rqINM | rqIMS | rqIfRange | rqRange
	resp := fasthttp.AcquireResponse()
	defer func() {
		if resp.IsBodyStream() {
			_ = resp.CloseBodyStream()
		}
		fasthttp.ReleaseResponse(resp)
	}()
	o.now = c.nowNano()
	err := fetch(req, resp)
	o.respTime = c.nowNano()
	if err != nil {
		c.log.Debug("cache: background revalidation failed", "key", string(sc.key), "error", err)
		return
	}
	if resp.IsBodyStream() {
		return // too large to store; closed unread by the deferred release
	}
	status := resp.StatusCode()
	sc.kvs = collectFields(sc.kvs[:0], &resp.Header)
	var m respMeta
	m.analyze(sc.kvs)
	sc.kvs = addDate(sc.kvs, &m, sc, o.respTime)
	switch {
	case rq.forbidsStore(&m):
		// The answer was for this client alone (its Authorization): the
		// shared entry is neither updated nor dropped because of it.
	case status == fasthttp.StatusNotModified && e.hasValidator():
		if o.freshen(e, &m, false) == nil {
			c.remove(o.s, e)
		}
	case status >= 500:
		c.log.Debug("cache: background revalidation got a server error", "key", string(sc.key), "status", status)
	default:
		if o.storeResponse(e, status, resp.Header.StatusMessage(), &m, resp.Body()) == nil {
			c.remove(o.s, e) // the origin no longer allows storing it, or it varies otherwise
		}
	}
}
