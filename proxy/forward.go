package proxy

import (
	"errors"
	"io"
	"net"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/balancer"
	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/internal/httpwire"
)

// The way to a backend and back: forward, exchange (with its retries) and the relay of the answer.

// isIdempotent reports whether a request with this method may be sent twice
// (RFC 9110 §9.2.2). POST and PATCH never are.
func isIdempotent(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE":
		return true
	}
	return false
}

// forward sends the request to a backend of the route's pool and relays the answer,
// through the route's cache when it has one.
func (s *Server) forward(ctx *fasthttp.RequestCtx, rt *route, fr framing, info *reqInfo) {
	req := &ctx.Request
	c := clientConn(ctx)
	o := outbound{fr: fr, peer: ctx.RemoteAddr(), tls: ctx.IsTLS(), parsed: fr.rehost}
	if c != nil {
		o.peerIP = c.peerIPText()
	}
	if len(req.Header.Host()) == 0 && len(rt.pool.upstreams) > 0 { // an empty pool answers 503 below
		o.host = []byte(rt.pool.upstreams[0].addr)
	}
	if fr.Chunked || fr.ContentLength {
		bp := s.copyBufs.Get().(*[]byte)
		defer s.copyBufs.Put(bp)
		o.copyBuf = *bp
		if c != nil {
			c.startBody(s.opts.MaxRequestBody)
			defer c.endBody()
		}
	}
	if !req.Header.IsHTTP11() {
		defer closeDelimited(ctx)
	}
	if rt.maxWait > 0 && info.maxWait == 0 && rt.captured(req.Header.Method()) {
		// An order waits for a slot at most its route's max_wait, and not at
		// all when the queue ahead predicts longer: journalled instead, below.
		info.maxWait = rt.maxWait
	}
	if rt.cache != nil {
		s.serveCached(ctx, rt, &o, info)
		return
	}
	if c != nil && c.quiet && req.Header.IsHTTP11() {
		// Interim answers straight to the client connection; not on cached
		// routes, whose fetches may outlive the request (background refresh).
		o.interim = ctx.Conn()
	}
	err := s.exchange(o.peer, rt, req, &o, &ctx.Response, bufferedBodyMax, info)
	info.bodyRead = err == nil
	if err != nil {
		none := noBackend(err)
		if none && rt.pool.gate.Degraded() {
			// Every slot is taken while the pool is degraded: the route's
			// degraded answer, not a bare 503.
			s.refuse(ctx, rt, info)
			return
		}
		if none && rt.action == degrade.ActionCapture && rt.captured(req.Header.Method()) && s.capture(ctx, rt, info) {
			// No backend can take an order: journal it rather than lose it,
			// degraded mode or not.
			s.divert(rt, degrade.OutcomeCapture, info)
			return
		}
		if cerr := clientError(err, o.peer, fr.Chunked); cerr != nil {
			// The client, not the backend, failed: a broken chunk, a body over
			// the limit, a stalled upload. The stream cannot be trusted further.
			ctx.SetConnectionClose()
			err = cerr
		}
		writeError(ctx, rt.name, err)
		return
	}
	if !ctx.Response.IsBodyStream() {
		// The whole response is in hand, so fasthttp will write it in one go and
		// then read the next request: that write may be held (hold.go).
		if c != nil {
			c.holdNext = true
		}
	}
}

// noBackend reports whether err means that no backend could take the request:
// every slot busy until the queue gave up, or none up. Nothing was sent.
func noBackend(err error) bool {
	return errors.Is(err, balancer.ErrSaturated) || errors.Is(err, balancer.ErrNoHealthyBackend)
}

// exchange sends req to a backend of the route's pool, retrying where that is
// safe, and fills out with the answer: whole when its body is at most bufferMax
// bytes of known length, else with a body stream that releases the backend when
// closed. It returns the last error when no backend answered.
func (s *Server) exchange(peer net.Addr, rt *route, req *fasthttp.Request, o *outbound, out *fasthttp.Response, bufferMax int, info *reqInfo) error {
	head := req.Header.IsHead()
	p := rt.pool
	retryable := isIdempotent(req.Header.Method())
	var skip *balancer.Backend
	// Critical requests may use the slots reserved for critical routes; the
	// queue orders requests by class, then by the route's expected service.
	ticket := balancer.Ticket{Class: rt.class, Cost: rt.stats.ExpectedService(), MaxWait: info.maxWait}
	for attempt := 0; ; attempt++ {
		b, err := p.bal.AcquireTicket(skip, ticket)
		if err != nil {
			return err
		}
		taken := time.Since(epoch)
		resp := s.acquireResponse()
		info.backend, info.forwarded = b.Address, true
		bc, err := p.upstreams[b.Index].roundTrip(req, resp, head, o, bufferMax)
		info.failed = err != nil || resp.StatusCode() >= 500
		if err == nil {
			rt.stats.observeService(time.Since(epoch) - taken)
			b.State.Report(resp.StatusCode() < 500)
			s.relay(out, resp, b, bc, rt.stats)
			return nil
		}
		s.releaseResponse(resp)
		b.Release()
		if clientError(err, peer, o.fr.Chunked) != nil {
			// Not the backend's failure: neither its health nor the pool's
			// degraded-mode recorder hears of it.
			info.failed, info.forwarded = false, false
			return err
		}
		b.State.Report(false)
		// Retry only what cannot have reached the backend's application twice:
		// idempotent methods whose body, if any, was not consumed, or anything
		// that never got a connection. Never POST (RFC 9110 §9.2.2).
		canRetry := retryable && attempt < p.retries &&
			(isDialError(err) || (!req.IsBodyStream() && isClosedBeforeResponse(err)))
		if !canRetry {
			s.log.Debug("forward failed", "route", rt.name, "backend", b.Address, "err", err)
			return err
		}
		if len(p.upstreams) > 1 {
			skip = b
		}
	}
}

// acquireResponse returns a Response for a backend's answer. These Responses keep
// their body buffer across uses (KeepBodyBuffer), where fasthttp's own pool hands
// it back to its byte buffer pool on every release, which costs as much as the
// rest of the release.
func (s *Server) acquireResponse() *fasthttp.Response {
	resp := s.resps.Get().(*fasthttp.Response)
	resp.Header.SetNoDefaultContentType(true)
	resp.Header.DisableNormalizing()
	return resp
}

// releaseResponse resets resp for the next acquireResponse. A body buffer grown
// well beyond what a buffered answer takes (capture's replay buffers up to 1 MiB)
// is dropped, so the pool keeps at most 2*bufferedBodyMax per idle Response.
func (s *Server) releaseResponse(resp *fasthttp.Response) {
	resp.ReleaseBody(2 * bufferedBodyMax)
	resp.Reset()
	s.resps.Put(resp)
}

// relay hands the backend's response to the client. A streamed body keeps the
// backend connection and the in-flight slot until fasthttp has written the last
// byte, or failed to; a small body was read whole and both are released now.
func (s *Server) relay(out *fasthttp.Response, resp *fasthttp.Response, b *balancer.Backend, bc *bconn, st *RouteStats) {
	copyResponseHeader(&out.Header, &resp.Header)
	if bc == nil {
		out.SetBody(resp.Body())
		s.releaseResponse(resp)
		b.Release()
		return
	}
	r := s.relays.Get().(*bodyRelay)
	r.s, r.resp, r.b, r.bc, r.st = s, resp, b, bc, st
	cl := -1 // chunked or read-to-close from the backend: chunked to the client
	if bc.body.Mode() == httpwire.BodyFixed {
		cl = int(bc.body.Remaining())
	}
	out.SetBodyStream(r, cl)
}

// bodyRelay is the response body stream handed to fasthttp. Close returns the
// backend connection, the in-flight slot and the relay itself to their pools.
//
// A body that fails midway (the backend closed or reset in the middle, or broke
// the chunked framing) fails the Read: fasthttp then stops writing, sends no last
// chunk and closes the client connection, and the cache does not store it. The
// route counts it (Truncated).
type bodyRelay struct {
	s      *Server
	resp   *fasthttp.Response
	b      *balancer.Backend
	bc     *bconn
	st     *RouteStats
	failed bool
}

func (r *bodyRelay) Read(p []byte) (int, error) {
	n, err := r.bc.body.Read(p)
	if err != nil && err != io.EOF && !r.failed {
		r.failed = true
		r.st.truncated.Add(1)
	}
	return n, err
}

func (r *bodyRelay) Close() error {
	if r.failed {
		r.b.State.Report(false)
	}
	// The connection is reusable only if the body was read to its exact end and
	// the backend did not ask to close; a body ended by the backend closing the
	// connection (no length, no chunking) never is.
	r.bc.done(r.bc.body.Complete() && !r.failed && !r.resp.Header.ConnectionClose() && r.bc.body.Mode() != httpwire.BodyToClose)
	r.bc.body = httpwire.BodyReader{}
	s := r.s
	s.releaseResponse(r.resp)
	r.b.Release()
	*r = bodyRelay{}
	s.relays.Put(r)
	return nil
}
