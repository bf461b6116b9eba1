package proxy

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/balancer"
	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/degrade/capture"
	"github.com/floodgate/floodgate/proxy/cache"
)

// spikeSite is a shop behind a real proxy, a real balancer pool of one origin
// with 8 connection slots and a real degrade.Monitor running on its own clock:
// cached pages (stale while degraded, normal priority), an uncacheable search
// (low, shed) and orders (high, captured when refused, replayed as soon as the
// pool is ready). The origin's service times are pages 1 ms, search 4 ms,
// orders 8 ms.
type spikeSite struct {
	px      *testProxy
	mon     *degrade.Monitor
	journal *capture.Journal
	window  time.Duration
	hold    time.Duration
	phase   atomic.Int32 // load counts are kept per phase

	mu       sync.Mutex
	trs      []degrade.Transition
	replayed map[string]int // capture id → times the origin got it
}

const spikeSlots = 8

func newSpikeSite(t *testing.T) *spikeSite {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &spikeSite{window: 100 * time.Millisecond, hold: 500 * time.Millisecond, replayed: map[string]int{}}
	origin := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if id := ctx.Request.Header.Peek("Floodgate-Capture-Id"); len(id) > 0 {
			s.mu.Lock()
			s.replayed[string(id)]++
			s.mu.Unlock()
		}
		p := string(ctx.Path())
		switch {
		case strings.HasPrefix(p, "/page/"):
			time.Sleep(time.Millisecond) // service time, not synchronisation
			ctx.Response.Header.Set("Cache-Control", "max-age=1")
			ctx.SetBodyString("page")
		case p == "/search":
			time.Sleep(4 * time.Millisecond)
			ctx.Response.Header.Set("Cache-Control", "no-store")
			ctx.SetBodyString("results")
		default:
			time.Sleep(8 * time.Millisecond)
			ctx.SetBodyString("order ok")
		}
	}}
	go origin.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { _ = origin.Shutdown() })

	c, err := cache.New(cache.Options{MaxBytes: 1 << 20, ErrorHandler: CacheError})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	po := balancer.PoolOptions{MaxConnsPerBackend: spikeSlots, QueueMax: 32, QueueTimeout: 50 * time.Millisecond}
	j, capt := openCapture(t)
	px, pool := weightedProxyOpts(t, Options{Cache: c, Capture: capt}, PoolSpec{MaxConnsPerBackend: spikeSlots}, po, []string{ln.Addr().String()}, []int{1})
	s.px, s.journal = px, j
	s.mon = degrade.NewMonitor(degrade.MonitorOptions{Window: s.window, OnTransition: func(tr degrade.Transition) {
		s.mu.Lock()
		s.trs = append(s.trs, tr)
		s.mu.Unlock()
	}})
	err = s.mon.Configure([]degrade.PoolConfig{{
		Name:        "p",
		Source:      &degrade.PoolSource{Pool: func() *balancer.Pool { return pool }},
		Enter:       degrade.Thresholds{InflightRatio: 0.9},
		Exit:        degrade.Thresholds{InflightRatio: 0.6},
		Hold:        s.hold,
		Windows:     2,
		MinRequests: 5,
	}})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := px.s.Build(Spec{Gen: 2, Pools: []PoolSpec{{Pool: pool, MaxConnsPerBackend: spikeSlots, Gate: s.mon.Gate("p"), Recorder: s.mon.Recorder("p")}},
		Routes: []RouteSpec{
			{Name: "pages", PathPrefix: "/page/", Pool: "p", Action: degrade.ActionStale,
				Cache: &cache.PolicyOptions{MaxObjectBytes: 1 << 20, MaxStale: time.Hour}},
			{Name: "search", PathPrefix: "/search", Pool: "p", Priority: degrade.PriorityLow, Action: degrade.ActionShed},
			{Name: "orders", PathPrefix: "/order", Pool: "p", Priority: degrade.PriorityHigh, Action: degrade.ActionCapture},
		}})
	if err != nil {
		t.Fatal(err)
	}
	px.s.Swap(snap)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.mon.Run(ctx) }()
	// Replay runs from the start, as in cmd/floodgate: PoolReady holds it
	// back while the pool is degraded or has requests queued.
	stopReplay := j.StartReplay(ctx, px.s.Sender(), capture.ReplayOptions{Rate: 200, Ready: px.s.PoolReady, ReadyPoll: 10 * time.Millisecond})
	t.Cleanup(func() { cancel(); stopReplay(); <-done })
	return s
}

func (s *spikeSite) transitions() []degrade.Transition {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]degrade.Transition(nil), s.trs...)
}

// loadSpec is one client of spikeSite.load: a request sent every period (0:
// as soon as the previous one is answered, a closed loop).
type loadSpec struct {
	method, path string
	period       time.Duration
}

// load runs one client per entry of specs until stop is closed. wait returns
// the status counts by "phase method path" once all have returned.

func (s *spikeSite) load(stop <-chan struct{}, specs ...loadSpec) (wait func() map[string]map[int]int) {
	hc := &fasthttp.HostClient{Addr: s.px.addr, MaxConns: 256, ReadTimeout: 5 * time.Second}
	var mu sync.Mutex
	got := map[string]map[int]int{}
	var wg sync.WaitGroup
	for _, sp := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			var tick *time.Ticker
			if sp.period > 0 {
				tick = time.NewTicker(sp.period)
				defer tick.Stop()
			}
			for {
				req.Reset()
				req.Header.SetMethod(sp.method)
				req.SetRequestURI("http://x" + sp.path)
				if sp.method == "POST" {
					req.SetBodyString("{}")
				}
				code := 0
				if err := hc.Do(req, resp); err == nil {
					code = resp.StatusCode()
				}
				k := strconv.Itoa(int(s.phase.Load())) + " " + sp.method + " " + sp.path
				mu.Lock()
				if got[k] == nil {
					got[k] = map[int]int{}
				}
				got[k][code]++
				mu.Unlock()
				if tick == nil {
					select {
					case <-stop:
						return
					default:
						continue
					}
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
	}
	return func() map[string]map[int]int {
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return got
	}
}

// steadyLoad is about 20% of the origin's 8 slots: two order clients at 100/s
// each (8 ms: 1.6 slots), search at 50/s (4 ms: 0.2 slot), and pages, served
// from the cache, at up to 1,000/s.
var steadyLoad = []loadSpec{
	{"POST", "/order", 10 * time.Millisecond},
	{"POST", "/order", 10 * time.Millisecond},
	{"GET", "/search", 20 * time.Millisecond},
	{"GET", "/page/1", 2 * time.Millisecond},
	{"GET", "/page/2", 2 * time.Millisecond},
}

// spike saturates the pool until it is degraded, and three windows more.
func (s *spikeSite) spike(t *testing.T) {
	t.Helper()
	stop := make(chan struct{})
	var specs []loadSpec
	// Orders at 1,600/s where the origin takes 1,000/s: the overflow is
	// captured.
	for range 64 {
		specs = append(specs, loadSpec{"POST", "/order", 40 * time.Millisecond})
	}
	for range 8 {
		specs = append(specs, loadSpec{"GET", "/search", 10 * time.Millisecond})
	}
	wait := s.load(stop, specs...)
	waitUntil(t, "the pool degraded by the spike", func() bool { return s.mon.Gate("p").Degraded() })
	st, _ := s.mon.Status("p")
	waitUntil(t, "three more windows of spike", func() bool {
		cur, _ := s.mon.Status("p")
		return cur.Signals.At.Sub(st.Signals.At) >= 3*s.window
	})
	close(stop)
	wait()
}

// TestDegradedExitWhileTrafficFlows is issue 15's third finding on a real
// proxy: after a spike, with traffic steady at about 20% of the pool's capacity
// and mostly served from the cache, the pool must leave degraded mode within
// hold plus three windows, once, and stay normal while the traffic goes on;
// the orders captured during the spike are replayed meanwhile, alongside the
// live traffic, which loses nothing to them.
// Before the fix every page the stale action answered from the cache counted as
// held-back demand, fresh or not, so the demand check saw the pool saturated
// again on exit for as long as pages were requested, and it left only once all
// traffic stopped.
func TestDegradedExitWhileTrafficFlows(t *testing.T) {
	s := newSpikeSite(t)
	// Warm the cache.
	for _, p := range []string{"/page/1", "/page/2"} {
		if r, _ := exchange(t, s.px.addr, "GET "+p+" HTTP/1.1\r\nHost: x\r\n\r\n", 100*time.Millisecond); statusOfRaw(r) != 200 {
			t.Fatalf("warming %s: %q", p, r)
		}
	}
	stop := make(chan struct{})
	wait := s.load(stop, steadyLoad...)
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
			wait()
		}
	}()
	s.spike(t)
	end := time.Now()
	captured := s.journal.Stats().Backlog["p"]

	deadline := s.hold + 3*s.window
	var exit degrade.Transition
	limit := time.Now().Add(deadline + 40*s.window) // bounded: report the signals rather than hang
	for exit.At.IsZero() && time.Now().Before(limit) {
		for _, tr := range s.transitions() {
			if tr.To == degrade.ModeNormal {
				exit = tr
			}
		}
		time.Sleep(s.window / 10) // the transitions have no channel to wait on
	}
	s.phase.Store(1)
	st, _ := s.mon.Status("p")
	if exit.At.IsZero() {
		t.Fatalf("still degraded %v after the spike with steady traffic (want the exit within %v): level %v, signals %+v",
			time.Since(end).Round(time.Millisecond), deadline, st.Level, st.Signals)
	}
	if took := exit.At.Sub(end); took > deadline {
		t.Errorf("left degraded mode %v after the spike, want within hold + 3 windows = %v (%s)", took.Round(time.Millisecond), deadline, exit.Reason)
	}
	t.Logf("left degraded mode %v after the spike: %s", exit.At.Sub(end).Round(time.Millisecond), exit.Reason)

	// The captured orders reach the origin while the traffic goes on, at
	// about the replay rate (200/s), each once.
	if captured == 0 {
		t.Fatal("the spike captured no order: the test does not exercise replay")
	}
	budget := time.Duration(captured)*time.Second/200 + 10*s.window
	waitUntil(t, "the captured orders replayed", func() bool { return s.journal.Stats().Backlog["p"] == 0 })
	replayed := time.Since(exit.At)
	s.mu.Lock()
	dups := 0
	for _, n := range s.replayed {
		dups += n - 1
	}
	s.mu.Unlock()
	if dups != 0 {
		t.Errorf("%d captured orders reached the origin twice", dups)
	}
	if replayed > budget {
		t.Errorf("%d captured orders replayed %v after the exit, want within %v", captured, replayed.Round(time.Millisecond), budget)
	}
	t.Logf("%d captured orders replayed within %v of the exit", captured, replayed.Round(time.Millisecond))

	// Steady traffic goes on for ten more windows: no second entry, and
	// search, refused while degraded, is answered again.
	waitUntil(t, "ten windows after the exit", func() bool {
		cur, _ := s.mon.Status("p")
		return cur.Signals.At.Sub(exit.At) >= 10*s.window
	})
	if r, _ := exchange(t, s.px.addr, "GET /search HTTP/1.1\r\nHost: x\r\n\r\n", 100*time.Millisecond); statusOfRaw(r) != 200 {
		t.Errorf("search after the exit: %q", r)
	}
	close(stop)
	got := wait()
	var in, out int
	for _, tr := range s.transitions() {
		if tr.To == degrade.ModeDegraded {
			in++
		} else {
			out++
		}
	}
	if in != 1 || out != 1 {
		t.Errorf("transitions: %d entries and %d exits, want one of each: %+v", in, out, s.transitions())
	}
	// After the exit, live traffic is answered as in normal mode: replay
	// yields to it, so no order is captured or refused.
	for k, codes := range got {
		if !strings.HasPrefix(k, "1 ") {
			continue
		}
		for code, n := range codes {
			if code != 200 {
				t.Errorf("%s after the exit: %d answered %d", k[2:], n, code)
			}
		}
	}
	t.Logf("answers (0: until the exit, 1: after): %v", got)
}

// TestReplayYieldsToQueuedTraffic: in normal mode replay may send while
// traffic flows, but not while a live request waits for a slot: saturation
// back, replay backs off until the queue is empty again.
func TestReplayYieldsToQueuedTraffic(t *testing.T) {
	a := &countingBackend{t: t, block: make(chan struct{})}
	a.start("127.0.0.1:0")
	t.Cleanup(a.stop)
	po := balancer.PoolOptions{MaxConnsPerBackend: 1, QueueMax: 4, QueueTimeout: 10 * time.Second}
	px, pool := weightedProxyOpts(t, Options{}, PoolSpec{MaxConnsPerBackend: 1}, po, []string{a.addr}, []int{1})
	if !px.s.PoolReady("p") {
		t.Fatal("an idle normal pool is not ready for replay")
	}
	hc := &fasthttp.HostClient{Addr: px.addr, ReadTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, _, err := hc.Get(nil, "http://x/"); err != nil || code != 200 {
				t.Errorf("live request: %d %v", code, err)
			}
		}()
	}
	waitUntil(t, "one request holding the slot and one queued", func() bool { return pool.State().QueueDepth() == 1 })
	if px.s.PoolReady("p") {
		t.Error("ready for replay while a live request waits for a slot")
	}
	close(a.block)
	waitUntil(t, "the queue drained", func() bool { return pool.State().QueueDepth() == 0 })
	if !px.s.PoolReady("p") {
		t.Error("not ready for replay once the queue drained")
	}
	wg.Wait()
}
