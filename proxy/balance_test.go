package proxy

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/balancer"
	"github.com/floodgate/floodgate/health"
)

// countingBackend is a fasthttp server on loopback that counts what it serves and can
// be stopped and restarted on the same address.
type countingBackend struct {
	t     testing.TB
	addr  string
	n     atomic.Int64
	mu    sync.Mutex
	srv   *fasthttp.Server
	ln    net.Listener
	block chan struct{} // when non-nil, requests wait on it
}

func newCountingBackend(t testing.TB) *countingBackend {
	b := &countingBackend{t: t}
	b.start("127.0.0.1:0")
	t.Cleanup(b.stop)
	return b
}

func (b *countingBackend) start(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		b.t.Fatal(err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.addr, b.ln = ln.Addr().String(), ln
	block := b.block
	b.srv = &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if block != nil {
			<-block
		}
		b.n.Add(1)
		ctx.SetBodyString(b.addr)
	}}
	go b.srv.Serve(ln) //nolint:errcheck
}

// stop closes the listener and every connection, like a killed process.
func (b *countingBackend) stop() {
	b.mu.Lock()
	srv := b.srv
	b.mu.Unlock()
	if srv != nil {
		_ = srv.Shutdown()
	}
}

// weightedProxy is a Server with one pool of the given backends and weights.
func weightedProxy(t testing.TB, ps PoolSpec, po balancer.PoolOptions, addrs []string, weights []int) (*testProxy, *balancer.Pool) {
	t.Helper()
	return weightedProxyOpts(t, Options{}, ps, po, addrs, weights)
}

// weightedProxyOpts is weightedProxy with the proxy's options.
func weightedProxyOpts(t testing.TB, opts Options, ps PoolSpec, po balancer.PoolOptions, addrs []string, weights []int) (*testProxy, *balancer.Pool) {
	t.Helper()
	for i, a := range addrs {
		po.Backends = append(po.Backends, balancer.BackendSpec{Address: a, Weight: weights[i], State: balancer.NewBackendState("p/" + a)})
	}
	po.Name = "p"
	if po.State == nil {
		po.State = balancer.NewPoolState("p")
	}
	pool, err := balancer.NewPool(po)
	if err != nil {
		t.Fatal(err)
	}
	ps.Pool = pool
	s := New(opts)
	snap, err := s.Build(Spec{Gen: 1, Pools: []PoolSpec{ps}, Routes: []RouteSpec{{Name: "r", PathPrefix: "/", Pool: "p"}}})
	if err != nil {
		t.Fatal(err)
	}
	s.Swap(snap)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Shutdown(contextWithTimeout(t, 5*time.Second)); <-done })
	return &testProxy{s: s, addr: ln.Addr().String()}, pool
}

// load sends n GETs through the proxy from c concurrent clients and returns the
// status counts.
func load(t testing.TB, addr string, n, c int) map[int]int {
	t.Helper()
	hc := &fasthttp.HostClient{Addr: addr, MaxConns: c, ReadTimeout: 10 * time.Second}
	var mu sync.Mutex
	got := map[int]int{}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI("http://x/")
			for next.Add(1) <= int64(n) {
				code := 0
				if err := hc.Do(req, resp); err == nil {
					code = resp.StatusCode()
				}
				mu.Lock()
				got[code]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return got
}

func TestWeightedDistributionIsExact(t *testing.T) {
	a, b := newCountingBackend(t), newCountingBackend(t)
	px, _ := weightedProxy(t, PoolSpec{}, balancer.PoolOptions{}, []string{a.addr, b.addr}, []int{60, 40})
	got := load(t, px.addr, 10000, 8)
	if got[200] != 10000 {
		t.Fatalf("statuses %v", got)
	}
	if a.n.Load() != 6000 || b.n.Load() != 4000 {
		t.Fatalf("60/40 over 10,000 requests gave %d/%d, want exactly 6000/4000", a.n.Load(), b.n.Load())
	}
}

func TestNoHealthyBackendIs503AtOnce(t *testing.T) {
	a := newCountingBackend(t)
	px, pool := weightedProxy(t, PoolSpec{}, balancer.PoolOptions{}, []string{a.addr}, []int{1})
	pool.Backends()[0].State.SetProbeUp(false)
	start := time.Now()
	var resp fasthttp.Response
	if err := fasthttp.Do(requestTo(px.addr), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != 503 || len(resp.Header.Peek("Retry-After")) == 0 || !strings.Contains(string(resp.Body()), "route r: no healthy backend") {
		t.Fatalf("want 503 with Retry-After and a clear body, got %d %q", resp.StatusCode(), resp.Body())
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v; a pool with no backend up must answer at once", d)
	}
}

// TestSaturatedPoolQueuesThen503 fills a backend's connection limit, then checks that
// one more request waits in the queue and is served when a slot frees, and that
// requests beyond the queue get 503 with Retry-After instead of piling up.
func TestSaturatedPoolQueuesThen503(t *testing.T) {
	a := &countingBackend{t: t, block: make(chan struct{})}
	a.start("127.0.0.1:0")
	t.Cleanup(a.stop)
	px, pool := weightedProxy(t, PoolSpec{MaxConnsPerBackend: 1}, balancer.PoolOptions{MaxConnsPerBackend: 1, QueueMax: 1, QueueTimeout: 5 * time.Second}, []string{a.addr}, []int{1})
	results := make(chan int, 3)
	send := func() {
		var resp fasthttp.Response
		if err := fasthttp.DoTimeout(requestTo(px.addr), &resp, 10*time.Second); err != nil {
			results <- 0
			return
		}
		results <- resp.StatusCode()
	}
	go send() // takes the only slot, blocks in the backend
	waitUntil(t, "the first request holds the slot", func() bool { return pool.Backends()[0].State.Inflight() == 1 })
	go send() // queued
	waitUntil(t, "the second request is queued", func() bool { return pool.State().QueueStats().Depth == 1 })
	var over fasthttp.Response
	if err := fasthttp.DoTimeout(requestTo(px.addr), &over, 2*time.Second); err != nil { // beyond the queue
		t.Fatal(err)
	}
	if over.StatusCode() != 503 || len(over.Header.Peek("Retry-After")) == 0 || !strings.Contains(string(over.Body()), "all backends busy") {
		t.Fatalf("request beyond the queue: want 503 with Retry-After, got %d %q", over.StatusCode(), over.Body())
	}
	close(a.block)
	for range 2 {
		if code := <-results; code != 200 {
			t.Fatalf("held or queued request: status %d", code)
		}
	}
}

// TestDeadBackendLeavesAndReturns kills a backend under load and checks, with the
// real health checker, that it is out of rotation within fall*interval+timeout,
// that clients see no more failures than requests in flight at that moment (GETs are
// retried on another backend), and that it comes back after rise probes.
func TestDeadBackendLeavesAndReturns(t *testing.T) {
	a, b, c := newCountingBackend(t), newCountingBackend(t), newCountingBackend(t)
	px, pool := weightedProxy(t, PoolSpec{Retries: 1, ConnectTimeout: 200 * time.Millisecond}, balancer.PoolOptions{}, []string{a.addr, b.addr, c.addr}, []int{1, 1, 1})
	const interval, timeout, fall, rise = 100 * time.Millisecond, 50 * time.Millisecond, 2, 2
	chk := health.Check{Type: "http", Path: "/", Interval: interval, Timeout: timeout, Rise: rise, Fall: fall}
	checker := health.NewChecker(health.Options{})
	t.Cleanup(checker.Close)
	var probes []health.Probe
	for _, be := range pool.Backends() {
		probes = append(probes, health.Probe{Pool: "p", Address: be.Address, Check: chk, Target: be.State, StartUp: true})
	}
	checker.Sync(probes)

	stopLoad := make(chan struct{})
	var failed, total atomic.Int64
	var wg sync.WaitGroup
	hc := &fasthttp.HostClient{Addr: px.addr, MaxConns: 16, ReadTimeout: 5 * time.Second}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stopLoad:
					return
				default:
				}
				code, _, err := hc.Get(nil, "http://x/")
				total.Add(1)
				if err != nil || code != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	waitUntil(t, "load flowing", func() bool { return total.Load() > 200 })
	victim := pool.Backends()[1]
	inflightAtDeath := victim.State.Inflight()
	killed := time.Now()
	b.stop()
	waitUntil(t, "the dead backend marked down", func() bool { return !victim.State.Up() })
	detect := time.Since(killed)
	bound := fall*interval + timeout
	t.Logf("dead backend out of rotation after %v (bound fall*interval+timeout = %v, plus one interval of jitter)", detect, bound)
	if detect > bound+interval+500*time.Millisecond {
		t.Errorf("detection took %v, want about %v", detect, bound)
	}
	settled := total.Load()
	waitUntil(t, "more load after detection", func() bool { return total.Load() > settled+200 })
	if f := failed.Load(); f > inflightAtDeath {
		t.Errorf("%d client requests failed, want at most the %d in flight on the backend when it died", f, inflightAtDeath)
	}

	b.start(b.addr)
	revived := time.Now()
	waitUntil(t, "the backend back in rotation", func() bool { return victim.State.Up() })
	t.Logf("restarted backend back after %v (rise %d × interval %v)", time.Since(revived), rise, interval)
	before := b.n.Load()
	waitUntil(t, "traffic on the revived backend", func() bool { return b.n.Load() > before+50 })
	close(stopLoad)
	wg.Wait()
	t.Logf("%d requests, %d failed", total.Load(), failed.Load())
}

// TestSlowStartRamp adds a backend with slow start beside a warm one and measures
// its share of traffic early and late in the ramp.
func TestSlowStartRamp(t *testing.T) {
	warm, cold := newCountingBackend(t), newCountingBackend(t)
	const ramp = 1500 * time.Millisecond
	st := balancer.NewPoolState("p")
	px, _ := weightedProxy(t, PoolSpec{}, balancer.PoolOptions{State: st, SlowStart: ramp}, []string{warm.addr}, []int{1})
	// The first backend is new too; let its own ramp end before the second joins.
	created := time.Now()
	waitUntil(t, "the first backend to warm up", func() bool { return time.Since(created) > ramp })
	// The cold backend joins in a second generation: it comes up now.
	coldState := balancer.NewBackendState("p/" + cold.addr)
	pool2, err := balancer.NewPool(balancer.PoolOptions{Name: "p", State: st, SlowStart: ramp, Backends: []balancer.BackendSpec{
		{Address: warm.addr, Weight: 1, State: px.s.Current().Pool("p").Backends()[0].State},
		{Address: cold.addr, Weight: 1, State: coldState},
	}})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := px.s.Build(Spec{Gen: 2, Pools: []PoolSpec{{Pool: pool2}}, Routes: []RouteSpec{{Name: "r", PathPrefix: "/", Pool: "p"}}})
	if err != nil {
		t.Fatal(err)
	}
	joined := time.Now()
	px.s.Swap(snap)
	share := func() float64 {
		w0, c0 := warm.n.Load(), cold.n.Load()
		load(t, px.addr, 1000, 4)
		return float64(cold.n.Load()-c0) / float64(warm.n.Load()-w0+cold.n.Load()-c0)
	}
	early := share()
	earlyAt := time.Since(joined)
	waitUntil(t, "the ramp to end", func() bool { return time.Since(joined) > ramp })
	late := share()
	t.Logf("cold backend's share: %.2f at %v into a %v slow start, %.2f after it (equal weights: 0.50 at full)", early, earlyAt.Round(time.Millisecond), ramp, late)
	if early > 0.35 {
		t.Errorf("early share %.2f: the new backend was not ramped", early)
	}
	if late < 0.45 || late > 0.55 {
		t.Errorf("share after the ramp %.2f, want 0.50", late)
	}
}

// waitUntil polls cond until it holds, failing after 15 s.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // the state polled has no channel to wait on
	}
}

func requestTo(addr string) *fasthttp.Request {
	req := fasthttp.AcquireRequest()
	req.SetRequestURI("http://" + addr + "/")
	return req
}
