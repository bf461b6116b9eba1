package balancer

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// PoolState is the part of a pool that outlives its generations: the FIFO queue
// of Acquire calls waiting for a connection slot, and the queue's statistics.
// Requests queued on one generation are served by slots released through any
// other that shares the PoolState.
//
// All methods are safe for concurrent use. A PoolState must not be copied. The
// zero value is not usable; build one with NewPoolState.
type PoolState struct {
	name string

	// waiting counts Acquire calls inside wait (about to queue, or queued). It is
	// raised before their last attempt at a slot, so Release, which lowers
	// inflight before reading waiting, cannot miss one; and Acquire's fast path
	// reads it to queue behind existing waiters rather than overtake them.
	waiting atomic.Int64
	depth   atomic.Int64 // queued only, for QueueDepth

	enqueued  atomic.Uint64
	served    atomic.Uint64
	timeouts  atomic.Uint64
	rejected  atomic.Uint64
	waits     atomic.Uint64
	waitNanos atomic.Uint64

	ejectMu sync.Mutex // serialises passive-health ejections, see statePolicy.admitEjection

	mu         sync.Mutex // guards the list and every waiter's result fields
	head, tail *waiter
	free       sync.Pool // *waiter, with its channel and timer, for reuse

	// onQueue, if set, runs under mu each time a request starts waiting. Tests
	// use it to know a goroutine is queued without sleeping; nil otherwise.
	onQueue func()
}

// waiter is one queued Acquire.
type waiter struct {
	prev, next *waiter
	pool       *Pool // the generation it queued on: slots are taken in its ring
	skip       *BackendState
	critical   bool
	start      time.Time

	// Set under PoolState.mu when the waiter leaves the queue.
	done bool
	b    *Backend
	err  error

	ready chan struct{} // receives once when another goroutine sets done
	timer *time.Timer
}

// NewPoolState returns the state for a pool named name, with an empty queue.
func NewPoolState(name string) *PoolState {
	return &PoolState{name: name}
}

// Name returns the name the state was created with.
func (s *PoolState) Name() string { return s.name }

// QueueDepth returns the number of Acquire calls waiting now.
func (s *PoolState) QueueDepth() int { return int(s.depth.Load()) }

// QueueStats is a snapshot of a pool's queue for the degraded-mode monitor and
// metrics. The counters only grow (wrapping at 2^64), so a monitor computes rates
// and the mean wait over a window by differencing two snapshots with unsigned
// arithmetic: (b.WaitNanos-a.WaitNanos)/(b.Waits-a.Waits). Waits are measured
// with the real monotonic clock, like QueueTimeout, not PoolOptions.Now.
type QueueStats struct {
	// Depth is the number of Acquire calls waiting now.
	Depth int
	// Enqueued counts calls that had to wait.
	Enqueued uint64
	// Served counts waits that ended with a slot.
	Served uint64
	// Timeouts counts waits that ended with ErrQueueTimeout.
	Timeouts uint64
	// Rejected counts calls refused with ErrQueueFull without waiting.
	Rejected uint64
	// Waits counts completed waits, however they ended (served, timed out, or
	// failed because every backend went down), and WaitNanos is their total
	// duration in nanoseconds.
	Waits     uint64
	WaitNanos uint64
}

// QueueStats returns the queue's statistics. Lock-free; the fields are read one
// by one and may be off by a request or two relative to each other.
func (s *PoolState) QueueStats() QueueStats {
	return QueueStats{
		Depth:     int(s.depth.Load()),
		Enqueued:  s.enqueued.Load(),
		Served:    s.served.Load(),
		Timeouts:  s.timeouts.Load(),
		Rejected:  s.rejected.Load(),
		Waits:     s.waits.Load(),
		WaitNanos: s.waitNanos.Load(),
	}
}

// Kick hands every free slot to queued requests, oldest first, and fails those
// whose pool generation has no healthy backend left with ErrNoHealthyBackend.
// Releases already do this one slot at a time; Kick is for slots that appear
// another way. BackendState.SetProbeUp calls it on every transition; the control
// plane should call it after swapping in a generation. It costs one atomic load
// when nothing is queued.
//
// A queued request only ever receives a Backend of the Pool it called Acquire
// on, so that Backend.Index matches the generation the caller is serving with.
// Requests queued on an old generation are therefore served by its backends
// (whichever generation releases them), not by backends only a newer generation
// has; requests made on the newer generation take those at once, without
// queueing behind the old ones.
func (s *PoolState) Kick() {
	if s.waiting.Load() == 0 {
		return
	}
	s.mu.Lock()
	s.serveLocked(nil, -1)
	s.mu.Unlock()
}

// handoff serves one queued request with the slot just released on b.
func (s *PoolState) handoff(b *Backend) {
	s.mu.Lock()
	s.serveLocked(b, 1)
	s.mu.Unlock()
}

// serveLocked gives up to max slots (-1: no limit) to queued requests in FIFO
// order, offering hint first to each. Once a generation has no free slot for a
// request, the rest of its requests are passed over without scanning its ring
// again, while requests of other generations (which may have other backends or
// limits) still get their turn. s.mu must be held.
func (s *PoolState) serveLocked(hint *Backend, max int) {
	// Generations that had nothing free. Almost always one or two are queued at
	// once; past four, stop rather than scan more rings.
	type gen struct {
		p        *Pool
		critical bool
	}
	var exhausted [4]gen
	full := 0
	var next *waiter
	for w := s.head; w != nil && max != 0; w = next {
		next = w.next
		if slices.Contains(exhausted[:full], gen{w.pool, w.critical}) {
			continue
		}
		switch b, v := w.pool.takeFor(w.skip, hint, w.critical); v {
		case found:
			s.served.Add(1)
			s.complete(w, b, nil)
			hint = nil
			max--
		case noneUp:
			s.complete(w, nil, w.pool.errNoHealthy)
		default:
			// A request with a skip may fail where one without would not, so
			// only a plain request proves the generation full.
			if w.skip == nil {
				if full == len(exhausted) {
					return
				}
				exhausted[full] = gen{w.pool, w.critical}
				full++
			}
		}
	}
}

// complete takes w off the queue with its result and wakes it. s.mu must be held.
func (s *PoolState) complete(w *waiter, b *Backend, err error) {
	s.unlink(w)
	w.done, w.b, w.err = true, b, err
	s.recordWait(w)
	w.ready <- struct{}{} // buffered, sent once per wait: never blocks
}

// wait is Acquire's slow path: queue behind earlier waiters, or fail.
func (s *PoolState) wait(p *Pool, skip *BackendState, critical bool) (*Backend, error) {
	s.mu.Lock()
	s.waiting.Add(1) // before the attempt below; see the field's comment
	if s.head == nil {
		// Nobody to be fair to: a slot may have freed since the lock-free try.
		switch b, v := p.scan(skip, true, critical); v {
		case found:
			s.leaveLocked()
			return b, nil
		case noneUp:
			s.leaveLocked()
			return nil, p.errNoHealthy
		}
	} else if skip != nil && !p.eligible(skip) {
		// A retry with nowhere else to go should not wait for the queue to
		// reach it just to learn that.
		s.leaveLocked()
		return nil, p.errNoHealthy
	}
	if int(s.depth.Load()) >= p.queueMax {
		s.rejected.Add(1)
		s.leaveLocked()
		return nil, p.errQueueFull
	}

	w, _ := s.free.Get().(*waiter)
	if w == nil {
		w = &waiter{ready: make(chan struct{}, 1)}
	}
	w.pool, w.skip, w.critical, w.start = p, skip, critical, time.Now()
	s.push(w)
	s.enqueued.Add(1)
	if w != s.head {
		// Slots that the waiters ahead could not use (they skip that backend)
		// may be free; this also serves us if our turn comes.
		s.serveLocked(nil, -1)
	}
	done := w.done
	if !done && s.onQueue != nil {
		s.onQueue()
	}
	s.mu.Unlock()

	if !done {
		if w.timer == nil {
			w.timer = time.NewTimer(p.queueTimeout)
		} else {
			w.timer.Reset(p.queueTimeout)
		}
		select {
		case <-w.ready:
		case <-w.timer.C:
			s.mu.Lock()
			if !w.done {
				s.unlink(w)
				w.done, w.err = true, p.errQueueTimeout
				s.timeouts.Add(1)
				s.recordWait(w)
				s.mu.Unlock()
				break
			}
			s.mu.Unlock()
			<-w.ready // served while the timer fired: take the slot
		}
		// Since Go 1.23, Stop guarantees no stale tick survives for the next Reset.
		w.timer.Stop()
	} else {
		<-w.ready
	}
	b, err := w.b, w.err
	*w = waiter{ready: w.ready, timer: w.timer}
	s.free.Put(w)
	return b, err
}

// leaveLocked undoes wait's announcement and unlocks.
func (s *PoolState) leaveLocked() {
	s.waiting.Add(-1)
	s.mu.Unlock()
}

func (s *PoolState) push(w *waiter) {
	w.prev = s.tail
	if s.tail != nil {
		s.tail.next = w
	} else {
		s.head = w
	}
	s.tail = w
	s.depth.Add(1)
}

// unlink removes w from the queue and ends its announcement. s.mu must be held.
func (s *PoolState) unlink(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		s.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		s.tail = w.prev
	}
	w.prev, w.next = nil, nil
	s.depth.Add(-1)
	s.waiting.Add(-1)
}

func (s *PoolState) recordWait(w *waiter) {
	s.waits.Add(1)
	s.waitNanos.Add(uint64(time.Since(w.start)))
}
