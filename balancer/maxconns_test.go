package balancer

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestMaxConnsPerBackend: each backend's own MaxConns is its limit (HAProxy's
// per-server maxconn), the pool's MaxConnsPerBackend only for backends
// without one; a request waits only when every backend is at its own limit,
// and the slot a backend frees goes to the queue.
func TestMaxConnsPerBackend(t *testing.T) {
	sp := specs(1, 1, 1)
	sp[0].MaxConns, sp[1].MaxConns = 1, 3 // sp[2]: the pool's 2
	p, err := NewPool(PoolOptions{Name: "p", MaxConnsPerBackend: 2, QueueMax: 1, QueueTimeout: 10 * time.Second, Backends: sp})
	if err != nil {
		t.Fatal(err)
	}
	if got := []int64{p.Backends()[0].MaxConns, p.Backends()[1].MaxConns, p.Backends()[2].MaxConns}; got[0] != 1 || got[1] != 3 || got[2] != 2 {
		t.Fatalf("limits %v, want [1 3 2]", got)
	}
	var held []*Backend
	for i := 0; i < 6; i++ {
		b, err := p.Acquire(nil)
		if err != nil {
			t.Fatalf("Acquire %d of 6 free slots: %v", i+1, err)
		}
		held = append(held, b)
	}
	for i, want := range []int64{1, 3, 2} {
		if got := sp[i].State.Inflight(); got != want {
			t.Errorf("backend %s holds %d slots, want its limit %d", sp[i].Address, got, want)
		}
	}
	// Every backend at its own limit: the seventh queues.
	queued := make(chan *Backend, 1)
	p.state.mu.Lock()
	ready := make(chan struct{})
	p.state.onQueue = func() { close(ready) }
	p.state.mu.Unlock()
	go func() {
		b, err := p.Acquire(nil)
		if err != nil {
			t.Error(err)
		}
		queued <- b
	}()
	<-ready
	if _, err := p.Acquire(nil); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("eighth Acquire: %v, want ErrQueueFull", err)
	}
	// The small backend frees its one slot: the queued request takes it.
	for i, b := range held {
		if b.State == sp[0].State {
			b.Release()
			held = append(held[:i], held[i+1:]...)
			break
		}
	}
	if b := <-queued; b == nil || b.State != sp[0].State {
		t.Fatalf("queued request got %v, want the slot backend a freed", b)
	}
	if got := sp[0].State.Inflight(); got != 1 {
		t.Fatalf("backend a holds %d, want 1", got)
	}
	held = append(held, p.Backends()[0])

	// A new generation raises a's limit over the same states: the slots held
	// carry over and the new limit applies at once.
	sp2 := append([]BackendSpec(nil), sp...)
	sp2[0].MaxConns = 2
	p2, err := NewPool(PoolOptions{Name: "p", MaxConnsPerBackend: 2, State: p.State(), Backends: sp2})
	if err != nil {
		t.Fatal(err)
	}
	b, err := p2.Acquire(nil)
	if err != nil || b.State != sp[0].State {
		t.Fatalf("Acquire after raising a's limit: %v %v, want a", b, err)
	}
	if _, err := p2.Acquire(nil); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Acquire with every backend at its new limit: %v", err)
	}
	held = append(held, b)
	for _, b := range held {
		b.Release()
	}
	for _, s := range sp {
		if n := s.State.Inflight(); n != 0 {
			t.Errorf("%s: %d in flight after releasing all", s.Address, n)
		}
	}
}

// TestReservedPerBackend: a backend with its own limit keeps its own
// reserve for critical requests.
func TestReservedPerBackend(t *testing.T) {
	sp := specs(1)
	sp[0].MaxConns, sp[0].Reserved = 3, 1
	p, err := NewPool(PoolOptions{Name: "p", Backends: sp}) // no pool limit, no pool reserve
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := p.Acquire(nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Acquire(nil); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("third public request: %v, want ErrQueueFull (the last slot is reserved)", err)
	}
	if _, err := p.AcquireCritical(nil); err != nil {
		t.Fatalf("critical request with the reserve free: %v", err)
	}
	if _, err := p.AcquireCritical(nil); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("critical beyond the backend's limit: %v", err)
	}
}

func TestValidatePoolMaxConns(t *testing.T) {
	for _, tt := range []struct {
		name      string
		pool      int64
		max, resv int64
		want      string // "" = valid
	}{
		{"own limit", 0, 5, 0, ""},
		{"own limit and reserve", 10, 5, 1, ""},
		{"the largest", 0, 1_000_000, 0, ""},
		{"negative", 0, -1, 0, "backends[0] (a): max conns: must be between 0 and 1000000, got -1"},
		{"too large", 0, 1_000_001, 0, "backends[0] (a): max conns: must be between 0 and 1000000, got 1000001"},
		{"reserve without own limit", 10, 0, 1, "backends[0] (a): reserved 1: must be >= 0 and below its max conns 0"},
		{"reserve of every slot", 0, 2, 2, "backends[0] (a): reserved 2: must be >= 0 and below its max conns 2"},
		{"pool too large", 1_000_001, 0, 0, "max conns per backend: must be between 0 and 1000000, got 1000001"},
	} {
		err := ValidatePool(PoolOptions{Name: "p", MaxConnsPerBackend: tt.pool,
			Backends: []BackendSpec{{Address: "a", Weight: 1, MaxConns: tt.max, Reserved: tt.resv}}})
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestMaxConnsZeroAllocs: limits per backend keep Acquire+Release
// allocation-free, also when the ring passes over a backend at its own
// limit and when a critical request uses a backend's own reserve.
func TestMaxConnsZeroAllocs(t *testing.T) {
	sp := specs(1, 1)
	sp[0].MaxConns = 1
	sp[1].MaxConns, sp[1].Reserved = 50, 5
	p, err := NewPool(PoolOptions{Name: "p", MaxConnsPerBackend: 2, Backends: sp})
	if err != nil {
		t.Fatal(err)
	}
	full, err := p.Acquire(nil)
	for err == nil && full.State != sp[0].State {
		defer full.Release()
		full, err = p.Acquire(nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer full.Release()
	for name, acquire := range map[string]func(*Backend) (*Backend, error){"Acquire": p.Acquire, "AcquireCritical": p.AcquireCritical} {
		if n := testing.AllocsPerRun(1000, func() {
			b, err := acquire(nil)
			if err != nil || b.State != sp[1].State {
				panic(err)
			}
			b.Release()
		}); n != 0 {
			t.Errorf("%s past a full backend allocs = %v, want 0", name, n)
		}
	}
}

// TestLimitedAndSlotsPerBackend: a pool can run out of slots (Limited) when
// every backend it sends to has a limit, its own or the pool's; the slots
// that the predicted wait divides by are the sum of the up backends' own
// limits, less their own reserves for non-critical requests.
func TestLimitedAndSlotsPerBackend(t *testing.T) {
	own := func(pool int64, maxConns ...int64) *Pool {
		t.Helper()
		sp := specs(make([]int, len(maxConns))...)
		for i, m := range maxConns {
			sp[i].Weight, sp[i].MaxConns = 1, m
		}
		p, err := NewPool(PoolOptions{Name: "p", MaxConnsPerBackend: pool, Backends: sp})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tt := range []struct {
		name    string
		p       *Pool
		limited bool
		slots   int64
	}{
		{"each its own", own(0, 1, 3), true, 4},
		{"own and the pool's", own(5, 1, 0), true, 6},
		{"one without any", own(0, 1, 0), false, 0},
		{"the pool's only", own(2, 0, 0), true, 4},
		{"no limit", own(0, 0, 0), false, 0},
		{"empty with a limit", own(2), true, 0},
	} {
		if got := tt.p.Limited(); got != tt.limited {
			t.Errorf("%s: Limited() = %v, want %v", tt.name, got, tt.limited)
		}
		if got := tt.p.slots(false); got != tt.slots {
			t.Errorf("%s: slots = %d, want %d", tt.name, got, tt.slots)
		}
	}
	sp := specs(1, 1, 1)
	sp[0].MaxConns, sp[0].Reserved = 10, 2
	sp[1].MaxConns = 3
	p, err := NewPool(PoolOptions{Name: "p", MaxConnsPerBackend: 4, Reserved: 1, Backends: sp})
	if err != nil {
		t.Fatal(err)
	}
	if pub, crit := p.slots(false), p.slots(true); pub != 8+3+3 || crit != 10+3+4 {
		t.Errorf("slots public %d critical %d, want %d and %d", pub, crit, 8+3+3, 10+3+4)
	}
	sp[0].State.SetProbeUp(false)
	if got := p.slots(false); got != 3+3 {
		t.Errorf("slots with the large one down: %d, want 6", got)
	}
}

// TestMaxConnsNoQueue: without a queue, the request past the sum of the
// backends' own limits (1 + 3) is refused at once, and each backend holds
// exactly its limit.
func TestMaxConnsNoQueue(t *testing.T) {
	sp := specs(1, 1)
	sp[0].MaxConns, sp[1].MaxConns = 1, 3
	p, err := NewPool(PoolOptions{Name: "p", MaxConnsPerBackend: 10, Backends: sp})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if _, err := p.Acquire(nil); err != nil {
			t.Fatalf("Acquire %d of 4: %v", i+1, err)
		}
	}
	if _, err := p.Acquire(nil); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("fifth Acquire: %v, want ErrQueueFull", err)
	}
	if a, b := sp[0].State.Inflight(), sp[1].State.Inflight(); a != 1 || b != 3 {
		t.Fatalf("in flight %d and %d, want 1 and 3", a, b)
	}
}
