package degrade

import (
	"testing"
	"time"
)

var t0 = time.Date(2025, 6, 1, 20, 0, 0, 0, time.UTC)

// fakeSource is a SignalSource whose readings the test sets.
type fakeSource struct{ s Sample }

func (f *fakeSource) Sample() Sample { return f.s }

// win is one synthetic window: what the pool looks like during it.
type win struct {
	ratio     float64       // in-flight ratio at the end (capacity 1000)
	lat       time.Duration // latency of every forwarded request
	n         int           // forwarded requests; 0 means 100
	failed    int           // of which failed
	queueWait time.Duration // mean wait of the window's completed waits (one per request)
	refused   uint64        // balancer refusals
	up        int64         // up weight out of 10; 0 means 10
	down      bool          // no backend up
	diverted  map[Priority]uint64
}

// harness drives one pool "shop" through synthetic windows with an injected
// clock and collects its transitions.
type harness struct {
	tb     testing.TB
	m      *Monitor
	src    *fakeSource
	rec    *Recorder
	gate   *Gate
	now    time.Time
	window time.Duration
	trs    []Transition
	steps  int
}

func newHarness(tb testing.TB, cfg PoolConfig) *harness {
	tb.Helper()
	h := &harness{tb: tb, src: &fakeSource{}, now: t0, window: 2 * time.Second}
	h.src.s = Sample{Capacity: 1000, UpWeight: 10, TotalWeight: 10}
	h.m = NewMonitor(MonitorOptions{
		Window:       h.window,
		Now:          func() time.Time { return h.now },
		OnTransition: func(tr Transition) { h.trs = append(h.trs, tr) },
	})
	if cfg.Name == "" {
		cfg.Name = "shop"
	}
	cfg.Source = h.src
	if err := h.m.Configure([]PoolConfig{cfg}); err != nil {
		tb.Fatal(err)
	}
	h.rec, h.gate = h.m.Recorder(cfg.Name), h.m.Gate(cfg.Name)
	return h
}

// step feeds one window and evaluates it.
func (h *harness) step(w win) {
	n := w.n
	if n == 0 {
		n = 100
	}
	for i := range n {
		h.rec.Observe(w.lat, i < w.failed)
	}
	for p, k := range w.diverted {
		for range k {
			h.rec.Divert(p)
		}
	}
	s := &h.src.s
	s.Inflight = int64(w.ratio * float64(s.Capacity))
	s.UpWeight = 10
	if w.up != 0 {
		s.UpWeight = w.up
	}
	if w.down {
		s.UpWeight = 0
	}
	if w.queueWait > 0 {
		s.QueueWaits += uint64(n)
		s.QueueWaitNanos += uint64(n) * uint64(w.queueWait)
	}
	s.QueueRefused += w.refused
	h.now = h.now.Add(h.window)
	h.steps++
	h.m.Step(h.now)
}

// run feeds the same window k times.
func (h *harness) run(k int, w win) {
	for range k {
		h.step(w)
	}
}

func (h *harness) status() Status {
	h.tb.Helper()
	st, ok := h.m.Status("shop")
	if !ok {
		h.tb.Fatal("pool shop not found")
	}
	return st
}

// count returns the transitions to each mode.
func (h *harness) count() (toDegraded, toNormal int) {
	for _, tr := range h.trs {
		if tr.To == ModeDegraded {
			toDegraded++
		} else {
			toNormal++
		}
	}
	return
}

// ratioCfg is a pool degraded on in-flight ratio alone: enter 0.9, exit 0.6.
func ratioCfg(windows int, hold time.Duration) PoolConfig {
	return PoolConfig{
		Enter:   Thresholds{InflightRatio: 0.9},
		Exit:    Thresholds{InflightRatio: 0.6},
		Windows: windows,
		Hold:    hold,
	}
}

// fullCfg is the architecture's example: every signal.
func fullCfg() PoolConfig {
	return PoolConfig{
		Enter: Thresholds{InflightRatio: 0.9, QueueWait: 200 * time.Millisecond, P95Latency: 800 * time.Millisecond, ErrorRate: 0.2},
		Exit:  Thresholds{InflightRatio: 0.6, QueueWait: 20 * time.Millisecond, P95Latency: 300 * time.Millisecond, ErrorRate: 0.05},
		Hold:  30 * time.Second,
	}
}

var (
	calm   = win{ratio: 0.3, lat: 50 * time.Millisecond}
	middle = win{ratio: 0.75, lat: 500 * time.Millisecond} // between exit and enter
	busy   = win{ratio: 0.95, lat: 1200 * time.Millisecond}
)
