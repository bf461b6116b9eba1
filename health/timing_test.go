package health

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestJitterBounds(t *testing.T) {
	t.Parallel()
	const d = time.Second
	lo, hi := d, d
	for range 10000 {
		j := jitter(d)
		if j < d-d/10 || j > d+d/10 {
			t.Fatalf("jitter(%s) = %s, outside ±10%%", d, j)
		}
		lo, hi = min(lo, j), max(hi, j)
	}
	if hi-lo < d/10 { // 10000 uniform draws cover far more than half the range
		t.Errorf("jitter(%s) only spans [%s, %s]", d, lo, hi)
	}
	if j := jitter(1); j < 0 || j > 1 {
		t.Errorf("jitter(1ns) = %s", j)
	}
}

// TestFirstProbesSpread registers 100 backends at once and checks that their
// first probes are spread over the interval instead of arriving in lockstep.
func TestFirstProbesSpread(t *testing.T) {
	t.Parallel()
	const n, interval = 100, time.Second
	var (
		mu    sync.Mutex
		first = make(map[string]time.Time)
		all   = make(chan struct{})
	)
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if _, ok := first[r.Host]; !ok {
			first[r.Host] = time.Now()
			if len(first) == n {
				close(all)
			}
		}
	}))
	t.Cleanup(srv.Close)
	c, _ := newChecker(t)
	want := make([]Probe, n)
	for i := range want {
		check := httpCheck(interval, 1, 1)
		check.Host = fmt.Sprintf("b%d.test", i) // tells the backends apart at the server
		want[i] = Probe{Pool: fmt.Sprintf("pool%d", i), Address: srv.Listener.Addr().String(),
			Check: check, Target: newTarget(true), StartUp: true}
	}
	start := time.Now()
	c.Sync(want)
	select {
	case <-all:
	case <-time.After(waitFor):
		t.Fatalf("not every backend probed within %s", waitFor)
	}
	c.Close()

	mu.Lock()
	defer mu.Unlock()
	offsets := make([]time.Duration, 0, n)
	for _, at := range first {
		offsets = append(offsets, at.Sub(start))
	}
	slices.Sort(offsets)
	early := 0
	for _, o := range offsets {
		if o < interval/10 {
			early++
		}
	}
	t.Logf("first probes of %d backends, interval %s: min %s, median %s, max %s; %d in the first tenth",
		n, interval, offsets[0].Round(time.Millisecond), offsets[n/2].Round(time.Millisecond),
		offsets[n-1].Round(time.Millisecond), early)
	// Uniform over [0, 1s): about 10 land in the first 100ms, and the last
	// well past 500ms. Lockstep would put all 100 in the first few ms.
	if early >= n/2 {
		t.Errorf("%d of %d first probes in the first %s: not spread", early, n, interval/10)
	}
	if spread := offsets[n-1] - offsets[0]; spread < interval/2 {
		t.Errorf("first probes spread over %s, want at least %s", spread, interval/2)
	}
}

// TestCloseWaitsForProbers checks that Close leaves no prober goroutine
// behind, and that the goroutine count settles back to where it was.
func TestCloseWaitsForProbers(t *testing.T) {
	// Not parallel: it counts the process's goroutines.
	srv := newProbeServer(t, 200)
	baseline := runtime.NumGoroutine()
	c := NewChecker(Options{})
	want := make([]Probe, 50)
	for i := range want {
		want[i] = Probe{Pool: fmt.Sprintf("p%d", i), Address: srv.addr(),
			Check: httpCheck(10*time.Millisecond, 1, 1), Target: newTarget(true), StartUp: true}
	}
	c.Sync(want)
	for range 100 { // every prober is busy probing
		srv.next(t)
	}
	if n := c.running.Load(); n != 50 {
		t.Fatalf("running = %d, want 50", n)
	}
	c.Close()
	if n := c.running.Load(); n != 0 {
		t.Fatalf("running = %d after Close returned, want 0", n)
	}
	c.Close() // idempotent
	c.Sync(want)
	if n := c.running.Load(); n != 0 {
		t.Fatalf("Sync after Close started %d probers", n)
	}
	// What may linger is the server's side of the last connections, which
	// exit on their own once they see the close.
	eventually(t, "goroutines back to baseline", func() bool { return runtime.NumGoroutine() <= baseline })
}

// TestCloseInterruptsProbe checks that Close does not wait out a probe
// blocked on a silent backend: with a 5s timeout it must return at once.
func TestCloseInterruptsProbe(t *testing.T) {
	t.Parallel()
	srv := newProbeServer(t, 200)
	srv.hang.Store(true)
	c := NewChecker(Options{})
	want := make([]Probe, 20) // 20 jittered first probes: the earliest comes soon
	for i := range want {
		want[i] = Probe{Pool: fmt.Sprintf("p%d", i), Address: srv.addr(),
			Check: httpCheck(5*time.Second, 1, 1), Target: newTarget(true), StartUp: true}
	}
	c.Sync(want)
	srv.next(t) // one probe is now blocked in the handler
	start := time.Now()
	c.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %s with a probe in flight, want well under the 5s timeout", d)
	}
	if n := c.running.Load(); n != 0 {
		t.Fatalf("running = %d after Close, want 0", n)
	}
}

// TestDetectionTime kills or freezes backends that are up and measures how
// long each takes to be marked down. The bound is the design's worst case:
// Fall probes at Interval (+10% jitter), the last one waiting out Timeout.
func TestDetectionTime(t *testing.T) {
	const (
		backends = 20
		interval = 20 * time.Millisecond
		timeout  = 20 * time.Millisecond
		fall     = 3
		// -race on a loaded, shared CI machine starves the test of CPU for
		// whole seconds; this still catches a checker that never detects, or
		// one that takes many intervals too many.
		slack = 3 * time.Second
	)
	bound := time.Duration(fall)*(interval+interval/10) + timeout
	tests := []struct {
		name string
		kill func(*probeServer)
	}{
		{"killed (connection refused)", func(s *probeServer) { s.Close() }},
		{"hung (no response)", func(s *probeServer) { s.hang.Store(true) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, rec := newChecker(t)
			srvs := make(map[string]*probeServer, backends)
			var want []Probe
			for i := range backends {
				s := newProbeServer(t, 200)
				srvs[s.addr()] = s
				check := Check{Type: TypeHTTP, Path: "/healthz", Interval: interval, Timeout: timeout, Rise: 1, Fall: fall}
				want = append(want, Probe{Pool: fmt.Sprintf("p%d", i), Address: s.addr(), Check: check,
					Target: newTarget(true), StartUp: true})
			}
			c.Sync(want)
			for _, s := range srvs { // steady state: every backend answered twice
				s.next(t)
				s.next(t)
			}
			killed := make(map[string]time.Time, backends)
			for addr, s := range srvs {
				killed[addr] = time.Now()
				tt.kill(s)
			}
			// On a loaded machine a 20ms timeout can fire spuriously, so a
			// backend may flap before the kill. Follow each backend's
			// transitions in order: a detection is the first down at or after
			// its kill; one already down at its kill has nothing to detect.
			var (
				took     []time.Duration
				detected = make(map[string]bool)
				downPre  = make(map[string]bool) // last transition before the kill was down
			)
			done := func() bool {
				for addr := range srvs {
					if !detected[addr] && !downPre[addr] {
						return false
					}
				}
				return true
			}
			apply := func(tr Transition) {
				switch {
				case tr.At.Before(killed[tr.Address]):
					downPre[tr.Address] = !tr.Up
				case !tr.Up && !detected[tr.Address]:
					detected[tr.Address] = true
					took = append(took, tr.At.Sub(killed[tr.Address]))
				}
			}
			for tr, ok := rec.pop(); ok; tr, ok = rec.pop() {
				apply(tr)
			}
			for !done() {
				apply(rec.next(t))
			}
			if len(took) == 0 {
				t.Fatalf("none of %d backends was up when killed", backends)
			}
			slices.Sort(took)
			t.Logf("%s: %d of %d backends, interval %s, timeout %s, fall %d: detected in min %s, median %s, max %s (bound %s)",
				tt.name, len(took), backends, interval, timeout, fall, took[0].Round(time.Millisecond),
				took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), bound)
			if slowest := took[len(took)-1]; slowest > bound+slack {
				t.Errorf("slowest detection %s, want <= %s + %s slack", slowest, bound, slack)
			}
		})
	}
}
