package cache

import "github.com/valyala/fasthttp"

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
		if validate {
			validation(&own.Header, e, sc)
		} else {
			delFold(&own.Header, "if-none-match", sc)
			delFold(&own.Header, "if-modified-since", sc)
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

// validation makes h the request that revalidates e: the client's own
// validators and range go, and e's validators come in. A validation must
// produce a whole response or a 304; ranges are served from the stored
// response.
func validation(h *fasthttp.RequestHeader, e *entry, sc *scratch) {
	delFold(h, "if-none-match", sc)
	delFold(h, "if-modified-since", sc)
	delFold(h, "if-range", sc)
	delFold(h, "range", sc)
	if et := e.etag(); len(et) > 0 {
		h.SetBytesV(fasthttp.HeaderIfNoneMatch, et)
	}
	if lm := e.lastModRaw(); len(lm) > 0 {
		h.SetBytesV(fasthttp.HeaderIfModifiedSince, lm)
	}
}
