package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/degrade/capture"
	"github.com/floodgate/floodgate/generation"
	"github.com/floodgate/floodgate/proxy"
	"github.com/floodgate/floodgate/proxy/cache"
	"github.com/floodgate/floodgate/registry"
)

// fakeClock is the status endpoint's clock in tests: rates are counts over
// the time it was advanced by, whatever the real time taken.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fakeCache reports the cache statistics a test sets.
type fakeCache struct {
	mu sync.Mutex
	st cache.Stats
}

func (f *fakeCache) Stats() cache.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeCache) set(st cache.Stats) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st = st
}

// fastBackend is a fasthttp server on loopback: 200 with a 128-byte body,
// 503 on /fail.
func fastBackend(tb testing.TB) string {
	tb.Helper()
	addr, _ := holdingBackend(tb)
	return addr
}

// holdingBackend is fastBackend whose "/hold" requests are answered only once
// release has been called.
func holdingBackend(tb testing.TB) (addr string, release func()) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 128)
	hold := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(hold) }) }
	tb.Cleanup(release)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		switch string(ctx.Path()) {
		case "/fail":
			ctx.SetStatusCode(503)
		case "/hold":
			<-hold
		}
		ctx.SetBody(body)
	}}
	go srv.Serve(ln) //nolint:errcheck // ends with Shutdown
	tb.Cleanup(func() { _ = srv.Shutdown() })
	return ln.Addr().String(), release
}

// stack is the admin API over a proxy serving real traffic (on an in-memory
// listener, to loopback backends), a real degraded-mode monitor and capture
// journal, a fake cache and a fake clock.
type stack struct {
	*api
	clock   *fakeClock
	mon     *degrade.Monitor
	journal *capture.Journal
	cache   *fakeCache
	client  *fasthttp.HostClient
	hs      *httptest.Server
}

type stackOptions struct {
	token      string
	backends   []string
	pool       generation.PoolSettings
	noOptional bool // leave Degrade, Captures, Routes and Cache nil
}

func newStack(tb testing.TB, o stackOptions) *stack {
	tb.Helper()
	px := proxy.New(proxy.Options{})
	mon := degrade.NewMonitor(degrade.MonitorOptions{})
	reg, err := generation.New(generation.Options{Dataplane: px, Monitor: mon})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { defer close(runDone); _ = reg.Run(ctx) }()
	var bs []registry.BackendSpec
	for i, b := range o.backends {
		bs = append(bs, registry.BackendSpec{Address: b, Weight: len(o.backends) - i})
	}
	if _, err := reg.Init(ctx, registry.Config{
		Pools: []registry.PoolSpec{{Name: "shop", Settings: o.pool, Backends: bs}, {Name: "backoffice"}},
		Routes: generation.Routes([]proxy.RouteSpec{
			{Name: "checkout", PathPrefix: "/checkout", Pool: "shop"},
			{Name: "search", PathPrefix: "/search", Pool: "shop", Priority: degrade.PriorityLow, Action: degrade.ActionShed},
			{Name: "site", PathPrefix: "/", Pool: "shop"},
			{Name: "admin", PathPrefix: "/admin/", Pool: "backoffice"},
		}...),
	}, registry.State{}); err != nil {
		tb.Fatal(err)
	}
	journal, err := capture.Open(capture.Options{Dir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	ln := fasthttputil.NewInmemoryListener()
	served := make(chan struct{})
	go func() { defer close(served); _ = px.Serve(ln) }()

	clock := newFakeClock()
	fc := &fakeCache{}
	logs := &lockedBuffer{}
	opts := Options{
		Registry: reg, Token: []byte(o.token), Now: clock.Now,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if !o.noOptional {
		opts.Degrade, opts.Captures, opts.Routes, opts.Cache, opts.CacheMaxBytes = mon, journal, px.RouteStats, fc, 1<<20
	}
	srv, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	tb.Cleanup(func() {
		hs.Close()
		_ = px.Shutdown(context.Background())
		<-served
		cancel()
		<-runDone
		_ = journal.Close()
		mon.Close()
	})
	t, _ := tb.(*testing.T)
	return &stack{
		api:   &api{t: t, url: hs.URL, token: o.token, srv: srv, reg: reg, px: px, log: logs},
		clock: clock, mon: mon, journal: journal, cache: fc, hs: hs,
		client: &fasthttp.HostClient{Addr: "shop.example", Dial: func(string) (net.Conn, error) { return ln.Dial() }, ReadTimeout: 10 * time.Second},
	}
}

// send makes n requests to path through the proxy.
func (s *stack) send(tb testing.TB, path string, n int) {
	tb.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://shop.example" + path)
	for i := 0; i < n; i++ {
		if err := s.client.Do(req, resp); err != nil {
			tb.Fatal(err)
		}
	}
}

// status fetches and decodes GET /api/v1/status.
func (s *stack) status(t *testing.T) Status {
	t.Helper()
	req, _ := http.NewRequest("GET", s.url+"/api/v1/status", nil)
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status: %d %s", resp.StatusCode, body)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var st Status
	if err := dec.Decode(&st); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, body)
	}
	return st
}

func poolOf(t *testing.T, st Status, name string) PoolStatus {
	t.Helper()
	for _, p := range st.Pools {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no pool %s in %+v", name, st.Pools)
	return PoolStatus{}
}

func near(got *float64, want float64) bool {
	return got != nil && math.Abs(*got-want) <= 0.001*math.Max(1, math.Abs(want))
}

func TestStatus(t *testing.T) {
	b1, release1 := holdingBackend(t)
	b2, release2 := holdingBackend(t)
	s := newStack(t, stackOptions{backends: []string{b1, b2}, pool: generation.PoolSettings{MaxConnsPerBackend: 8, QueueMax: 50, QueueTimeout: time.Second}})

	// The first reading has no rate yet.
	st := s.status(t)
	shop := poolOf(t, st, "shop")
	if st.WindowSeconds != 0 || shop.RequestsPerSecond != nil || shop.Backends[0].RequestsPerSecond != nil {
		t.Fatalf("rates before a second reading: %+v", shop)
	}
	if shop.Mode == nil || shop.Mode.Mode != "normal" || shop.Mode.Override != "auto" || shop.Capacity != 16 || shop.Queue.Max != 50 {
		t.Fatalf("shop: %+v mode %+v", shop, shop.Mode)
	}
	if st.Cache == nil || st.Cache.MaxBytes != 1<<20 || st.Captures == nil || st.Captures.Backlog != 0 {
		t.Fatalf("cache %+v captures %+v", st.Cache, st.Captures)
	}

	// 90 good and 10 failing requests, 5 seconds later (on the status clock).
	s.send(t, "/", 60)
	s.send(t, "/checkout/pay", 30)
	s.send(t, "/fail", 10)
	s.cache.set(cache.Stats{Hits: 30, Stale: 10, Misses: 40, Revalidated: 20, Bypass: 99, Bytes: 4096, Objects: 3})
	s.clock.Add(5 * time.Second)
	st = s.status(t)
	shop = poolOf(t, st, "shop")
	if st.WindowSeconds != 5 || !near(shop.RequestsPerSecond, 20) || !near(shop.ErrorRate, 0.1) || shop.P95Seconds == nil {
		t.Fatalf("shop over 5 s: window %v rps %v err %v p95 %v", st.WindowSeconds, deref(shop.RequestsPerSecond), deref(shop.ErrorRate), shop.P95Seconds)
	}
	var sum float64
	for _, b := range shop.Backends {
		if b.RequestsPerSecond == nil || b.State != "up" || b.Limit != 8 || b.Source != "config" {
			t.Fatalf("backend %+v", b)
		}
		sum += *b.RequestsPerSecond
	}
	if math.Abs(sum-20) > 0.2 {
		t.Fatalf("backends' req/s add up to %v, want 20", sum)
	}
	if r := shop.Backends[0].RequestsPerSecond; r == nil || math.Abs(*r-20.0*2/3) > 0.3 {
		t.Fatalf("weight 2 of 3 got %v req/s", deref(shop.Backends[0].RequestsPerSecond))
	}
	routes := map[string]RouteStatus{}
	for _, r := range st.Routes {
		routes[r.Name] = r
	}
	if r := routes["checkout"]; r.Pool != "shop" || r.Requests != 30 || !near(r.RequestsPerSecond, 6) || !near(r.ErrorRate, 0) {
		t.Fatalf("checkout route: %+v", r)
	}
	if r := routes["site"]; r.Requests != 70 || !near(r.ErrorRate, 10.0/70) {
		t.Fatalf("site route: %+v", r)
	}
	if c := st.Cache; !near(c.HitRatio, 40.0/100) || !near(c.HitRatioTotal, 0.4) || !near(c.LookupsPerSecond, 20) || c.Bytes != 4096 {
		t.Fatalf("cache: %+v", c)
	}
	if h := shop.History; len(h.Time) != 1 || h.RequestsPerSecond[0] != 20 || h.StepSeconds != 1 || len(h.P95Seconds) != 1 || len(h.InFlight) != 1 {
		t.Fatalf("history: %+v", h)
	}

	// A poll less than a second after the last reading takes none.
	s.clock.Add(500 * time.Millisecond)
	if h := poolOf(t, s.status(t), "shop").History; len(h.Time) != 1 {
		t.Fatalf("a second reading within the sample interval: %+v", h)
	}
	// Readings older than the rate window no longer count: rates follow the
	// traffic, not the average since start.
	for i := 0; i < 8; i++ {
		s.clock.Add(time.Second)
		s.status(t)
	}
	st = s.status(t)
	shop = poolOf(t, st, "shop")
	if !near(shop.RequestsPerSecond, 0) || shop.P95Seconds != nil || st.WindowSeconds > 5.5 {
		t.Fatalf("quiet pool: rps %v p95 %v window %v", deref(shop.RequestsPerSecond), shop.P95Seconds, st.WindowSeconds)
	}
	if h := shop.History; len(h.Time) != 9 || h.P95Seconds[len(h.P95Seconds)-1] != nil {
		t.Fatalf("history after 9 readings: %+v", h)
	}

	// Degraded through the override: mode, reason and since.
	s.expect("PUT", "/api/v1/pools/shop/mode", `{"mode": "degraded"}`, 200)
	shop = poolOf(t, s.status(t), "shop")
	if m := shop.Mode; m.Mode != "degraded" || m.Override != "degraded" || m.Reason != "admin override: degraded" || m.Since == nil || m.Level == "normal" {
		t.Fatalf("degraded: %+v", m)
	}
	// Low priority is shed now when no slot is free (with one free it is
	// served: work-conserving admission): refusals by design, counted apart.
	// The 16 slots are held by requests of the site first.
	held := make(chan error, 16)
	for range 16 {
		go func() {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI("http://shop.example/hold")
			held <- s.client.Do(req, resp)
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); poolOf(t, s.status(t), "shop").InFlight != 16; {
		if time.Now().After(deadline) {
			t.Fatal("the 16 slots were not all taken in 10s")
		}
		time.Sleep(time.Millisecond) // polled state: nothing to wait on
	}
	s.send(t, "/search?q=mug", 20)
	release1()
	release2()
	for range 16 {
		if err := <-held; err != nil {
			t.Fatal(err)
		}
	}
	s.send(t, "/", 20)
	s.clock.Add(5 * time.Second)
	st = s.status(t)
	shop = poolOf(t, st, "shop")
	// 56 requests in 5s, of which the 20 searches were shed (503).
	if !near(shop.RefusedPerSecond, 4) || !near(shop.DegradedPerSecond, 4) || !near(shop.RequestsPerSecond, 56.0/5) || !near(shop.ErrorRate, 20.0/56) {
		t.Fatalf("shed: refused %v degraded %v rps %v errors %v", deref(shop.RefusedPerSecond), deref(shop.DegradedPerSecond), deref(shop.RequestsPerSecond), deref(shop.ErrorRate))
	}
	for _, r := range st.Routes {
		if r.Name == "search" && (!near(r.RefusedPerSecond, 4) || !near(r.ErrorRate, 1)) {
			t.Fatalf("search: %+v", r)
		}
	}

	// Drained, down and ejected backends.
	s.expect("PATCH", "/api/v1/pools/shop/backends/"+b2, `{"drain": true}`, 200)
	v := s.reg.View()
	v.Backend("shop", b1).State.SetProbeUp(false)
	shop = poolOf(t, s.status(t), "shop")
	if b := shop.Backends[1]; b.State != "draining" || b.EffectiveWeight != 0 || b.Weight != 1 {
		t.Fatalf("drained: %+v", b)
	}
	if b := shop.Backends[0]; b.State != "down" || shop.Capacity != 0 {
		t.Fatalf("down: %+v, capacity %d", b, shop.Capacity)
	}

	// Captures: backlog, a dead letter, paused replay.
	for i := 0; i < 3; i++ {
		if _, _, err := s.journal.Append(&capture.Record{Pool: "shop", Route: "checkout", Method: "POST", Target: "/checkout"}); err != nil {
			t.Fatal(err)
		}
	}
	id, _, err := s.journal.Append(&capture.Record{Pool: "shop", Route: "checkout", Method: "POST", Target: "/checkout"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.journal.MarkDead(id, "backend answered 422"); err != nil {
		t.Fatal(err)
	}
	s.journal.PauseReplay("shop")
	c := s.status(t).Captures
	if c.Backlog != 3 || c.BacklogByPool["shop"] != 3 || c.DeadLetters != 1 || len(c.Dead) != 1 || c.Dead[0].ID != id ||
		c.Dead[0].Reason != "backend answered 422" || c.Captured != 4 || len(c.PausedPools) != 1 || c.PausedPools[0] != "shop" {
		t.Fatalf("captures: %+v", c)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestStatusNotConfigured: without the optional sources the page still has
// the pools and backends, and says what is not configured.
func TestStatusNotConfigured(t *testing.T) {
	s := newStack(t, stackOptions{backends: []string{"10.0.0.1:80"}, noOptional: true})
	st := s.status(t)
	shop := poolOf(t, st, "shop")
	if shop.Mode != nil || st.Cache != nil || st.Captures != nil || len(st.Routes) != 0 || len(shop.Backends) != 1 || shop.Capacity != 0 {
		t.Fatalf("%+v", st)
	}
	s.expect("GET", "/api/v1/pools/shop/mode", "", 409)
	s.expect("PUT", "/api/v1/pools/shop/mode", `{"mode": "degraded"}`, 409)
	s.expect("GET", "/api/v1/captures", "", 409)
	s.expect("GET", "/api/v1/pools/shop/captures", "", 409)
	s.expect("PUT", "/api/v1/pools/shop/replay", `{"paused": true}`, 409)
}

// TestTypedNilOptions: a nil *degrade.Monitor, *capture.Journal or
// *cache.Cache, as the wiring has when a feature is off, counts as nil.
func TestTypedNilOptions(t *testing.T) {
	a := newAPI(t, "")
	var mon *degrade.Monitor
	var j *capture.Journal
	var c *cache.Cache
	srv, err := New(Options{Registry: a.reg, Degrade: mon, Captures: j, Cache: c})
	if err != nil {
		t.Fatal(err)
	}
	if srv.opts.Degrade != nil || srv.opts.Captures != nil || srv.opts.Cache != nil {
		t.Fatal("typed nils kept")
	}
	st := srv.buildStatus()
	if st.Cache != nil || st.Captures != nil || st.Pools[0].Mode != nil {
		t.Fatalf("%+v", st)
	}
}

func TestSlowStartEffectiveWeight(t *testing.T) {
	s := newStack(t, stackOptions{backends: []string{"10.0.0.1:80"}, pool: generation.PoolSettings{SlowStart: 100 * time.Second}})
	up := s.reg.View().Backend("shop", "10.0.0.1:80").State.Stats().UpSince
	for _, tt := range []struct {
		after   time.Duration
		warming bool
		weight  float64
	}{
		{0, true, 0.1},
		{50 * time.Second, true, 0.6},
		{99 * time.Second, true, 1}, // 0.991, rounded to 1 place
		{100 * time.Second, false, 1},
	} {
		s.clock.Add(up.Add(tt.after).Sub(s.clock.Now()))
		b := poolOf(t, s.status(t), "shop").Backends[0]
		if b.Warming != tt.warming || b.EffectiveWeight != tt.weight {
			t.Errorf("%v after coming up: warming %v, effective weight %v; want %v, %v", tt.after, b.Warming, b.EffectiveWeight, tt.warming, tt.weight)
		}
	}
}

func TestQuantile(t *testing.T) {
	// proxy.LatencyBuckets: 0.001, 0.0025, 0.005, 0.01, 0.025, ...
	if len(proxy.LatencyBuckets) != numLatencyBuckets {
		t.Fatalf("numLatencyBuckets %d, proxy has %d", numLatencyBuckets, len(proxy.LatencyBuckets))
	}
	hist := func(perBucket ...uint64) *reqReading {
		r := &reqReading{}
		var acc uint64
		for i := range r.latCum {
			if i < len(perBucket) {
				acc += perBucket[i]
			}
			r.latCum[i] = acc
		}
		r.latCount = acc
		return r
	}
	tests := []struct {
		name string
		r    *reqReading
		want float64
		ok   bool
	}{
		{"empty", hist(), 0, false},
		{"all in the first bucket", hist(100), 0.00095, true},
		{"interpolated in the second", hist(90, 10), 0.001 + 0.0015*0.5, true},
		{"beyond every bound", &reqReading{latCount: 10}, 30, true},
	}
	for _, tt := range tests {
		got, ok := tt.r.quantile(0.95)
		if ok != tt.ok || math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%s: %v %v, want %v %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

// TestSamplerKeepsReadingsInOrder: a reading taken before the last kept one
// (two polls racing) is not kept, and a clock set back starts the readings
// again instead of stopping them.
func TestSamplerKeepsReadingsInOrder(t *testing.T) {
	a := newAPI(t, "")
	sp := a.srv.sampler
	t0 := time.Now()
	sp.refresh(t0)
	sp.refresh(t0.Add(2 * time.Second))
	if cur, base := sp.refresh(t0.Add(1500 * time.Millisecond)); base == nil || !base.at.Equal(t0) || !cur.at.Equal(t0.Add(1500*time.Millisecond)) {
		t.Fatalf("late reading: base %v", base)
	}
	if len(sp.readings) != 2 || !sp.readings[1].at.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("a late reading was kept: %d readings", len(sp.readings))
	}
	if _, base := sp.refresh(t0.Add(-time.Hour)); base != nil || len(sp.readings) != 1 {
		t.Fatalf("after the clock went back: base %v, %d readings", base, len(sp.readings))
	}
	if _, base := sp.refresh(t0.Add(-time.Hour + time.Second)); base == nil {
		t.Fatal("no rates after the clock went back")
	}
}
