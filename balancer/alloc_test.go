package balancer

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestZeroAllocs enforces the request-path budget: no allocation in Pick (any
// health), Acquire+Release without waiters, Up or Report, including the error
// returns and a passive ejection.
func TestZeroAllocs(t *testing.T) {
	clk := newFakeClock()
	healthy := mustPool(t, PoolOptions{Backends: specs(3, 2, 1), MaxConnsPerBackend: 100, MaxFails: 2, EjectFor: time.Second, Now: clk.Now})
	oneDown := weighted(t, 3, 2, 1)
	oneDown.Backends()[1].State.SetProbeUp(false)
	allDown := weighted(t, 3, 2, 1)
	for _, b := range allDown.Backends() {
		b.State.SetProbeUp(false)
	}
	big := make([]int, 100)
	for i := range big {
		big[i] = 1 + i%10
	}
	mostlyDown := weighted(t, big...)
	for _, b := range mostlyDown.Backends()[1:] {
		b.State.SetProbeUp(false)
	}
	slowSpecs := specs(1, 1)
	slowSpecs[1].State = NewBackendStateDown("b")
	slow := mustPool(t, PoolOptions{Backends: slowSpecs, SlowStart: time.Hour, Now: clk.Now})
	slowSpecs[1].State.SetProbeUp(true)
	st := healthy.Backends()[0].State

	tests := []struct {
		name string
		fn   func()
	}{
		{"Pick", func() { _, _ = healthy.Pick() }},
		{"Pick one down", func() { _, _ = oneDown.Pick() }},
		{"Pick all down", func() {
			if _, err := allDown.Pick(); !errors.Is(err, ErrNoHealthyBackend) {
				panic(err)
			}
		}},
		{"Pick 100 mostly down", func() { _, _ = mostlyDown.Pick() }},
		{"Pick slow start", func() { _, _ = slow.Pick() }},
		{"Acquire+Release", func() {
			b, err := healthy.Acquire(nil)
			if err != nil {
				panic(err)
			}
			b.Release()
		}},
		{"Acquire skip", func() {
			b, _ := healthy.Acquire(healthy.Backends()[0])
			b.Release()
		}},
		{"Acquire all down", func() { _, _ = allDown.Acquire(nil) }},
		{"Up", func() { _ = st.Up() }},
		{"Report ok", func() { st.Report(true) }},
		{"Report fail and eject", func() {
			st.Report(false)
			st.Report(false)
			clk.Advance(time.Hour)
		}},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(1000, tt.fn); n != 0 {
			t.Errorf("%s allocs = %v, want 0", tt.name, n)
		}
	}
}

// TestConcurrentAcquireRelease hammers a limited pool from many goroutines while
// generations are swapped, backends flap and the queue is kicked. Per-backend
// in-flight never exceeds the limit, and everything drains to zero.
func TestConcurrentAcquireRelease(t *testing.T) {
	t.Parallel()
	const (
		limit      = 3
		goroutines = 32
		iterations = 500
	)
	ps := NewPoolState("stress")
	sp := specs(3, 2, 1, 1)
	opts := PoolOptions{Name: "stress", State: ps, Backends: sp, MaxConnsPerBackend: limit, QueueMax: goroutines, QueueTimeout: time.Minute}
	var current atomic.Pointer[Pool]
	current.Store(mustPool(t, opts))

	// Our own count per backend state, raised after Acquire and lowered before
	// Release: it can only exceed the limit if the balancer over-admits.
	var mu sync.Mutex
	held := map[*BackendState]*atomic.Int64{}
	for _, s := range sp {
		held[s.State] = new(atomic.Int64)
	}
	var peak atomic.Int64
	var errs atomic.Int64

	stop := make(chan struct{})
	control := make(chan struct{})
	go func() { // control plane: swap generations, flap one backend, kick
		defer close(control)
		gens := [][]int{{3, 2, 1, 1}, {1, 1, 1, 1}, {0, 2, 2, 1}}
		for i := 0; ; i++ {
			select {
			case <-stop:
				sp[3].State.SetProbeUp(true)
				return
			default:
			}
			o := opts
			o.Backends = respec(sp, gens[i%len(gens)]...)
			current.Store(mustPool(t, o))
			sp[3].State.SetProbeUp(i%2 == 0)
			ps.Kick()
			runtime.Gosched()
		}
	}()

	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			var last *Backend
			for i := range iterations {
				var skip *Backend
				if i%7 == 0 {
					skip = last // a retry elsewhere
				}
				b, err := current.Load().Acquire(skip)
				if err != nil {
					if !errors.Is(err, ErrNoHealthyBackend) {
						errs.Add(1)
						t.Errorf("goroutine %d: %v", g, err)
					}
					continue
				}
				mu.Lock()
				c := held[b.State]
				mu.Unlock()
				n := c.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				if n > limit {
					t.Errorf("%s: %d held, limit %d", b.Address, n, limit)
				}
				if i%3 == 0 {
					runtime.Gosched()
				}
				c.Add(-1)
				b.Release()
				last = b
			}
		})
	}
	wg.Wait()
	close(stop)
	<-control
	if errs.Load() != 0 {
		t.Fatalf("%d unexpected errors", errs.Load())
	}
	for _, s := range sp {
		if n := s.State.Inflight(); n != 0 {
			t.Errorf("%s inflight = %d after the run, want 0", s.State.ID(), n)
		}
	}
	if st := ps.QueueStats(); st.Depth != 0 || ps.waiting.Load() != 0 || st.Enqueued != st.Waits {
		t.Errorf("QueueStats = %+v, waiting %d", st, ps.waiting.Load())
	}
	if p := peak.Load(); p > limit {
		t.Errorf("peak held = %d, want <= %d", p, limit)
	}
	t.Logf("peak %d, queue %+v", peak.Load(), ps.QueueStats())
}

// TestConcurrentPick: picks from many goroutines while two of three backends
// flap never fail, since one stays up.
func TestConcurrentPick(t *testing.T) {
	t.Parallel()
	p := weighted(t, 5, 3, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 2000 {
			p.Backends()[1+i%2].State.SetProbeUp(i%3 != 0)
		}
	}()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5000 {
				if _, err := p.Pick(); err != nil {
					t.Errorf("Pick: %v while a is up", err)
					return
				}
			}
		})
	}
	wg.Wait()
	<-done
}
