package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/internal/limits"
)

// fastBackend is a fasthttp server answering a fixed 128-byte body, like the backend
// of bench/compare.sh.
func fastBackend(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 128)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("text/plain")
		ctx.SetBody(body)
	}}
	go srv.Serve(ln) //nolint:errcheck
	tb.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String()
}

const benchRequest = "GET /product/42?ref=tv HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: bench\r\nAccept: */*\r\nCookie: session=abc\r\nX-Forwarded-For: 198.51.100.1\r\n\r\n"

// handlerRun runs one request through the proxy's handler, with the response written
// to io.Discard, as fasthttp's server would.
type handlerRun struct {
	s   *Server
	ctx fasthttp.RequestCtx
	br  *bufio.Reader
	src *bytes.Reader
	bw  *bufio.Writer
	raw []byte
}

func newHandlerRun(s *Server) *handlerRun {
	h := &handlerRun{s: s, src: bytes.NewReader(nil), bw: bufio.NewWriter(io.Discard), raw: []byte(benchRequest)}
	h.br = bufio.NewReader(h.src)
	h.ctx.Init(&fasthttp.Request{}, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5000}, nil)
	return h
}

func (h *handlerRun) do(tb testing.TB) {
	h.src.Reset(h.raw)
	h.br.Reset(h.src)
	h.ctx.Request.Reset()
	h.ctx.Response.Reset()
	if err := h.ctx.Request.Read(h.br); err != nil {
		tb.Fatal(err)
	}
	h.s.serve(&h.ctx)
	if h.ctx.Response.StatusCode() != 200 {
		tb.Fatalf("status %d: %s", h.ctx.Response.StatusCode(), h.ctx.Response.Body())
	}
	if err := h.ctx.Response.Write(h.bw); err != nil {
		tb.Fatal(err)
	}
	h.ctx.Response.Reset() // closes the body stream, returning the backend connection
}

// TestHandlerAllocatesNothing is the request path's zero-allocation budget,
// enforced: a small GET through the handler, backend round trip included.
func TestHandlerAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector; CI runs this test without it")
	}
	px := newTestProxy(t, Options{}, PoolSpec{}, fastBackend(t), fastBackend(t))
	h := newHandlerRun(px.s)
	for i := 0; i < 100; i++ { // warm pools and connections
		h.do(t)
	}
	if n := steadyAllocs(func() { h.do(t) }); n != 0 {
		t.Fatalf("handler allocates %.2f times per request, want 0", n)
	}
}

func BenchmarkHandlerGET(b *testing.B) {
	px := newTestProxy(b, Options{}, PoolSpec{}, fastBackend(b), fastBackend(b), fastBackend(b))
	h := newHandlerRun(px.s)
	for i := 0; i < 100; i++ {
		h.do(b)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.do(b)
	}
}

// BenchmarkProxyGET is the whole path over loopback sockets: client, proxy and
// backend are all in this process, so allocs/op counts all three.
func BenchmarkProxyGET(b *testing.B) {
	px := newTestProxy(b, Options{}, PoolSpec{}, fastBackend(b), fastBackend(b), fastBackend(b))
	c := &fasthttp.HostClient{Addr: px.addr, MaxConns: 256, ReadTimeout: 5 * time.Second}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://shop.example/product/42?ref=tv")
		for pb.Next() {
			if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				b.Errorf("%v %d", err, resp.StatusCode())
				return
			}
		}
	})
}

// TestGuardedHandlerAllocatesNothing: access lists and a per-client rate limit keep
// the request path allocation-free once the client's bucket exists.
func TestGuardedHandlerAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	px := newTestProxy(t, Options{}, PoolSpec{}, fastBackend(t))
	snap, err := px.s.Build(Spec{Gen: 2, Pools: []PoolSpec{{Pool: px.s.Current().Pool("p")}}, Routes: []RouteSpec{{
		Name: "r", PathPrefix: "/", Pool: "p",
		AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
		DenyCIDRs:  []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
		RateLimit:  &RateLimitSpec{Rate: limits.MaxRate, Burst: limits.MaxBurst},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	px.s.Swap(snap)
	h := newHandlerRun(px.s)
	for i := 0; i < 100; i++ {
		h.do(t)
	}
	if n := steadyAllocs(func() { h.do(t) }); n != 0 {
		t.Fatalf("guarded handler allocates %.2f times per request, want 0", n)
	}
}

// steadyAllocs is testing.AllocsPerRun, taking the lowest of three measurements:
// a garbage collection during a run empties the sync.Pools that keep the request
// path allocation-free, and other tests' goroutines in the same process can cause
// one. A real per-request allocation shows in all three.
func steadyAllocs(f func()) float64 {
	best := testing.AllocsPerRun(1000, f)
	for i := 0; i < 2 && best > 0; i++ {
		best = min(best, testing.AllocsPerRun(1000, f))
	}
	return best
}
