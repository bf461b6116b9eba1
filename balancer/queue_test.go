package balancer

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// limited returns a pool of two backends (a, b; weight 1) with 2 slots each and
// a queue that never times out during a test.
func limited(tb testing.TB, queueMax int) *Pool {
	tb.Helper()
	return mustPool(tb, PoolOptions{
		Name:               "shop",
		Backends:           specs(1, 1),
		MaxConnsPerBackend: 2,
		QueueMax:           queueMax,
		QueueTimeout:       time.Hour,
	})
}

func fill(tb testing.TB, p *Pool, n int) []*Backend {
	tb.Helper()
	out := make([]*Backend, n)
	for i := range out {
		out[i] = mustAcquire(tb, p, nil)
	}
	return out
}

func TestAcquireLimitsAndFIFO(t *testing.T) {
	t.Parallel()
	p := limited(t, 10)
	queued := queueSignal(p.State())
	held := fill(t, p, 4)
	for _, b := range p.Backends() {
		if got := b.State.Inflight(); got != 2 {
			t.Fatalf("%s inflight = %d, want 2", b.Address, got)
		}
	}

	results := make(chan result, 3)
	for id := 1; id <= 3; id++ {
		acquireAsync(p, nil, id, results)
		<-queued // one at a time, so queue order is id order
	}
	if d := p.State().QueueDepth(); d != 3 {
		t.Fatalf("QueueDepth = %d, want 3", d)
	}
	for i, want := range []int{1, 2, 3} {
		released := held[i]
		released.Release()
		r := receive(t, results)
		if r.err != nil || r.id != want {
			t.Fatalf("release %d woke waiter %d (%v), want %d", i, r.id, r.err, want)
		}
		// The slot is handed over directly: same backend, count unchanged.
		if r.b != released {
			t.Fatalf("waiter %d got %s, want the released %s", r.id, r.b.Address, released.Address)
		}
		held[i] = r.b
	}
	st := p.State().QueueStats()
	if st.Depth != 0 || st.Enqueued != 3 || st.Served != 3 || st.Waits != 3 || st.Timeouts != 0 || st.Rejected != 0 {
		t.Fatalf("QueueStats = %+v", st)
	}
	for _, b := range held {
		b.Release()
	}
	for _, b := range p.Backends() {
		if got := b.State.Inflight(); got != 0 {
			t.Fatalf("%s inflight = %d after releasing everything", b.Address, got)
		}
	}
}

func TestAcquireQueueFull(t *testing.T) {
	t.Parallel()
	p := limited(t, 1)
	queued := queueSignal(p.State())
	held := fill(t, p, 4)
	results := make(chan result, 1)
	acquireAsync(p, nil, 1, results)
	<-queued

	_, err := p.Acquire(nil)
	if !errors.Is(err, ErrQueueFull) || !errors.Is(err, ErrSaturated) || errors.Is(err, ErrQueueTimeout) {
		t.Fatalf("Acquire with a full queue = %v, want ErrQueueFull", err)
	}
	if want := `balancer: pool "shop": queue full (max 1)`; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if st := p.State().QueueStats(); st.Rejected != 1 || st.Depth != 1 {
		t.Fatalf("QueueStats = %+v", st)
	}
	held[0].Release()
	if r := receive(t, results); r.err != nil {
		t.Fatal(r.err)
	}
}

func TestAcquireNoQueue(t *testing.T) {
	t.Parallel()
	p := limited(t, 0)
	fill(t, p, 4)
	_, err := p.Acquire(nil)
	if !errors.Is(err, ErrQueueFull) || !errors.Is(err, ErrSaturated) {
		t.Fatalf("Acquire at the limit without a queue = %v, want ErrQueueFull", err)
	}
	if st := p.State().QueueStats(); st.Rejected != 1 || st.Enqueued != 0 {
		t.Fatalf("QueueStats = %+v", st)
	}
}

func TestAcquireQueueTimeout(t *testing.T) {
	t.Parallel()
	p := mustPool(t, PoolOptions{
		Name:               "shop",
		Backends:           specs(1),
		MaxConnsPerBackend: 1,
		QueueMax:           5,
		QueueTimeout:       20 * time.Millisecond,
	})
	held := mustAcquire(t, p, nil)
	start := time.Now()
	_, err := p.Acquire(nil)
	if !errors.Is(err, ErrQueueTimeout) || !errors.Is(err, ErrSaturated) {
		t.Fatalf("Acquire = %v, want ErrQueueTimeout", err)
	}
	if waited := time.Since(start); waited < 20*time.Millisecond {
		t.Fatalf("timed out after %v, before QueueTimeout", waited)
	}
	if want := `balancer: pool "shop": queue timeout (after 20ms)`; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	st := p.State().QueueStats()
	if st.Depth != 0 || st.Enqueued != 1 || st.Timeouts != 1 || st.Waits != 1 || st.WaitNanos < uint64(20*time.Millisecond) {
		t.Fatalf("QueueStats = %+v", st)
	}
	// The waiter left no trace: the slot still works, and the next one too.
	held.Release()
	mustAcquire(t, p, nil).Release()
	if got := held.State.Inflight(); got != 0 {
		t.Fatalf("inflight = %d, want 0", got)
	}
}

func TestAcquireSkip(t *testing.T) {
	t.Parallel()
	p := mustPool(t, PoolOptions{Backends: specs(1, 1), MaxConnsPerBackend: 10})
	a := p.Backends()[0]
	for range 10 {
		b := mustAcquire(t, p, a)
		if b == a {
			t.Fatal("Acquire returned the backend it was told to skip")
		}
		b.Release()
	}
	p.Backends()[1].State.SetProbeUp(false)
	if _, err := p.Acquire(a); !errors.Is(err, ErrNoHealthyBackend) {
		t.Fatalf("Acquire(skip the only healthy one) = %v, want ErrNoHealthyBackend", err)
	}
	// Skip may come from another generation: it is matched by state.
	gen2 := mustPool(t, PoolOptions{Backends: respec(specsOf(p), 1, 1)})
	if _, err := gen2.Acquire(a); !errors.Is(err, ErrNoHealthyBackend) {
		t.Fatalf("gen2.Acquire(skip gen1's a) = %v, want ErrNoHealthyBackend", err)
	}
}

func specsOf(p *Pool) []BackendSpec {
	var out []BackendSpec
	for _, b := range p.Backends() {
		out = append(out, BackendSpec{Address: b.Address, Weight: b.Weight, State: b.State})
	}
	return out
}

// TestAcquireSkipWhileQueued: a retry that may not use the only healthy backend
// fails at once even when others are queued; and a released slot that the
// oldest waiter may not use goes to the next one.
func TestAcquireSkipWhileQueued(t *testing.T) {
	t.Parallel()
	p := mustPool(t, PoolOptions{Backends: specs(1, 1), MaxConnsPerBackend: 1, QueueMax: 10, QueueTimeout: time.Hour})
	queued := queueSignal(p.State())
	a, b := p.Backends()[0], p.Backends()[1]
	held := fill(t, p, 2)
	results := make(chan result, 2)
	acquireAsync(p, a, 1, results) // a retry: anything but a
	<-queued
	acquireAsync(p, nil, 2, results)
	<-queued

	b.State.SetProbeUp(false)
	if _, err := p.Acquire(a); !errors.Is(err, ErrNoHealthyBackend) {
		t.Fatalf("Acquire(skip a) with b down = %v, want ErrNoHealthyBackend", err)
	}
	r := receive(t, results) // the kick from b going down fails waiter 1 fast
	if r.id != 1 || !errors.Is(r.err, ErrNoHealthyBackend) {
		t.Fatalf("got waiter %d (%v), want waiter 1 with ErrNoHealthyBackend", r.id, r.err)
	}
	b.State.SetProbeUp(true)

	// Now queue a retry again ahead of a plain waiter, and free a's slot.
	acquireAsync(p, a, 3, results)
	<-queued
	for _, h := range held {
		if h.State == a.State {
			h.Release()
		}
	}
	r = receive(t, results)
	if r.id != 2 || r.err != nil || r.b.State != a.State {
		t.Fatalf("got waiter %d (%v), want waiter 2 with a", r.id, r.err)
	}
	r.b.Release() // hands a to... nobody: waiter 3 skips a
	for _, h := range held {
		if h.State == b.State {
			h.Release()
		}
	}
	r = receive(t, results)
	if r.id != 3 || r.err != nil || r.b.State != b.State {
		t.Fatalf("got waiter %d (%v), want waiter 3 with b", r.id, r.err)
	}
	r.b.Release()
	if a.State.Inflight() != 0 || b.State.Inflight() != 0 {
		t.Fatalf("inflight a=%d b=%d, want 0", a.State.Inflight(), b.State.Inflight())
	}
}

// TestReleaseAcrossGenerations: a slot taken from gen1 and released after gen2
// replaced it serves a request queued on gen2, which gets gen2's Backend.
func TestReleaseAcrossGenerations(t *testing.T) {
	t.Parallel()
	ps := NewPoolState("shop")
	queued := queueSignal(ps)
	sp := specs(1, 1)
	opts := PoolOptions{Name: "shop", State: ps, Backends: sp, MaxConnsPerBackend: 1, QueueMax: 10, QueueTimeout: time.Hour}
	gen1 := mustPool(t, opts)
	held := fill(t, gen1, 2)

	opts.Backends = respec(sp, 2, 1)
	gen2 := mustPool(t, opts)
	results := make(chan result, 1)
	acquireAsync(gen2, nil, 1, results)
	<-queued

	held[1].Release()
	r := receive(t, results)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if want := gen2.Backends()[held[1].Index]; r.b != want {
		t.Fatalf("waiter got %+v, want gen2's %+v", r.b, want)
	}
	r.b.Release()
	held[0].Release()
	for _, b := range gen2.Backends() {
		if got := b.State.Inflight(); got != 0 {
			t.Fatalf("%s inflight = %d, want 0", b.Address, got)
		}
	}
}

// TestKickProbeUp: a backend coming up serves queued requests at once, and the
// last one going down fails them fast.
func TestKickProbeUp(t *testing.T) {
	t.Parallel()
	sp := specs(1, 1)
	sp[1].State = NewBackendStateDown("b")
	p := mustPool(t, PoolOptions{Backends: sp, MaxConnsPerBackend: 1, QueueMax: 10, QueueTimeout: time.Hour})
	queued := queueSignal(p.State())
	held := mustAcquire(t, p, nil)
	results := make(chan result, 2)
	acquireAsync(p, nil, 1, results)
	<-queued
	acquireAsync(p, nil, 2, results)
	<-queued

	sp[1].State.SetProbeUp(true)
	r := receive(t, results)
	if r.id != 1 || r.err != nil || r.b.Address != "b" {
		t.Fatalf("after b came up: waiter %d got %+v (%v), want waiter 1 with b", r.id, r.b, r.err)
	}
	sp[0].State.SetProbeUp(false) // b is full, a is down: nothing for waiter 2
	sp[1].State.SetProbeUp(false) // and now nothing is up
	r = receive(t, results)
	if r.id != 2 || !errors.Is(r.err, ErrNoHealthyBackend) {
		t.Fatalf("after all went down: waiter %d got %v, want ErrNoHealthyBackend", r.id, r.err)
	}
	held.Release()
	if st := p.State().QueueStats(); st.Depth != 0 || st.Served != 1 || st.Waits != 2 {
		t.Fatalf("QueueStats = %+v", st)
	}
}

// TestKickNewGeneration: a generation that adds a backend serves its own
// requests at once even while requests of the old generation wait; those get a
// backend of their own generation when one frees up.
func TestKickNewGeneration(t *testing.T) {
	t.Parallel()
	ps := NewPoolState("shop")
	queued := queueSignal(ps)
	sp := specs(1, 1)
	opts := PoolOptions{State: ps, Backends: sp[:1], MaxConnsPerBackend: 1, QueueMax: 10, QueueTimeout: time.Hour}
	gen1 := mustPool(t, opts)
	held := mustAcquire(t, gen1, nil)
	results := make(chan result, 1)
	acquireAsync(gen1, nil, 1, results)
	<-queued

	opts.Backends = sp
	gen2 := mustPool(t, opts)
	ps.Kick()
	b := mustAcquire(t, gen2, nil)
	if b.Address != "b" || b != gen2.Backends()[1] {
		t.Fatalf("gen2.Acquire = %+v, want gen2's b", b)
	}
	if d := ps.QueueDepth(); d != 1 {
		t.Fatalf("QueueDepth = %d, want gen1's waiter still queued", d)
	}
	held.Release()
	r := receive(t, results)
	if r.err != nil || r.b != gen1.Backends()[0] {
		t.Fatalf("gen1 waiter got %+v (%v), want gen1's a", r.b, r.err)
	}
	r.b.Release()
	b.Release()
}

func TestReleaseWithoutAcquirePanics(t *testing.T) {
	t.Parallel()
	p := weighted(t, 1)
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "Release") {
			t.Fatalf("recover() = %v, want a Release panic", r)
		}
	}()
	p.Backends()[0].Release()
}
