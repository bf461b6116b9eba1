package health

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/floodgate/floodgate/internal/panics"
)

// prober is the state of one (pool, address). Its fields other than mu and st
// are set before its goroutine starts and never change; a changed Check or
// Target gets a new prober (see Checker.Sync).
type prober struct {
	key    key
	check  Check // normalized
	target Target
	probe  probeFunc // nil for TypeNone
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the goroutine has exited (at start for TypeNone)

	// What Checker.start tells the Target before the first probe.
	initialReason string // non-empty: push st.Up and report it if the Target changed
	pushOnStart   bool   // push st.Up silently: a new Target for an unchanged verdict

	mu sync.Mutex
	st Status // written only by the prober's goroutine, under mu
}

// newProber builds a stopped prober for p starting in state st.
func (c *Checker) newProber(p Probe, st Status, initialReason string) *prober {
	if p.Check.Type == TypeNone {
		// Without a check there is no evidence against the backend: it is up
		// for as long as it is configured, whatever StartUp says.
		st = Status{Up: true}
		if initialReason != "" {
			initialReason = "no health check"
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &prober{
		key:           key{p.Pool, p.Address},
		check:         p.Check,
		target:        p.Target,
		probe:         c.probes[p.Check.Type],
		ctx:           ctx,
		cancel:        cancel,
		done:          make(chan struct{}),
		initialReason: initialReason,
		st:            st,
	}
}

// status returns a copy of p's state.
func (p *prober) status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st
}

// interval is the time between probes in state up: a down backend may be
// probed at a different rate (UnhealthyInterval) so that it comes back sooner,
// or costs less while it stays dead.
func (p *prober) interval(up bool) time.Duration {
	if up {
		return p.check.Interval
	}
	return p.check.UnhealthyInterval
}

// run is p's goroutine: probe, record, wait, until p.ctx is cancelled.
//
// The first probe waits a random delay in [0, interval) so that hundreds of
// backends registered at once (boot, a reload, an autoscaling burst) do not
// probe in lockstep; each later delay is jittered by ±10% so they do not drift
// back into phase (Consul's lib.RandomStagger, Traefik's jittered ticker).
// Delays are counted from the start of the previous probe, so a slow backend
// does not stretch its own interval; Timeout <= Interval keeps probes of one
// backend from overlapping, and they run sequentially here anyway.
func (c *Checker) run(p *prober) {
	t := time.NewTimer(rand.N(p.interval(p.st.Up)))
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		ok, reason, conclusive := c.probeOnce(p)
		if p.ctx.Err() != nil {
			// Cancelled mid-probe: the failure is ours, not the backend's, and
			// the key may already belong to a successor.
			return
		}
		up := c.record(p, ok, reason, conclusive, time.Now())
		t.Reset(max(jitter(p.interval(up))-time.Since(start), 0))
	}
}

// jitter returns d shifted by a uniform random amount in [-d/10, +d/10].
func jitter(d time.Duration) time.Duration {
	return d - d/10 + rand.N(d/5+1)
}

// probeOnce runs one probe under the check's timeout. A panic in the probe is
// recovered and logged with its stack, and the probe counts as inconclusive:
// a bug in the prober is no evidence about the backend, and counting it as a
// failure would let one bad probe path mark every backend down.
func (c *Checker) probeOnce(p *prober) (ok bool, reason string, conclusive bool) {
	ctx, cancel := context.WithTimeout(p.ctx, p.check.Timeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			panics.Contain(c.log.With("pool", p.key.pool, "backend", p.key.address), "health probe", r)
			ok, reason, conclusive = false, fmt.Sprintf("panic: %v", r), false
		}
	}()
	ok, reason = p.probe(ctx, p.key.address, p.check)
	return ok, reason, true
}

// record folds one probe result into p's state and, when the verdict flips
// (Rise consecutive passes while down, Fall consecutive failures while up),
// tells the Target and reports the Transition. It returns the verdict.
func (c *Checker) record(p *prober, ok bool, reason string, conclusive bool, now time.Time) bool {
	p.mu.Lock()
	st := &p.st
	st.LastCheck = now
	flipped := false
	switch {
	case !conclusive:
		st.LastErr = reason
	case ok:
		st.ConsecutiveOK++
		st.ConsecutiveFail = 0
		st.LastErr = ""
		if !st.Up && st.ConsecutiveOK >= p.check.Rise {
			st.Up, flipped = true, true
		}
	default:
		st.ConsecutiveFail++
		st.ConsecutiveOK = 0
		st.LastErr = reason
		if st.Up && st.ConsecutiveFail >= p.check.Fall {
			st.Up, flipped = false, true
		}
	}
	up := st.Up
	p.mu.Unlock()
	if flipped {
		c.push(p, up, reason, now, false)
	}
	return up
}
