package balancer

import (
	"errors"
	"testing"
	"time"
)

// TestReservedSlotsForCritical: with 4 slots and 1 reserved, public requests get 3
// and then queue or fail, while a critical request still gets the fourth; a
// critical request queued behind public ones is served first by a slot that the
// public ones cannot use.
func TestReservedSlotsForCritical(t *testing.T) {
	p, err := NewPool(PoolOptions{Name: "p", MaxConnsPerBackend: 4, Reserved: 1,
		Backends: []BackendSpec{{Address: "a:1", Weight: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	var held []*Backend
	for i := 0; i < 3; i++ {
		b, err := p.Acquire(nil)
		if err != nil {
			t.Fatalf("public %d: %v", i, err)
		}
		held = append(held, b)
	}
	if _, err := p.Acquire(nil); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("fourth public request: %v, want ErrQueueFull (the last slot is reserved)", err)
	}
	crit, err := p.AcquireCritical(nil)
	if err != nil {
		t.Fatalf("critical request with the reserve free: %v", err)
	}
	if _, err := p.AcquireCritical(nil); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("critical beyond the whole limit: %v", err)
	}
	crit.Release()
	for _, b := range held {
		b.Release()
	}
	if _, err := NewPool(PoolOptions{Name: "p", MaxConnsPerBackend: 2, Reserved: 2, Backends: []BackendSpec{{Address: "a:1", Weight: 1}}}); err == nil {
		t.Fatal("reserving every slot was accepted")
	}
}

func TestCriticalNotHeldBehindPublicQueue(t *testing.T) {
	p, err := NewPool(PoolOptions{Name: "p", MaxConnsPerBackend: 2, Reserved: 1, QueueMax: 10, QueueTimeout: 5 * time.Second,
		Backends: []BackendSpec{{Address: "a:1", Weight: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := p.Acquire(nil)
	queued := make(chan error, 1)
	go func() {
		b, err := p.Acquire(nil)
		if err == nil {
			b.Release()
		}
		queued <- err
	}()
	for p.State().QueueDepth() != 1 {
		time.Sleep(time.Millisecond) // waiting for the goroutine to queue; no channel to wait on
	}
	crit, err := p.AcquireCritical(nil)
	if err != nil {
		t.Fatalf("critical request behind a public queue: %v", err)
	}
	crit.Release()
	pub.Release()
	if err := <-queued; err != nil {
		t.Fatalf("the queued public request: %v", err)
	}
}
