package health

import (
	"log/slog"
	"sync"

	"github.com/floodgate/floodgate/internal/panics"
)

// notifier delivers transitions to Options.OnTransition from a goroutine of
// its own, in order, through an unbounded queue.
//
// Why not call OnTransition where the transition happens: the prober or Sync
// would then run user code, and Sync waits for probers. A caller that holds a
// lock while calling Sync (a reload serialized by a mutex) and takes the same
// lock in OnTransition would deadlock, either at once (Sync reporting a new
// prober's initial state) or when a prober it waits for is blocked in the
// callback. With the queue, probers and Sync only touch the Target (atomic,
// non-blocking) and the logger. The queue is unbounded because it is bounded
// in practice by the number of flips, which Rise/Fall keep rare, and because
// dropping a transition would leave the consumer with a wrong final state.
type notifier struct {
	log *slog.Logger
	fn  func(Transition) // nil: queue drops everything, no goroutine

	mu      sync.Mutex
	pending []Transition // guarded by mu

	wake chan struct{} // capacity 1: "pending may be non-empty"
	quit chan struct{} // closed by stop
	done chan struct{} // closed when the goroutine has exited
}

// start launches the delivery goroutine if fn is non-nil.
func (n *notifier) start(log *slog.Logger, fn func(Transition)) {
	n.log, n.fn = log, fn
	n.wake = make(chan struct{}, 1)
	n.quit = make(chan struct{})
	n.done = make(chan struct{})
	if fn == nil {
		close(n.done)
		return
	}
	go n.run()
}

// queue appends tr for delivery. It never blocks on the callback.
func (n *notifier) queue(tr Transition) {
	if n.fn == nil {
		return
	}
	n.mu.Lock()
	n.pending = append(n.pending, tr)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default: // a wake-up is already pending; it will see tr
	}
}

// stop delivers what is queued and waits for the goroutine to exit. The caller
// guarantees nothing is queued concurrently. stop is called once.
func (n *notifier) stop() {
	close(n.quit)
	<-n.done
}

func (n *notifier) run() {
	defer close(n.done)
	for {
		n.deliverPending()
		select {
		case <-n.wake:
		case <-n.quit:
			n.deliverPending()
			return
		}
	}
}

// deliverPending calls fn for every queued transition, oldest first.
func (n *notifier) deliverPending() {
	for {
		n.mu.Lock()
		batch := n.pending
		n.pending = nil
		n.mu.Unlock()
		if len(batch) == 0 {
			return
		}
		for _, tr := range batch {
			n.call(tr)
		}
	}
}

// call runs fn, logging a panic instead of letting it kill the process.
func (n *notifier) call(tr Transition) {
	defer func() {
		if r := recover(); r != nil {
			panics.Contain(n.log.With("pool", tr.Pool, "backend", tr.Address), "health: OnTransition", r)
		}
	}()
	n.fn(tr)
}
