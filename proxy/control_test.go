package proxy

import (
	"fmt"
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
)

// controlSpec is a generation with one pool "p" over addr and the given routes,
// each "/name/" to p with the given priority.
func controlSpec(t testing.TB, gen uint64, st *balancer.BackendState, ps *balancer.PoolState, addr string, prio degrade.Priority, routes ...string) Spec {
	t.Helper()
	pool, err := balancer.NewPool(balancer.PoolOptions{Name: "p", State: ps, Backends: []balancer.BackendSpec{{Address: addr, Weight: 1, State: st}}})
	if err != nil {
		t.Fatal(err)
	}
	spec := Spec{Gen: gen, Pools: []PoolSpec{{Pool: pool}}}
	for _, r := range routes {
		spec.Routes = append(spec.Routes, RouteSpec{Name: r, PathPrefix: "/" + r + "/", Pool: "p", Priority: prio,
			RateLimit: &RateLimitSpec{Rate: 1e6, Header: "X-Key"}})
	}
	return spec
}

// serveSpec builds and swaps spec into a new Server listening on loopback.
func serveSpec(t testing.TB, spec Spec) (*Server, string) {
	t.Helper()
	s := New(Options{})
	snap, err := s.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	s.Swap(snap)
	return s, serveOn(t, s)
}

func serveOn(t testing.TB, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Shutdown(contextWithTimeout(t, 5*time.Second)); <-done })
	return ln.Addr().String()
}

// TestReloadUnderLoadTouchesNothingLive (issue 13, item 21): building a
// generation wrote the priority into the route stats the live generation
// shares, while scrapes read them. Under -race this reported a data race; and
// a generation that was built but never swapped in changed what the metrics
// said.
func TestReloadUnderLoadTouchesNothingLive(t *testing.T) {
	be := newRawBackend(t, nil)
	st, ps := balancer.NewBackendState("p/"+be.addr()), balancer.NewPoolState("p")
	s, addr := serveSpec(t, controlSpec(t, 1, st, ps, be.addr(), degrade.PriorityNormal, "r"))

	stop := make(chan struct{})
	var served, scraped atomic.Int64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // load
		defer wg.Done()
		hc := &fasthttp.HostClient{Addr: addr, ReadTimeout: 5 * time.Second}
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, _, _ = hc.Get(nil, "http://x/r/")
			served.Add(1)
		}
	}()
	go func() { // scrapes, as the proxy's Collector reads them
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, rs := range s.RouteStats() {
				_ = rs.Route + rs.Pool + rs.Priority
				_ = rs.Shed()
			}
			scraped.Add(1)
		}
	}()
	prios := []degrade.Priority{degrade.PriorityCritical, degrade.PriorityLow}
	// Reload until both have run alongside the reloads for a while.
	for i := 0; i < 40 || served.Load() < 200 || scraped.Load() < 200; i++ {
		snap, err := s.Build(controlSpec(t, uint64(i+2), st, ps, be.addr(), prios[i%2], "r"))
		if err != nil {
			t.Fatal(err)
		}
		s.Swap(snap)
	}
	close(stop)
	wg.Wait()

	// A generation built but not (yet) swapped in changes nothing live.
	if _, err := s.Build(controlSpec(t, 100, st, ps, be.addr(), degrade.PriorityHigh, "r")); err != nil {
		t.Fatal(err)
	}
	for _, rs := range s.RouteStats() {
		if rs.Route == "r" && rs.Priority == degrade.PriorityHigh.String() {
			t.Fatalf("route r's priority in service is %q after building an unswapped generation", rs.Priority)
		}
	}
}

// getWith sends a GET with one extra header through the proxy and returns the
// status.
func getWith(t testing.TB, hc *fasthttp.HostClient, path, name, value string) int {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://x" + path)
	req.Header.Set(name, value)
	if err := hc.Do(req, resp); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode()
}

// TestRateLimitKeysBoundedInBytes (issue 13, item 20): a header-keyed rate
// limit kept every value as it came, up to the 16 KiB header limit, for up to
// max_keys clients: 1.6 GB a route by default, chosen by clients. Long values
// are kept as a fixed-size hash, and still limited one by one.
func TestRateLimitKeysBoundedInBytes(t *testing.T) {
	be := newRawBackend(t, nil)
	st, ps := balancer.NewBackendState("p/"+be.addr()), balancer.NewPoolState("p")
	spec := controlSpec(t, 1, st, ps, be.addr(), degrade.PriorityNormal, "r")
	spec.Routes[0].RateLimit = &RateLimitSpec{Header: "X-Key", Rate: 0.001, Burst: 1}
	s, addr := serveSpec(t, spec)
	hc := &fasthttp.HostClient{Addr: addr, ReadTimeout: 5 * time.Second, ReadBufferSize: 32 << 10}

	const n, size = 40, 8 << 10
	for i := range n {
		key := strings.Repeat("k", size-4) + fmt.Sprintf("%04d", i)
		if code := getWith(t, hc, "/r/", "X-Key", key); code != 200 {
			t.Fatalf("first request with key %d: %d", i, code)
		}
	}
	lim := s.Current().routes[0].limit
	if got := lim.keys(); got != n {
		t.Fatalf("%d keys tracked, want %d", got, n)
	}
	if got := lim.keyBytes(); got > n*maxKeyBytes {
		t.Fatalf("%d keys of %d bytes hold %d bytes of keys, want at most %d per key", n, size, got, maxKeyBytes)
	}
	// Long keys are still limited one by one: the same value again is refused,
	// a new one is not.
	if code := getWith(t, hc, "/r/", "X-Key", strings.Repeat("k", size-4)+"0007"); code != 429 {
		t.Fatalf("a long key over its limit: %d, want 429", code)
	}
	if code := getWith(t, hc, "/r/", "X-Key", strings.Repeat("k", size-4)+"9999"); code != 200 {
		t.Fatalf("a new long key: %d, want 200", code)
	}
	if code := getWith(t, hc, "/r/", "X-Key", "short"); code != 200 {
		t.Fatalf("a short key: %d", code)
	}
	if code := getWith(t, hc, "/r/", "X-Key", "short"); code != 429 {
		t.Fatalf("a short key over its limit: %d, want 429", code)
	}
}

// TestReloadPrunesRemovedRoutes (issue 13, item 20): the tables of route
// counters, rate limiters and cache policies kept every route ever configured;
// reloads that rename routes grew them for ever. A route that stays keeps its
// counters.
func TestReloadPrunesRemovedRoutes(t *testing.T) {
	be := newRawBackend(t, nil)
	st, ps := balancer.NewBackendState("p/"+be.addr()), balancer.NewPoolState("p")
	s, addr := serveSpec(t, controlSpec(t, 1, st, ps, be.addr(), degrade.PriorityNormal, "keep", "gone0"))
	hc := &fasthttp.HostClient{Addr: addr, ReadTimeout: 5 * time.Second}
	for _, path := range []string{"/keep/", "/gone0/"} {
		if code := getWith(t, hc, path, "X-Key", "a"); code != 200 {
			t.Fatalf("%s: %d", path, code)
		}
	}
	for gen := range 20 {
		snap, err := s.Build(controlSpec(t, uint64(gen+2), st, ps, be.addr(), degrade.PriorityNormal, "keep", "gone"+strconv.Itoa(gen+1)))
		if err != nil {
			t.Fatal(err)
		}
		s.Swap(snap)
		if code := getWith(t, hc, "/gone"+strconv.Itoa(gen+1)+"/", "X-Key", "a"); code != 200 {
			t.Fatalf("gen %d: %d", gen+2, code)
		}
	}
	s.upMu.Lock()
	nStats, nLimiters := len(s.stats), len(s.limiters)
	s.upMu.Unlock()
	if nStats != 2 || nLimiters != 2 {
		t.Fatalf("after 20 reloads each renaming a route: %d route counters and %d limiters kept, want 2 and 2 (the routes in service)", nStats, nLimiters)
	}
	for _, rs := range s.RouteStats() {
		if rs.Route == "keep" {
			if n, _, _ := rs.Latency(); n != 1 {
				t.Fatalf("route keep counts %d requests across reloads, want 1", n)
			}
		}
	}
}

// TestDroppedBuildLeavesNothingBehind (issue 14): Build recorded the upstreams,
// rate limiters and route counters it made in the Server's tables, so a
// generation built and then dropped (a reload whose later step failed)
// replaced what the generation in service had there: the next generation then
// got a fresh rate limiter (every client a new burst) and new backend clients
// (every pooled connection dropped), as if the dropped build had been served.
func TestDroppedBuildLeavesNothingBehind(t *testing.T) {
	be := newRawBackend(t, nil)
	st, ps := balancer.NewBackendState("p/"+be.addr()), balancer.NewPoolState("p")
	spec := func(gen uint64, rate float64, connect time.Duration) Spec {
		sp := controlSpec(t, gen, st, ps, be.addr(), degrade.PriorityNormal, "r")
		sp.Pools[0].ConnectTimeout = connect
		sp.Routes[0].RateLimit = &RateLimitSpec{Rate: rate, Burst: 1}
		return sp
	}
	s, addr := serveSpec(t, spec(1, 0.001, time.Second))
	hc := &fasthttp.HostClient{Addr: addr, ReadTimeout: 5 * time.Second}
	if code, _, err := hc.Get(nil, "http://x/r/"); err != nil || code != 200 {
		t.Fatalf("first request: %d %v", code, err)
	}
	if code, _, _ := hc.Get(nil, "http://x/r/"); code != 429 {
		t.Fatalf("second request: %d, want 429 (burst of 1 spent)", code)
	}
	live := s.Current()

	// Built with other settings, never swapped in.
	if _, err := s.Build(spec(2, 1000, 2*time.Second)); err != nil {
		t.Fatal(err)
	}
	next, err := s.Build(spec(3, 0.001, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if next.pools["p"].upstreams[0] != live.pools["p"].upstreams[0] {
		t.Error("the backend client in service was not reused after a dropped build: its pooled connections are lost")
	}
	if next.routes[0].limit != live.routes[0].limit {
		t.Error("the rate limiter in service was not reused after a dropped build")
	}
	if next.routes[0].stats.routeCounters != live.routes[0].stats.routeCounters {
		t.Error("the route counters in service were not reused after a dropped build")
	}
	s.Swap(next)
	if code, _, _ := hc.Get(nil, "http://x/r/"); code != 429 {
		t.Fatalf("after the reload: %d, want 429: the spent burst came back", code)
	}
}
