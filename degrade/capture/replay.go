package capture

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/floodgate/floodgate/internal/panics"
)

// Sender delivers r to a backend of r.Pool, with the client's Idempotency-Key
// (r.ID when it sent none) and "Floodgate-Capture-Id: r.ID", and returns the
// backend's status, or an error when no
// status was received (connection refused, timeout: the Sender applies the
// pool's response timeout). It must stop when ctx is done. It is called for
// up to ReplayOptions.Concurrency records of each pool at once, so it must be
// safe for concurrent use, within a pool and across pools. It must not retain
// r after returning.
type Sender func(ctx context.Context, r *Record) (status int, err error)

// ReplayOptions configures replay. Zero fields take the defaults written beside
// them.
type ReplayOptions struct {
	// Rate and Burst bound the records sent per second to each pool (from
	// capture.replay_rate); default 50/s, burst 1. rate.Inf removes the bound.
	Rate  rate.Limit
	Burst int
	// Concurrency is how many records of one pool may be in flight at once
	// (from capture.replay_concurrency); default 8. With a backend that takes
	// 30 ms per order, one at a time caps replay near 33 records/s whatever
	// Rate says. 1 is strict head-of-line order; see StartReplay for the
	// order kept with more.
	Concurrency int
	// Ready reports whether pool is back to normal (degraded mode off) with
	// spare capacity; replay sends nothing to a pool that is not ready, so
	// that it yields to live traffic. It is called before every send, from
	// the pool's dispatching goroutine, and must be cheap. nil means always
	// ready.
	Ready func(pool string) bool
	// MaxAttempts is how many times a record is sent before a 5xx, timeout or
	// other retryable failure dead-letters it; default 8.
	MaxAttempts int
	// BackoffBase and BackoffMax bound the delay before a retry: exponential
	// from BackoffBase, capped at BackoffMax, with equal jitter; defaults 1s
	// and 2m.
	BackoffBase, BackoffMax time.Duration
	// ReadyPoll is how often a pool that is not ready is asked again; default
	// 250ms.
	ReadyPoll time.Duration
}

func (o *ReplayOptions) normalize() {
	if o.Rate == 0 {
		o.Rate = 50
	}
	if o.Burst <= 0 {
		o.Burst = 1
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 8
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = time.Second
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 2 * time.Minute
	}
	if o.BackoffMax < o.BackoffBase {
		o.BackoffMax = o.BackoffBase
	}
	if o.ReadyPoll <= 0 {
		o.ReadyPoll = 250 * time.Millisecond
	}
}

// replayer is one StartReplay: a dispatching goroutine per pool and one
// goroutine per send in flight, all owned by wg.
type replayer struct {
	j      *Journal
	send   Sender
	o      ReplayOptions
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	// under Journal.mu
	stopped bool
	workers map[string]bool
}

// StartReplay starts delivering pending records with send: one dispatching
// goroutine per pool (started as pools appear) starts each send in a goroutine
// of its own, at most o.Concurrency of them per pool at once.
//
// Order: sends start in capture order. With Concurrency 1 that is strict
// head-of-line order, as "delivery follows capture order" requires: the head
// record blocks the ones behind it while it is retried. With more, up to
// Concurrency records are in flight together and may reach the backend (and
// complete) in any order among themselves. Once a record has failed, no record
// behind it is dispatched until it is resolved (delivered or dead-lettered):
// not while it waits for its retry, nor while the retry is in flight. So a
// failing order is overtaken only by the records already in flight when it
// failed, never by more. A record is never in flight twice at once.
//
// Per record: 2xx → MarkDelivered; 408, 409, 425, 429, 5xx, other statuses
// outside 2xx-4xx, and errors → sent again after a backoff, dead-lettered after
// MaxAttempts; any other 4xx (and 3xx) → dead-lettered at once (the backend
// refuses it, resending would not help). Records are sent only while the pool
// is ready and not paused, at most o.Rate per second per pool.
//
// Replay runs until ctx is done, stop is called or the journal is closed. stop
// waits for the goroutines to return, sends included; a send in progress is
// cancelled and its record stays pending (it is sent again later: delivery is
// at least once).
// Calling StartReplay again replaces the running replay (after a reload, say).
// Safe for concurrent use.
func (j *Journal) StartReplay(ctx context.Context, send Sender, o ReplayOptions) (stop func()) {
	o.normalize()
	j.mu.Lock()
	old := j.replay
	j.mu.Unlock()
	if old != nil {
		old.stop()
	}
	rctx, cancel := context.WithCancel(ctx)
	r := &replayer{j: j, send: send, o: o, ctx: rctx, cancel: cancel, workers: make(map[string]bool)}
	j.mu.Lock()
	if j.closing || j.replay != nil {
		// Closed meanwhile, or another StartReplay won the race.
		j.mu.Unlock()
		cancel()
		return func() {}
	}
	j.replay = r
	for _, p := range j.pools {
		r.spawnLocked(p)
	}
	j.mu.Unlock()
	return r.stop
}

func (r *replayer) spawnLocked(p *pool) {
	if r.stopped || r.workers[p.name] {
		return
	}
	r.workers[p.name] = true
	r.wg.Add(1)
	go r.run(p)
}

// stop cancels the replay and waits for its goroutines; concurrent and
// repeated calls all return once they are gone.
func (r *replayer) stop() {
	r.once.Do(func() {
		r.j.mu.Lock()
		r.stopped = true // no wg.Add after this point
		if r.j.replay == r {
			r.j.replay = nil
		}
		r.j.mu.Unlock()
		r.cancel()
		r.wg.Wait()
	})
}

// PauseReplay stops sending records of pool after the ones in flight, if any.
// Pausing is not persisted: a restart resumes replay. Safe for concurrent use.
func (j *Journal) PauseReplay(pool string) {
	j.mu.Lock()
	j.poolLocked(pool).paused = true
	j.mu.Unlock()
}

// ResumeReplay undoes PauseReplay. Safe for concurrent use.
func (j *Journal) ResumeReplay(pool string) {
	j.mu.Lock()
	p := j.poolLocked(pool)
	p.paused = false
	p.signal()
	j.mu.Unlock()
}

// ReplayPaused reports whether replay of pool is paused. Safe for concurrent
// use.
func (j *Journal) ReplayPaused(pool string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	p := j.pools[pool]
	return p != nil && p.paused
}

// run dispatches p's records: it takes a slot (at most o.Concurrency sends
// in flight), waits until a record may be sent, and starts its send.
func (r *replayer) run(p *pool) {
	defer r.wg.Done()
	lim := rate.NewLimiter(r.o.Rate, r.o.Burst)
	slots := make(chan struct{}, r.o.Concurrency)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	sleep := func(d time.Duration) bool {
		timer.Reset(d)
		select {
		case <-timer.C:
			return true
		case <-r.ctx.Done():
			return false
		}
	}
	for {
		select {
		case slots <- struct{}{}:
		case <-r.ctx.Done():
			return
		}
		if !r.dispatch(p, lim, slots, sleep) {
			return
		}
	}
}

// dispatch starts the send of p's next record, which owns the slot the caller
// took. It returns false, without a send, once replay stops.
func (r *replayer) dispatch(p *pool, lim *rate.Limiter, slots chan struct{}, sleep func(time.Duration) bool) bool {
	j := r.j
	for r.ctx.Err() == nil {
		j.mu.Lock()
		e, wait := p.nextLocked(time.Now().UnixNano())
		j.mu.Unlock()
		if e == nil {
			if wait > 0 { // a failed record's backoff
				if !sleep(wait) {
					return false
				}
				continue
			}
			// Paused, empty, or nothing but records in flight: a capture,
			// a resume or the end of a send signals.
			select {
			case <-p.notify:
			case <-r.ctx.Done():
				return false
			}
			continue
		}
		if r.o.Ready != nil && !r.o.Ready(p.name) {
			if !sleep(r.o.ReadyPoll) {
				return false
			}
			continue
		}
		if err := lim.Wait(r.ctx); err != nil {
			return false
		}
		j.mu.Lock()
		e, _ = p.nextLocked(time.Now().UnixNano())
		if e == nil {
			j.mu.Unlock()
			continue // changed while we waited; look again
		}
		e.inflight = true
		seg, off, size, sentOK := e.seg, e.off, e.size, e.sentOK
		if !sentOK {
			seg.refs++ // the segment is not deleted under the read
		}
		j.mu.Unlock()
		r.wg.Add(1) // stop has not returned: run holds wg
		go r.deliver(p, e, seg, off, size, sentOK, slots)
		return true
	}
	return false
}

// nextLocked returns the record of p to send now: the first in capture order
// that is not in flight, unless a failed record comes first. A failed record
// that is in flight (its retry) or waiting for its retry holds back every
// record behind it; in the second case wait is how long until its retry. It
// returns nil and 0 when p is paused or nothing is left to send.
func (p *pool) nextLocked(now int64) (e *entry, wait time.Duration) {
	if p.paused {
		return nil, 0
	}
	for e := p.head; e != nil; e = e.next {
		failed := e.attempts > 0 || e.retryAt != 0 || e.sentOK
		if e.inflight {
			if failed {
				return nil, 0
			}
			continue
		}
		if failed && e.retryAt > now {
			return nil, time.Duration(e.retryAt - now)
		}
		return e, 0
	}
	return nil, 0
}

// deliver sends e, read from seg at off, and records the outcome; with
// sentOK it only marks e delivered again. Then it frees e and its slot and
// wakes the dispatcher.
func (r *replayer) deliver(p *pool, e *entry, seg *segment, off int64, size int, sentOK bool, slots chan struct{}) {
	j := r.j
	defer func() {
		j.mu.Lock()
		e.inflight = false
		j.mu.Unlock()
		<-slots
		p.signal()
		r.wg.Done()
	}()
	if sentOK { // a backend took it, marking it failed: mark again
		r.delivered(e)
		return
	}
	rec, err := readRecord(seg, off, size)
	j.mu.Lock()
	seg.refs--
	j.mu.Unlock()
	if err != nil {
		r.deadLetter(e, "unreadable: "+err.Error())
		return
	}
	status, serr := r.sendContained(rec)
	if serr != nil && r.ctx.Err() != nil {
		return // stopping: the record stays pending and is sent again later
	}
	r.outcome(e, status, serr)
}

// sendContained is r.send with a panic in it (the proxy's exchange with a
// backend, fed by the backend's answer) counted, logged and turned into a
// failed attempt: the record is retried with backoff and dead-lettered after
// MaxAttempts like any failure, and the replay goes on.
func (r *replayer) sendContained(rec *Record) (status int, err error) {
	defer func() {
		if v := recover(); v != nil {
			panics.Contain(r.j.log, "capture replay", v)
			status, err = 0, fmt.Errorf("replay panicked: %v", v)
		}
	}()
	return r.send(r.ctx, rec)
}

// retryable reports whether a non-2xx status may succeed later: overload and
// timeouts (408, 429, 5xx), a concurrent request with the same key (409, as
// the idempotency-key draft uses it), too early (425).
func retryable(status int) bool {
	switch {
	case status == 408 || status == 409 || status == 425 || status == 429:
		return true
	case status >= 300 && status < 500:
		return false
	}
	return true
}

func (r *replayer) outcome(e *entry, status int, err error) {
	j := r.j
	if err == nil && status >= 200 && status < 300 {
		r.delivered(e)
		return
	}
	j.mu.Lock()
	e.attempts++
	n := e.attempts
	j.mu.Unlock()
	what := "backend answered " + strconv.Itoa(status)
	if err != nil {
		what = err.Error()
	}
	if err == nil && !retryable(status) {
		r.deadLetter(e, what)
		return
	}
	if n >= r.o.MaxAttempts {
		r.deadLetter(e, what+" (after "+strconv.Itoa(n)+" attempts)")
		return
	}
	j.m.retried.Inc()
	j.mu.Lock()
	e.retryAt = time.Now().Add(r.backoff(n)).UnixNano()
	j.mu.Unlock()
	j.log.Debug("capture: replay failed, will retry", "id", e.id, "pool", e.pool.name, "attempt", n, "err", what)
}

func (r *replayer) delivered(e *entry) {
	j := r.j
	err := j.MarkDelivered(e.id)
	switch {
	case err == nil:
		j.m.delivered.Inc()
	case errors.Is(err, ErrState), errors.Is(err, ErrNotFound), errors.Is(err, ErrClosed):
		// Resolved meanwhile (say, an operator dead-lettered it), or
		// shutting down: after a restart it is sent again, which the
		// idempotency key makes harmless.
	default:
		// The backend has it but the journal could not record that: mark it
		// again later rather than send it again now.
		j.log.Error("capture: cannot record a delivery", "id", e.id, "err", err)
		j.mu.Lock()
		e.sentOK = true
		e.retryAt = time.Now().Add(r.o.BackoffBase).UnixNano()
		j.mu.Unlock()
	}
}

func (r *replayer) deadLetter(e *entry, reason string) {
	j := r.j
	err := j.MarkDead(e.id, reason)
	switch {
	case err == nil:
		j.m.deadLettered.Inc()
		j.log.Warn("capture: record dead-lettered", "id", e.id, "pool", e.pool.name, "reason", reason)
	case errors.Is(err, ErrState), errors.Is(err, ErrNotFound), errors.Is(err, ErrClosed):
	default:
		j.log.Error("capture: cannot dead-letter a record", "id", e.id, "err", err)
		j.mu.Lock()
		e.retryAt = time.Now().Add(r.o.BackoffBase).UnixNano()
		j.mu.Unlock()
	}
}

// backoff is exponential from BackoffBase, capped at BackoffMax, with equal
// jitter (half fixed, half random: "Exponential Backoff And Jitter", AWS
// Architecture Blog, 2015), so that records failing together do not retry in
// lockstep while the delay never drops below half its step.
func (r *replayer) backoff(attempt int) time.Duration {
	d := r.o.BackoffBase
	for i := 1; i < attempt && d < r.o.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, r.o.BackoffMax)
	half := d / 2
	return half + rand.N(d-half+1)
}
