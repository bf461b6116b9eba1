package proxy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/floodgate/floodgate/balancer"
	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/proxy/cache"
)

// degradedProxy builds a proxy whose pool "p" has a degrade gate forced by the
// monitor's override, with the given routes.
func degradedProxy(t *testing.T, opts Options, ps PoolSpec, be string, routes ...RouteSpec) (*testProxy, *degrade.Monitor) {
	t.Helper()
	mon := degrade.NewMonitor(degrade.MonitorOptions{})
	t.Cleanup(mon.Close)
	if err := mon.Configure([]degrade.PoolConfig{{Name: "p"}}); err != nil {
		t.Fatal(err)
	}
	px := newTestProxy(t, opts, PoolSpec{}, be)
	ps.Pool, ps.Gate, ps.Recorder = px.s.Current().Pool("p"), mon.Gate("p"), mon.Recorder("p")
	snap, err := px.s.Build(Spec{Gen: 2, Pools: []PoolSpec{ps}, Routes: routes})
	if err != nil {
		t.Fatal(err)
	}
	px.s.Swap(snap)
	return px, mon
}

// saturableDegradedProxy builds a proxy whose pool "p" has one backend that
// holds every request until block is closed, a limit of one connection, and a
// gate forced to degraded by the monitor's override, with the given routes.
func saturableDegradedProxy(t *testing.T, opts Options, routes ...RouteSpec) (px *testProxy, pool *balancer.Pool, block chan struct{}) {
	t.Helper()
	a := &countingBackend{t: t, block: make(chan struct{})}
	a.start("127.0.0.1:0")
	t.Cleanup(a.stop)
	mon := degrade.NewMonitor(degrade.MonitorOptions{})
	t.Cleanup(mon.Close)
	mon.Configure([]degrade.PoolConfig{{Name: "p"}})
	px, pool = weightedProxyOpts(t, opts, PoolSpec{MaxConnsPerBackend: 1}, balancer.PoolOptions{MaxConnsPerBackend: 1}, []string{a.addr}, []int{1})
	snap, err := px.s.Build(Spec{Gen: 2, Pools: []PoolSpec{{Pool: pool, MaxConnsPerBackend: 1, Gate: mon.Gate("p"), Recorder: mon.Recorder("p")}}, Routes: routes})
	if err != nil {
		t.Fatal(err)
	}
	px.s.Swap(snap)
	mon.SetOverride("p", degrade.OverrideDegraded)
	return px, pool, a.block
}

func TestDegradedActions(t *testing.T) {
	be := newRawBackend(t, nil)
	page := filepath.Join(t.TempDir(), "busy.html")
	os.WriteFile(page, []byte("<p>We are very busy</p>"), 0o644)
	static, err := degrade.LoadStatic(page, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	shed, _ := degrade.NewShed(429, 30*time.Second)
	px, mon := degradedProxy(t, Options{}, PoolSpec{}, be.addr(),
		RouteSpec{Name: "search", PathPrefix: "/search", Pool: "p", Priority: degrade.PriorityLow, Action: degrade.ActionShed, Shed: shed},
		RouteSpec{Name: "promo", PathPrefix: "/promo", Pool: "p", Priority: degrade.PriorityLow, Action: degrade.ActionStatic, Static: static},
		RouteSpec{Name: "admin", PathPrefix: "/admin/", Pool: "p", Priority: degrade.PriorityCritical},
		RouteSpec{Name: "site", PathPrefix: "/", Pool: "p"},
	)
	get := func(path string) string {
		resp, _ := exchange(t, px.addr, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n", 300*time.Millisecond)
		return resp
	}
	// Normal mode: everything is forwarded.
	for _, p := range []string{"/search?q=a", "/promo", "/admin/", "/"} {
		if statusOfRaw(get(p)) != 200 {
			t.Fatalf("%s in normal mode: not forwarded", p)
		}
	}
	before := len(be.requests())
	if err := mon.SetOverride("p", degrade.OverrideDegraded); err != nil {
		t.Fatal(err)
	}
	if r := get("/search?q=a"); statusOfRaw(r) != 429 || !strings.Contains(r, "Retry-After: 30\r\n") {
		t.Errorf("low-priority shed route while degraded: %q", r)
	}
	if r := get("/promo"); statusOfRaw(r) != 503 || !strings.HasSuffix(r, "We are very busy</p>") || !strings.Contains(r, "Content-Type: text/html") {
		t.Errorf("static route while degraded: %q", r)
	}
	if r := get("/admin/"); statusOfRaw(r) != 200 {
		t.Errorf("critical route while degraded: %q", r)
	}
	if r := get("/"); statusOfRaw(r) != 200 {
		t.Errorf("normal-priority route at the first level: %q", r)
	}
	if got := len(be.requests()) - before; got != 2 {
		t.Errorf("backend got %d requests while degraded, want 2 (admin and site)", got)
	}
	for _, st := range px.s.RouteStats() {
		switch st.Route {
		case "search":
			if st.Shed() != 1 || st.Priority != "low" {
				t.Errorf("search: shed %d priority %q", st.Shed(), st.Priority)
			}
		case "promo":
			if st.Degraded()["static"] != 1 {
				t.Errorf("promo: %v", st.Degraded())
			}
		}
	}
	mon.SetOverride("p", degrade.OverrideNormal)
	if statusOfRaw(get("/search?q=a")) != 200 {
		t.Error("back to normal: search not forwarded")
	}
}

func TestDegradedStaleFromCache(t *testing.T) {
	c, err := cache.New(cache.Options{MaxBytes: 1 << 20, ErrorHandler: CacheError})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	be := newRawBackend(t, func(string, []byte) string {
		return "HTTP/1.1 200 OK\r\nCache-Control: max-age=0\r\nETag: \"a\"\r\nContent-Length: 4\r\n\r\npage"
	})
	px, mon := degradedProxy(t, Options{Cache: c}, PoolSpec{}, be.addr(),
		RouteSpec{Name: "site", PathPrefix: "/", Pool: "p", Action: degrade.ActionStale, Priority: degrade.PriorityLow,
			Cache: &cache.PolicyOptions{MaxObjectBytes: 1 << 20, MaxStale: time.Hour}})
	exchange(t, px.addr, "GET /p HTTP/1.1\r\nHost: x\r\n\r\n", 300*time.Millisecond)
	mon.SetOverride("p", degrade.OverrideDegraded)
	n := len(be.requests())
	r, _ := exchange(t, px.addr, "GET /p HTTP/1.1\r\nHost: x\r\n\r\n", 300*time.Millisecond)
	if statusOfRaw(r) != 200 || !strings.HasSuffix(r, "page") || !strings.Contains(r, "degraded") {
		t.Fatalf("stale page while degraded: %q", r)
	}
	if len(be.requests()) != n {
		t.Fatal("the stale answer went to the backend")
	}
	// A miss on a low-priority stale route is shed.
	if r, _ := exchange(t, px.addr, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n", 300*time.Millisecond); statusOfRaw(r) != 503 {
		t.Fatalf("stale miss, low priority, degraded: %q", r)
	}
}

// TestDegradedSaturationGetsTheAction: when every slot is busy while the pool is
// degraded, a request gets its route's degraded answer, not a bare 503.
func TestDegradedSaturationGetsTheAction(t *testing.T) {
	shed, _ := degrade.NewShed(503, 7*time.Second)
	px, pool, block := saturableDegradedProxy(t, Options{},
		RouteSpec{Name: "r", PathPrefix: "/", Pool: "p", Priority: degrade.PriorityHigh, Action: degrade.ActionShed, Shed: shed})
	done := make(chan struct{})
	go func() { exchange(t, px.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 5*time.Second); close(done) }()
	waitUntil(t, "the slot taken", func() bool { return pool.Backends()[0].State.Inflight() == 1 })
	r, _ := exchange(t, px.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 300*time.Millisecond)
	if statusOfRaw(r) != 503 || !strings.Contains(r, "Retry-After: 7\r\n") {
		t.Fatalf("saturated and degraded: want the route's shed answer, got %q", r)
	}
	close(block)
	<-done
}

// TestDegradedRefusedRouteServesFreshHits: a refused request on a cached route
// gets a fresh stored answer as an ordinary hit, not the shed answer, and the
// backend is not asked; expired entries and misses are shed.
func TestDegradedRefusedRouteServesFreshHits(t *testing.T) {
	c, err := cache.New(cache.Options{MaxBytes: 1 << 20, ErrorHandler: CacheError})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	be := newRawBackend(t, func(target string, _ []byte) string {
		if strings.Contains(target, "old") {
			return "HTTP/1.1 200 OK\r\nCache-Control: max-age=0\r\nETag: \"o\"\r\nContent-Length: 3\r\n\r\nold"
		}
		return "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: 3\r\n\r\nimg"
	})
	px, mon := degradedProxy(t, Options{Cache: c}, PoolSpec{}, be.addr(),
		RouteSpec{Name: "static", PathPrefix: "/", Pool: "p", Priority: degrade.PriorityLow, Action: degrade.ActionShed,
			Cache: &cache.PolicyOptions{MaxObjectBytes: 1 << 20, MaxStale: time.Hour}})
	exchange(t, px.addr, "GET /a.png HTTP/1.1\r\nHost: x\r\n\r\n", 300*time.Millisecond)
	exchange(t, px.addr, "GET /old.png HTTP/1.1\r\nHost: x\r\n\r\n", 300*time.Millisecond)
	mon.SetOverride("p", degrade.OverrideDegraded)
	n := len(be.requests())
	r, _ := exchange(t, px.addr, "GET /a.png HTTP/1.1\r\nHost: x\r\n\r\n", 300*time.Millisecond)
	if statusOfRaw(r) != 200 || !strings.HasSuffix(r, "img") || !strings.Contains(r, "Cache-Status: floodgate; hit; ttl=") || strings.Contains(r, "degraded") {
		t.Fatalf("fresh page on a refused route while degraded: want an ordinary hit, got %q", r)
	}
	if r, _ := exchange(t, px.addr, "GET /old.png HTTP/1.1\r\nHost: x\r\n\r\n", 300*time.Millisecond); statusOfRaw(r) != 503 {
		t.Fatalf("expired page on a shed route while degraded: %q, want the shed answer", r)
	}
	if r, _ := exchange(t, px.addr, "GET /b.png HTTP/1.1\r\nHost: x\r\n\r\n", 300*time.Millisecond); statusOfRaw(r) != 503 {
		t.Fatalf("uncached page on a shed route while degraded: %q", r)
	}
	if got := len(be.requests()) - n; got != 0 {
		t.Fatalf("backend got %d requests for refused requests", got)
	}
	for _, st := range px.s.RouteStats() {
		if st.Route == "static" && st.Shed() != 2 {
			t.Errorf("shed %d, want 2 (the fresh hit is not held-back demand)", st.Shed())
		}
	}
}

// TestDegradedCachedRouteSaturatedServesStale: on a stale route, a miss that
// is admitted but finds every slot busy while the pool is degraded gets the
// route's degraded answer (here a stale copy of another variant is not there,
// so the shed answer with Retry-After), never the cache's bare error page.
func TestDegradedCachedRouteSaturatedServesStale(t *testing.T) {
	c, err := cache.New(cache.Options{MaxBytes: 1 << 20, ErrorHandler: CacheError})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	shed, _ := degrade.NewShed(503, 7*time.Second)
	px, pool, block := saturableDegradedProxy(t, Options{Cache: c},
		RouteSpec{Name: "product", PathPrefix: "/", Pool: "p", Action: degrade.ActionStale, Shed: shed,
			Cache: &cache.PolicyOptions{MaxObjectBytes: 1 << 20, MaxStale: time.Hour}})
	done := make(chan struct{})
	go func() { exchange(t, px.addr, "GET /one HTTP/1.1\r\nHost: x\r\n\r\n", 5*time.Second); close(done) }()
	waitUntil(t, "the slot taken", func() bool { return pool.Backends()[0].State.Inflight() == 1 })
	r, _ := exchange(t, px.addr, "GET /two HTTP/1.1\r\nHost: x\r\n\r\n", 300*time.Millisecond)
	if statusOfRaw(r) != 503 || !strings.Contains(r, "Retry-After: 7\r\n") || strings.Contains(r, "detail=error") {
		t.Fatalf("cached route saturated while degraded: want the route's shed answer, got %q", r)
	}
	close(block)
	<-done
}
