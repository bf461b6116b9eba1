package proxy

import (
	"bufio"
	"io"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/balancer"
	"github.com/floodgate/floodgate/internal/httpwire"
	"github.com/floodgate/floodgate/internal/panics"
)

// tunnel proxies a protocol upgrade (WebSocket): the handshake goes to a backend
// over a connection of its own, and when the backend answers 101 Switching
// Protocols both connections are spliced until either side closes. fasthttp has no
// upgrade support, so the client connection is hijacked. Upgrades are rare; this
// path may allocate.
func (s *Server) tunnel(ctx *fasthttp.RequestCtx, rt *route, info *reqInfo) {
	req := &ctx.Request
	o := outbound{peer: ctx.RemoteAddr(), tls: ctx.IsTLS(), upgrade: append([]byte(nil), req.Header.Peek("Upgrade")...)}

	b, err := rt.pool.bal.AcquireTicket(nil, balancer.Ticket{Class: rt.class, MaxWait: info.maxWait})
	if err != nil {
		if noBackend(err) && rt.pool.gate.Degraded() {
			s.refuse(ctx, rt, info) // the route's degraded answer, as forward gives
			return
		}
		writeError(ctx, rt.name, err)
		return
	}
	up := rt.pool.upstreams[b.Index]
	bc, err := net.DialTimeout("tcp", up.addr, up.connect)
	if err != nil {
		b.Release()
		b.State.Report(false)
		writeError(ctx, rt.name, &dialError{err})
		return
	}
	_ = bc.SetDeadline(time.Now().Add(up.response))
	if o.host == nil {
		o.host = []byte(up.addr)
	}
	bw := bufio.NewWriter(bc)
	if err = writeRequest(bw, req, &o); err == nil {
		err = bw.Flush()
	}
	if err != nil {
		bc.Close()
		b.Release()
		writeError(ctx, rt.name, err)
		return
	}
	br := bufio.NewReader(bc)
	var resp fasthttp.Response
	resp.Header.DisableNormalizing()
	resp.Header.SetNoDefaultContentType(true)
	if err = readUpgradeHead(br, &resp.Header); err != nil {
		bc.Close()
		b.Release()
		b.State.Report(false)
		writeError(ctx, rt.name, err)
		return
	}
	if resp.StatusCode() != fasthttp.StatusSwitchingProtocols {
		// The backend declined the upgrade: relay its answer as a normal response.
		err = resp.ReadBody(br, 1<<20)
		bc.Close()
		b.Release()
		if err != nil {
			writeError(ctx, rt.name, err)
			return
		}
		b.State.Report(resp.StatusCode() < 500)
		copyResponseHeader(&ctx.Response.Header, &resp.Header)
		ctx.Response.SetBody(resp.Body())
		return
	}
	b.State.Report(true)
	_ = bc.SetDeadline(time.Time{})
	head := appendSwitchingHead(nil, &resp.Header)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(cc net.Conn) { // run by fasthttp in a goroutine of its own
		defer b.Release()
		defer bc.Close()
		defer panics.Recover(s.log, "websocket tunnel") // the deferred closes above still run
		if pc, ok := cc.(*conn); ok {
			pc.tunneled = true // a WebSocket may stay quiet for long
		}
		_ = cc.SetReadDeadline(time.Time{})
		if _, err := cc.Write(head); err != nil {
			return
		}
		splice(cc, bc, br)
	})
}

// splice copies both ways until one side ends, then closes both so the other copy
// ends too. br holds what the backend sent after its 101 header.
func splice(client, backend net.Conn, br *bufio.Reader) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(backend, client)
		closeWrite(backend)
	}()
	_, _ = io.Copy(client, br)
	closeWrite(client)
	wg.Wait()
}

// closeWrite half-closes a TCP connection so the peer sees EOF, or closes it.
func closeWrite(c net.Conn) {
	if tc, ok := c.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
		return
	}
	_ = c.Close()
}

// readUpgradeHead reads the backend's answer to an upgrade request: a 101, or the
// final answer of a declined upgrade. Interim answers before it are skipped (at
// most maxInterim); the answer must be HTTP/1.x with a status in 100-599.
func readUpgradeHead(br *bufio.Reader, h *fasthttp.ResponseHeader) error {
	for interim := 0; ; interim++ {
		if err := httpwire.CheckStatusDigit(br); err != nil {
			return err
		}
		if err := h.Read(br); err != nil {
			return err
		}
		if !httpwire.ValidVersion(h.Protocol()) {
			return httpwire.ErrNotHTTP1
		}
		code := h.StatusCode()
		switch {
		case !httpwire.ValidStatus(code):
			return httpwire.ErrBadStatus
		case code >= 200 || code == fasthttp.StatusSwitchingProtocols:
			return nil
		case interim == maxInterim:
			return errInterimFlood
		}
	}
}
