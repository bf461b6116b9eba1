package balancer

import (
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// PoolState is the part of a pool that outlives its generations: the queue of
// Acquire calls waiting for a connection slot, and the queue's statistics.
// Requests queued on one generation are served by slots released through any
// other that shares the PoolState.
//
// The queue is ordered by class (critical, high, normal, low), then, within a
// class, by expected service time (shortest expected job first, in buckets of
// a factor of two), then by arrival. It is one linked list kept in that order
// by inserting each waiter after the last one of its bucket, found in O(1)
// through a bitmask of the non-empty buckets: handing slots out walks the list
// from the head as before, and a push or an unlink stays a few pointer writes
// under the lock.
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
	predicted atomic.Uint64
	waits     atomic.Uint64
	waitNanos atomic.Uint64

	ejectMu sync.Mutex // serialises passive-health ejections, see statePolicy.admitEjection

	mu         sync.Mutex // guards the list, the buckets and every waiter's result fields
	head, tail *waiter
	// last[i] is the last waiter of bucket i (see bucketOf) while nonEmpty has
	// bit i set, and work[i] the sum of its waiters' expected service times:
	// the queue ahead of an arriving request, to predict its wait.
	nonEmpty uint64
	last     [numBuckets]*waiter
	work     [numBuckets]int64
	free     sync.Pool // *waiter, with its channel and timer, for reuse

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
	bucket     uint8 // bucketOf(class, cost)
	cost       int64 // expected service time, nanoseconds
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
	// Rejected counts calls refused with ErrQueueFull: without waiting, or
	// pushed out of a full queue by a request of a higher class (or of the same
	// class and a shorter expected service time).
	Rejected uint64
	// Predicted counts calls refused with ErrWouldWait at arrival because the
	// wait predicted from the queue ahead exceeded their deadline. Calls that
	// may not wait at all (Ticket.MaxWait < 0) are not counted.
	Predicted uint64
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
		Predicted: s.predicted.Load(),
		Waits:     s.waits.Load(),
		WaitNanos: s.waitNanos.Load(),
	}
}

// Kick hands every free slot to queued requests, in queue order, and fails those
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

// serveLocked gives up to max slots (-1: no limit) to queued requests in queue
// order (class, expected service, arrival), offering hint first to each. Once a generation has no free slot for a
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

// wait is Acquire's slow path: queue in order, or fail.
func (s *PoolState) wait(p *Pool, skip *BackendState, t Ticket) (*Backend, error) {
	critical := t.Class == ClassCritical
	bucket := bucketOf(t.Class, t.Cost)
	budget := p.queueTimeout
	if t.MaxWait > 0 && t.MaxWait < budget {
		budget = t.MaxWait
	}
	// The slots the queue drains through, counted before taking the lock (and
	// only when there is a queue to predict from): the prediction below
	// divides the work ahead by them.
	var slots int64
	if s.depth.Load() != 0 {
		slots = p.slots(critical)
	}
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
	if t.MaxWait < 0 {
		// May not wait: a free slot now or nothing (the fast path found none).
		s.leaveLocked()
		return nil, p.errNoWait
	}
	if int(s.depth.Load()) >= p.queueMax {
		// Full: a request that ranks before the last waiter takes its place,
		// so that a flood of low never keeps high out of the queue.
		last := s.tail
		s.rejected.Add(1)
		if p.queueMax == 0 || last == nil || last.bucket <= bucket {
			s.leaveLocked()
			return nil, p.errQueueFull
		}
		s.complete(last, nil, last.pool.errQueueFull)
	}
	if ahead := s.workAhead(bucket); ahead > 0 && slots > 0 && time.Duration(ahead/slots) > budget {
		// The requests ahead of this one will hold the slots for longer than
		// it may wait: say so now rather than after the wait.
		s.predicted.Add(1)
		s.leaveLocked()
		return nil, p.errWouldWait
	}

	w, _ := s.free.Get().(*waiter)
	if w == nil {
		w = &waiter{ready: make(chan struct{}, 1)}
	}
	w.pool, w.skip, w.critical, w.start = p, skip, critical, time.Now()
	w.bucket, w.cost = bucket, max(0, int64(t.Cost))
	s.push(w)
	s.enqueued.Add(1)
	if w != s.head || w.next != nil {
		// Slots that the waiters ahead could not use (they skip that backend)
		// may be free; this also serves us if our turn comes, and, when we
		// went ahead of waiters of a lower rank, any slot they could not use.
		s.serveLocked(nil, -1)
	}
	done := w.done
	if !done && s.onQueue != nil {
		s.onQueue()
	}
	s.mu.Unlock()

	if !done {
		if w.timer == nil {
			w.timer = time.NewTimer(budget)
		} else {
			w.timer.Reset(budget)
		}
		select {
		case <-w.ready:
		case <-w.timer.C:
			s.mu.Lock()
			if !w.done {
				s.unlink(w)
				w.done, w.err = true, p.errQueueTimeout
				if budget < p.queueTimeout {
					w.err = p.errMaxWait
				}
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

// push inserts w after the last waiter of the last non-empty bucket at or
// before its own (its bucket's tail, or the one it follows), keeping the list
// in queue order. s.mu must be held.
func (s *PoolState) push(w *waiter) {
	var prev *waiter
	if m := s.nonEmpty & (2<<w.bucket - 1); m != 0 {
		prev = s.last[bits.Len64(m)-1]
	}
	w.prev = prev
	if prev != nil {
		w.next = prev.next
		prev.next = w
	} else {
		w.next = s.head
		s.head = w
	}
	if w.next != nil {
		w.next.prev = w
	} else {
		s.tail = w
	}
	s.last[w.bucket] = w
	s.nonEmpty |= 1 << w.bucket
	s.work[w.bucket] += w.cost
	s.depth.Add(1)
}

// workAhead is the expected service time of the waiters a request of bucket b
// would queue behind, in nanoseconds. s.mu must be held.
func (s *PoolState) workAhead(b uint8) int64 {
	var sum int64
	for m := s.nonEmpty & (2<<b - 1); m != 0; m &= m - 1 {
		sum += s.work[bits.TrailingZeros64(m)]
	}
	return sum
}

// unlink removes w from the queue and ends its announcement. s.mu must be held.
func (s *PoolState) unlink(w *waiter) {
	if s.last[w.bucket] == w {
		if w.prev != nil && w.prev.bucket == w.bucket {
			s.last[w.bucket] = w.prev
		} else {
			s.last[w.bucket] = nil
			s.nonEmpty &^= 1 << w.bucket
		}
	}
	if s.work[w.bucket] -= w.cost; s.nonEmpty&(1<<w.bucket) == 0 {
		s.work[w.bucket] = 0
	}
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

// Class is a request's rank in the wait queue. The zero value is ClassNormal,
// so that a Ticket left empty queues like a plain Acquire.
type Class uint8

// Classes. A queued request of a higher class is served before any of a lower
// one, whatever their arrival; ClassCritical may also take the slots reserved
// by PoolOptions.Reserved.
const (
	ClassNormal Class = iota
	ClassLow
	ClassHigh
	ClassCritical
)

// Ticket is what the queue needs to know about a request to order it and to
// predict its wait. The zero Ticket is a normal request of unknown cost that
// may wait the queue timeout.
type Ticket struct {
	// Class orders the queue: critical, high, normal, low.
	Class Class
	// Cost is the request's expected service time: how long it will hold its
	// slot, as measured for its route. Within a class the queue serves the
	// shortest expected job first (in buckets of a factor of two), which
	// answers the most requests within their deadline; and an arriving
	// request's wait is predicted as the cost of the waiters ahead of it over
	// the slots they drain through. 0 = unknown: first in its class, and adds
	// nothing to the wait of the others.
	Cost time.Duration
	// MaxWait is how long the request may wait for a slot: 0 means the
	// pool's queue timeout, a shorter positive value replaces it, and a
	// negative one means not at all (a free slot now, or ErrWouldWait).
	MaxWait time.Duration
}

const (
	costBuckets = 16 // per class: < 2^costShift ns, then one per factor of two
	costShift   = 18 // 262 µs
	numBuckets  = 4 * costBuckets
)

// bucketOf places a request in the queue: classes in the order critical,
// high, normal, low, each divided by expected service time.
func bucketOf(c Class, cost time.Duration) uint8 {
	var order uint8
	switch c {
	case ClassCritical:
		order = 0
	case ClassHigh:
		order = 1
	case ClassLow:
		order = 3
	default:
		order = 2
	}
	var b int
	if cost > 0 {
		b = min(bits.Len64(uint64(cost)>>costShift), costBuckets-1)
	}
	return order*costBuckets + uint8(b)
}
