package proxy

import (
	"net"
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
	go func() { // scrapes, as metrics.RegisterEdge's collector reads them
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
