package proxy

import (
	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/degrade"
)

// degraded applies the route's degraded-mode policy (degrade.Decide) while its
// pool's gate is raised. It answers and returns true unless the request is to be
// forwarded as usual.
func (s *Server) degraded(ctx *fasthttp.RequestCtx, rt *route, lvl degrade.Level, info *reqInfo) bool {
	switch degrade.Decide(lvl, rt.prio, rt.action, rt.capture(ctx.Request.Header.Method()), rt.pool.bal.Limited()) {
	case degrade.OutcomeForward:
		return false
	case degrade.OutcomeFreeSlot:
		// Refused by the level, but a free slot is never left idle: forward
		// if one is free now, without waiting; forward's refuse gives the
		// route's action otherwise (a fresh cached copy first, on the way).
		info.maxWait = -1
		return false
	case degrade.OutcomeStale:
		// A stale page costs the backends nothing; on a miss the request is
		// forwarded if its priority is admitted at this level, or else onto a
		// slot that is free now (in a pool with a connection limit).
		if rt.cache != nil && s.cache.ServeStale(ctx, rt.cache) {
			// Not held-back demand: in normal mode these requests would be
			// fresh hits, or one refresh per page per TTL, not one backend
			// request each. Counting them (issue 15) made a site whose pages
			// are popular look saturated for as long as they were asked for,
			// and the pool left degraded mode only once traffic stopped.
			s.answered(rt, degrade.OutcomeStale, info)
			return true
		}
		if degrade.Admit(rt.prio, lvl) {
			return false
		}
		if rt.pool.bal.Limited() {
			info.maxWait = -1 // a miss takes a free slot, as OutcomeFreeSlot
			return false
		}
		s.refusedAnswer(ctx, rt, info)
	case degrade.OutcomeCapture:
		if s.capture(ctx, rt, info) {
			s.divert(rt, degrade.OutcomeCapture, info)
			return true
		}
		s.refusedAnswer(ctx, rt, info)
	default:
		// Refused: static or shed. A fresh copy in the cache costs the
		// backends nothing, so it is still the answer (the spike showed
		// fresh hits of refused routes thrown away otherwise); it is an
		// ordinary hit, not held-back demand.
		if rt.cache != nil && s.cache.ServeFresh(ctx, rt.cache) {
			info.cache = "hit"
			return true
		}
		s.refusedAnswer(ctx, rt, info)
	}
	return true
}

// refuse answers a request that was admitted but that the pool could not take
// (every slot busy until the queue timeout, or no backend up) while the pool
// is degraded, with the route's degraded answer: an order is journalled, a
// cached page is served stale if the route allows it.
func (s *Server) refuse(ctx *fasthttp.RequestCtx, rt *route, info *reqInfo) {
	ctx.Response.Reset()
	switch {
	case rt.capture(ctx.Request.Header.Method()) != degrade.CaptureNo && s.capture(ctx, rt, info):
		s.divert(rt, degrade.OutcomeCapture, info)
	case rt.action == degrade.ActionStale && rt.cache != nil && s.cache.ServeStale(ctx, rt.cache):
		s.divert(rt, degrade.OutcomeStale, info)
	default:
		s.refusedAnswer(ctx, rt, info)
	}
}

// refusedAnswer writes the route's answer to a refused request: its static
// page, or the shed answer.
func (s *Server) refusedAnswer(ctx *fasthttp.RequestCtx, rt *route, info *reqInfo) {
	if rt.action == degrade.ActionStatic {
		s.answerStatic(ctx, rt)
		s.divert(rt, degrade.OutcomeStatic, info)
		return
	}
	s.answerShed(ctx, rt)
	s.divert(rt, degrade.OutcomeShed, info)
}

// divert counts a request degraded mode kept from the pool although it would
// have reached it otherwise: the demand the monitor weighs before leaving
// degraded mode.
func (s *Server) divert(rt *route, o degrade.Outcome, info *reqInfo) {
	rt.pool.rec.Divert(rt.prio)
	s.answered(rt, o, info)
}

// answered counts a degraded answer in the route's statistics and the access
// log, without counting it as held-back demand.
func (s *Server) answered(rt *route, o degrade.Outcome, info *reqInfo) {
	rt.stats.degraded[o].Add(1)
	info.degraded = o.String()
}

// answerShed writes the route's shed answer: 503 (or 429) with Retry-After.
func (s *Server) answerShed(ctx *fasthttp.RequestCtx, rt *route) {
	r := &ctx.Response
	r.Reset()
	if sh := rt.shed; sh != nil {
		r.SetStatusCode(sh.Status)
		if sh.RetryAfter != "" {
			r.Header.Set("Retry-After", sh.RetryAfter)
		}
		r.Header.SetContentType("text/plain; charset=utf-8")
		r.SetBodyRaw(sh.Body)
		return
	}
	r.SetStatusCode(fasthttp.StatusServiceUnavailable)
	r.Header.Set("Retry-After", "5")
	r.Header.SetContentType("text/plain; charset=utf-8")
	r.SetBodyString("503 Service Unavailable\n")
}

// answerStatic writes the route's static answer, from memory.
func (s *Server) answerStatic(ctx *fasthttp.RequestCtx, rt *route) {
	st := rt.static
	r := &ctx.Response
	r.Reset()
	r.SetStatusCode(st.Status)
	r.Header.SetContentType(st.ContentType)
	for _, h := range st.Header {
		r.Header.Set(h.Name, h.Value)
	}
	r.SetBodyRaw(st.Body)
}

// capture journals the request (issue 8). Until a journal is configured it
// declines, and the caller sheds.
func (s *Server) capture(ctx *fasthttp.RequestCtx, rt *route, info *reqInfo) bool {
	if s.opts.Capture == nil {
		return false
	}
	return s.opts.Capture.capture(s, ctx, rt, info)
}
