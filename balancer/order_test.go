package balancer

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// ticketAsync runs p.AcquireTicket in a goroutine and delivers the result.
func ticketAsync(p *Pool, t Ticket, id int, out chan<- result) {
	go func() {
		b, err := p.AcquireTicket(nil, t)
		out <- result{id, b, err}
	}()
}

// TestQueueOrder: slots go to queued requests by class (critical, high,
// normal, low), then shortest expected service first, then arrival, whatever
// order they queued in.
func TestQueueOrder(t *testing.T) {
	p := mustPool(t, PoolOptions{Backends: specs(1), MaxConnsPerBackend: 1, QueueMax: 20, QueueTimeout: time.Minute})
	queued := queueSignal(p.State())
	held := mustAcquire(t, p, nil)
	ms := time.Millisecond
	arrivals := []Ticket{ // in arrival order
		{Class: ClassLow, Cost: ms},
		{Class: ClassNormal, Cost: 40 * ms},
		{Class: ClassNormal, Cost: 40 * ms},
		{Class: ClassNormal, Cost: 2 * ms},
		{Class: ClassHigh, Cost: 40 * ms},
		{Class: ClassNormal},
		{Class: ClassHigh, Cost: ms},
		{Class: ClassCritical, Cost: time.Hour},
	}
	out := make(chan result, len(arrivals))
	for i, tk := range arrivals {
		ticketAsync(p, tk, i, out)
		<-queued
	}
	// critical, high cheap, high dear, normal unknown, normal cheap, normal
	// dear (two, in arrival order), low.
	want := []int{7, 6, 4, 5, 3, 1, 2, 0}
	var got []int
	for range arrivals {
		held.Release()
		r := receive(t, out)
		if r.err != nil {
			t.Fatalf("request %d: %v", r.id, r.err)
		}
		got = append(got, r.id)
		held = r.b
	}
	held.Release()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("served %v, want %v", got, want)
	}
	if d := p.State().QueueDepth(); d != 0 {
		t.Fatalf("depth %d after the queue drained", d)
	}
}

// TestPredictedWait: a request whose predicted wait (the expected service of
// the waiters ahead of it over the pool's slots) exceeds its deadline is
// refused at once with ErrWouldWait; one that would queue behind less work,
// or ahead of the work (a higher class), queues.
func TestPredictedWait(t *testing.T) {
	p := mustPool(t, PoolOptions{Backends: specs(1, 1), MaxConnsPerBackend: 1, QueueMax: 20, QueueTimeout: time.Minute})
	queued := queueSignal(p.State())
	a, b := mustAcquire(t, p, nil), mustAcquire(t, p, nil)
	out := make(chan result, 8)
	// 3 dear normal requests of 30s each queue: 90s of work over 2 slots.
	for i := range 3 {
		ticketAsync(p, Ticket{Cost: 30 * time.Second}, i, out)
		<-queued
	}
	// A normal request behind them would wait about 45s: under the minute.
	ticketAsync(p, Ticket{Cost: 40 * time.Second}, 3, out)
	<-queued
	// Now 130s ahead over 2 slots, 65s: over the queue timeout.
	start := time.Now()
	if _, err := p.AcquireTicket(nil, Ticket{Cost: 50 * time.Second}); !errors.Is(err, ErrWouldWait) || !errors.Is(err, ErrSaturated) {
		t.Fatalf("over the timeout: %v, want ErrWouldWait", err)
	}
	// Its own deadline counts too: 100ms is less than 65s.
	if _, err := p.AcquireTicket(nil, Ticket{Cost: 50 * time.Second, MaxWait: 100 * time.Millisecond}); !errors.Is(err, ErrWouldWait) {
		t.Fatalf("over its max wait: %v, want ErrWouldWait", err)
	}
	if waited := time.Since(start); waited > 30*time.Second {
		t.Fatalf("refusals took %v", waited)
	}
	// A cheap request of the same class goes ahead of the dear ones: nothing
	// ahead, it queues.
	ticketAsync(p, Ticket{Cost: time.Millisecond, MaxWait: 100 * time.Millisecond}, 4, out)
	<-queued
	// So does a high one, whatever its cost.
	ticketAsync(p, Ticket{Class: ClassHigh, Cost: time.Hour}, 5, out)
	<-queued
	st := p.State().QueueStats()
	if st.Predicted != 2 || st.Depth != 6 {
		t.Fatalf("stats %+v, want 2 predicted refusals and 6 queued", st)
	}
	for _, want := range []int{5, 4, 0, 1, 2, 3} {
		a.Release()
		r := receive(t, out)
		if r.err != nil || r.id != want {
			t.Fatalf("served %d (%v), want %d", r.id, r.err, want)
		}
		a = r.b
	}
	a.Release()
	b.Release()
}

// TestNoWait: a request that may not wait takes a free slot, or fails at once
// with ErrWouldWait without queueing, lock-free when others already wait.
func TestNoWait(t *testing.T) {
	p := mustPool(t, PoolOptions{Backends: specs(1), MaxConnsPerBackend: 1, QueueMax: 5, QueueTimeout: time.Minute})
	b, err := p.AcquireTicket(nil, Ticket{Class: ClassLow, MaxWait: -1})
	if err != nil {
		t.Fatalf("free slot: %v", err)
	}
	if _, err := p.AcquireTicket(nil, Ticket{Class: ClassLow, MaxWait: -1}); !errors.Is(err, ErrWouldWait) {
		t.Fatalf("full, nobody waiting: %v, want ErrWouldWait", err)
	}
	queued := queueSignal(p.State())
	out := make(chan result, 1)
	ticketAsync(p, Ticket{}, 0, out)
	<-queued
	if _, err := p.AcquireTicket(nil, Ticket{Class: ClassCritical, MaxWait: -1}); !errors.Is(err, ErrWouldWait) {
		t.Fatalf("full, one waiting: %v, want ErrWouldWait", err)
	}
	if st := p.State().QueueStats(); st.Enqueued != 1 || st.Predicted != 0 || st.Rejected != 0 {
		t.Fatalf("stats %+v: requests that may not wait are neither queued nor counted", st)
	}
	b.Release()
	r := receive(t, out)
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.b.Release()
}

// TestQueueFullPushesOutLowest: in a full queue, a request that ranks before
// the last waiter takes its place, which fails with ErrQueueFull; one that
// does not is refused as before.
func TestQueueFullPushesOutLowest(t *testing.T) {
	p := mustPool(t, PoolOptions{Backends: specs(1), MaxConnsPerBackend: 1, QueueMax: 2, QueueTimeout: time.Minute})
	queued := queueSignal(p.State())
	held := mustAcquire(t, p, nil)
	out := make(chan result, 4)
	ticketAsync(p, Ticket{Class: ClassLow}, 0, out)
	<-queued
	ticketAsync(p, Ticket{Class: ClassLow}, 1, out)
	<-queued
	if _, err := p.AcquireTicket(nil, Ticket{Class: ClassLow}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("low into a queue full of low: %v, want ErrQueueFull", err)
	}
	ticketAsync(p, Ticket{Class: ClassHigh}, 2, out)
	<-queued
	if r := receive(t, out); r.id != 1 || !errors.Is(r.err, ErrQueueFull) {
		t.Fatalf("pushed out: %d %v, want the last low with ErrQueueFull", r.id, r.err)
	}
	for _, want := range []int{2, 0} {
		held.Release()
		r := receive(t, out)
		if r.err != nil || r.id != want {
			t.Fatalf("served %d (%v), want %d", r.id, r.err, want)
		}
		held = r.b
	}
	held.Release()
	if st := p.State().QueueStats(); st.Rejected != 2 || st.Depth != 0 {
		t.Fatalf("stats %+v, want 2 rejected and an empty queue", st)
	}
}

// TestMaxWaitTimesOut: a queued request gives up at its own max wait when it
// is shorter than the queue timeout, with ErrQueueTimeout.
func TestMaxWaitTimesOut(t *testing.T) {
	p := mustPool(t, PoolOptions{Backends: specs(1), MaxConnsPerBackend: 1, QueueMax: 2, QueueTimeout: time.Hour})
	held := mustAcquire(t, p, nil)
	defer held.Release()
	_, err := p.AcquireTicket(nil, Ticket{MaxWait: 20 * time.Millisecond})
	if !errors.Is(err, ErrQueueTimeout) {
		t.Fatalf("%v, want ErrQueueTimeout", err)
	}
}
