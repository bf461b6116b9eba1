package degrade

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/floodgate/floodgate/balancer"
)

func TestPoolSource(t *testing.T) {
	p, err := balancer.NewPool(balancer.PoolOptions{
		Name: "shop",
		Backends: []balancer.BackendSpec{
			{Address: "a", Weight: 3}, {Address: "b", Weight: 2}, {Address: "c", Weight: 1}, {Address: "d", Weight: 0},
		},
		MaxConnsPerBackend: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	p.Backends()[1].State.SetProbeUp(false)
	var held []*balancer.Backend
	for range 4 {
		b, err := p.Acquire(nil)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, b)
	}
	if _, err := p.Acquire(nil); !errors.Is(err, balancer.ErrQueueFull) {
		t.Fatalf("fifth Acquire: %v, want ErrQueueFull", err)
	}
	src := &PoolSource{Pool: func() *balancer.Pool { return p }}
	want := Sample{Inflight: 4, Capacity: 4, UpWeight: 4, TotalWeight: 6, QueueRefused: 1}
	if got := src.Sample(); got != want {
		t.Errorf("Sample() = %+v, want %+v", got, want)
	}

	// Through the monitor: in-flight ratio 1 and a refusal.
	now := t0
	m := NewMonitor(MonitorOptions{Now: func() time.Time { return now }})
	if err := m.Configure([]PoolConfig{{Name: "shop", Source: src, Windows: 1,
		Enter: Thresholds{InflightRatio: 0.9}, Exit: Thresholds{InflightRatio: 0.5}}}); err != nil {
		t.Fatal(err)
	}
	_, _ = p.Acquire(nil) // refused after the baseline: counts in the window
	now = now.Add(DefaultWindow)
	m.Step(now)
	st, _ := m.Status("shop")
	if st.Signals.InflightRatio != 1 || st.Signals.Refused != 1 || st.Signals.HealthyCapacity != 4.0/6 || st.Level != LevelShedLow {
		t.Errorf("status = %+v", st)
	}
	for _, b := range held {
		b.Release()
	}
	if got := src.Sample(); got.Inflight != 0 {
		t.Errorf("after Release: %+v", got)
	}

	// Reserved slots are not capacity: 2 × (2-1) shared slots.
	reserved, err := balancer.NewPool(balancer.PoolOptions{Name: "shop", MaxConnsPerBackend: 2, Reserved: 1,
		Backends: []balancer.BackendSpec{{Address: "a", Weight: 1}, {Address: "b", Weight: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := (&PoolSource{Pool: func() *balancer.Pool { return reserved }}).Sample(); got.Capacity != 2 || got.Inflight != 0 {
		t.Errorf("with a reservation: %+v", got)
	}
	unlimited, err := balancer.NewPool(balancer.PoolOptions{Name: "shop",
		Backends: []balancer.BackendSpec{{Address: "a", Weight: 3}, {Address: "b", Weight: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*PoolSource{
		"nil":       nil,
		"no getter": {},
		"nil pool":  {Pool: func() *balancer.Pool { return nil }},
		"unlimited": {Pool: func() *balancer.Pool { return unlimited }},
	} {
		got := s.Sample()
		if name != "unlimited" && got != (Sample{}) || name == "unlimited" && (got.Capacity != 0 || got.TotalWeight != 6) {
			t.Errorf("%s: Sample() = %+v", name, got)
		}
	}
}

func TestPoolSourceQueueWait(t *testing.T) {
	p, err := balancer.NewPool(balancer.PoolOptions{
		Name:               "q",
		Backends:           []balancer.BackendSpec{{Address: "a", Weight: 1}},
		MaxConnsPerBackend: 1,
		QueueMax:           1,
		QueueTimeout:       5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Acquire(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	// Waits for the balancer's own queue timeout: no sleep in the test.
	if _, err := p.Acquire(nil); !errors.Is(err, balancer.ErrQueueTimeout) {
		t.Fatalf("queued Acquire: %v, want ErrQueueTimeout", err)
	}
	got := (&PoolSource{Pool: func() *balancer.Pool { return p }}).Sample()
	if got.QueueWaits != 1 || got.QueueWaitNanos < uint64(5*time.Millisecond) || got.QueueRefused != 1 || got.QueueDepth != 0 {
		t.Errorf("Sample() = %+v", got)
	}
}

func TestRunClose(t *testing.T) {
	trs := make(chan Transition, 4)
	m := NewMonitor(MonitorOptions{Window: MinWindow, OnTransition: func(tr Transition) { trs <- tr }})
	src := &fakeSource{Sample{Inflight: 95, Capacity: 100}}
	if err := m.Configure([]PoolConfig{{Name: "shop", Source: src, Windows: 1,
		Enter: Thresholds{InflightRatio: 0.9}, Exit: Thresholds{InflightRatio: 0.5}}}); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- m.Run(context.Background()) }()
	select {
	case tr := <-trs:
		if tr.To != ModeDegraded {
			t.Errorf("transition %+v", tr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run never stepped the pool")
	}
	m.Close()
	if err := <-errc; err != nil {
		t.Fatalf("Run returned %v after Close", err)
	}
	if err := m.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v, want ErrClosed", err)
	}
	m.Close() // idempotent

	m = NewMonitor(MonitorOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { errc <- m.Run(ctx) }()
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run returned %v after cancel", err)
	}
	m.Close() // with no Run left: returns at once
}

// TestConcurrentUse is for -race: the request path (Observe, Divert, Admit)
// against the control plane (Step, Configure, SetOverride, Status) and Run.
func TestConcurrentUse(t *testing.T) {
	p, err := balancer.NewPool(balancer.PoolOptions{Name: "shop", Backends: []balancer.BackendSpec{{Address: "a", Weight: 1}}, MaxConnsPerBackend: 10})
	if err != nil {
		t.Fatal(err)
	}
	src := &PoolSource{Pool: func() *balancer.Pool { return p }}
	cfg := PoolConfig{Name: "shop", Source: src, Windows: 1,
		Enter: Thresholds{InflightRatio: 0.5, P95Latency: time.Millisecond, ErrorRate: 0.5},
		Exit:  Thresholds{InflightRatio: 0.1, P95Latency: 100 * time.Microsecond, ErrorRate: 0.1}}
	m := NewMonitor(MonitorOptions{Window: MinWindow})
	if err := m.Configure([]PoolConfig{cfg}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = m.Run(ctx) }()
	defer m.Close()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			g, r := m.Gate("shop"), m.Recorder("shop")
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if b, err := p.Acquire(nil); err == nil {
					b.Release()
				}
				r.Observe(time.Duration(n%3000)*time.Microsecond, n%(i+2) == 0)
				if !g.Admit(Priority(n%4 + 1)) {
					r.Divert(Priority(n%4 + 1))
				}
			}
		})
	}
	now := time.Now()
	for i := range 300 {
		now = now.Add(MinWindow)
		m.Step(now)
		switch i % 50 {
		case 10:
			_ = m.SetOverride("shop", Override(i/50%3))
		case 20:
			if err := m.Configure([]PoolConfig{cfg, {Name: "other"}}); err != nil {
				t.Error(err)
			}
		case 30:
			_ = m.Statuses()
			_ = m.Stats()
			_, _ = m.Status("shop")
		}
	}
	close(stop)
	wg.Wait()
}

// TestPoolSourceCapacityPerBackend: capacity is the sum of the limits of the
// backends up, each its own (a pool of unequal instances), not the pool's
// limit times their number.
func TestPoolSourceCapacityPerBackend(t *testing.T) {
	p, err := balancer.NewPool(balancer.PoolOptions{
		Name:               "fleet",
		MaxConnsPerBackend: 10,
		Reserved:           1,
		Backends: []balancer.BackendSpec{
			{Address: "small", Weight: 1, MaxConns: 1},
			{Address: "large", Weight: 3, MaxConns: 3},
			{Address: "pool-sized", Weight: 1},                         // the pool's 10, less its 1 reserved
			{Address: "critical", Weight: 1, MaxConns: 8, Reserved: 2}, // 6 shared
			{Address: "draining", Weight: 0, MaxConns: 50},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	src := &PoolSource{Pool: func() *balancer.Pool { return p }}
	if got := src.Sample().Capacity; got != 1+3+9+6 {
		t.Errorf("Capacity = %d, want %d", got, 1+3+9+6)
	}
	p.Backends()[1].State.SetProbeUp(false)
	if got := src.Sample().Capacity; got != 1+9+6 {
		t.Errorf("with the large one down: Capacity = %d, want %d", got, 1+9+6)
	}
}
