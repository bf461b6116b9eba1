package health

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/floodgate/floodgate/internal/panics"
)

// Target is what a prober reports to. It is declared here, by its consumer, and
// implemented by balancer.BackendState.
//
// SetProbeUp records the active-check verdict and reports whether it changed
// the target's state. The Checker calls it synchronously, from prober
// goroutines and from Sync, so that routing follows a verdict at once; never
// concurrently for one (pool, address); and only when the verdict flips or a
// prober starts, never on every probe. It must not block and must not call
// back into the Checker: Sync and Close wait for the probers that call it.
type Target interface {
	SetProbeUp(up bool) (changed bool)
}

// Transition is one change of a backend's health verdict, as passed to
// Options.OnTransition. Reason is the outcome of the probe that caused it
// ("status 503", "connect: connection refused", "timeout after 500ms"), or why
// a starting prober set the target ("initial state", "check changed",
// "no health check"). It is a plain value, safe to retain and share.
type Transition struct {
	Pool, Address string
	Up            bool
	Reason        string
	At            time.Time
}

// Options configures a Checker. The zero value is valid: no logs, no
// notifications. NewChecker copies what it needs; later changes have no effect.
type Options struct {
	// Logger receives one record per transition, plus recovered panics and
	// probes rejected by Sync. nil discards.
	Logger *slog.Logger
	// OnTransition, if non-nil, is called once per transition, after the
	// Target has been told. Calls are made one at a time, in the order the
	// transitions happened, from one goroutine the Checker owns: never from a
	// prober (a slow callback delays later notifications, never a probe) and
	// never from the goroutine calling Sync. So it may take a lock that Sync's
	// caller holds, and it may call Sync and Status; it must not call Close,
	// which waits for it. A transition that happened before Sync removed its
	// key may be delivered after Sync returns: look the key up.
	OnTransition func(Transition)
}

// Probe asks Sync for one prober. Pool and Address identify it: a reload that
// keeps the same pair keeps the prober and its state. Sync copies it; the
// caller may reuse the slice afterwards.
type Probe struct {
	Pool, Address string // Address is host:port
	Check         Check
	Target        Target // must be non-nil
	// StartUp is the state a new prober starts in, before any probe: true for
	// config backends at boot, so traffic flows immediately; false for backends
	// registered at runtime, which must pass Rise probes before taking traffic.
	// It is ignored for a prober that keeps its state across Sync.
	StartUp bool
}

// Status is a copy of one prober's state, as returned by Checker.Status: a
// plain value that does not change after it is returned. Its zero value means
// down, never probed.
type Status struct {
	Up              bool
	LastErr         string    // reason of the most recent probe if it failed; "" if it passed or none ran
	LastCheck       time.Time // end of the most recent probe; zero before the first
	ConsecutiveOK   int
	ConsecutiveFail int
}

// errNilTarget rejects a Probe that has nowhere to report.
var errNilTarget = errors.New("target: must not be nil")

// key identifies a prober.
type key struct{ pool, address string }

// Checker runs one prober goroutine per (pool, address), plus one goroutine
// delivering OnTransition calls when that is set. It is safe for concurrent
// use. Build it with NewChecker; the zero Checker is not usable and a Checker
// must not be copied. Close it to stop every goroutine it started.
type Checker struct {
	log    *slog.Logger
	probes map[string]probeFunc // by Check.Type; tests substitute their own

	// syncMu serializes Sync and Close, which stop probers and wait for them
	// without holding mu, so that Status stays available meanwhile.
	syncMu    sync.Mutex
	closed    bool          // guarded by syncMu
	closeDone chan struct{} // closed when the first Close has finished waiting

	mu      sync.Mutex
	probers map[key]*prober // guarded by mu; replaced entries are stopped first

	wg      sync.WaitGroup // one per prober goroutine; Close waits on it
	running atomic.Int64   // live prober goroutines, for tests and leak checks

	notes notifier // delivers OnTransition calls; see notify.go
}

// NewChecker returns a Checker with no probers. Add them with Sync.
func NewChecker(opts Options) *Checker {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Checker{
		log:       log,
		probes:    map[string]probeFunc{TypeHTTP: probeHTTP, TypeTCP: probeTCP},
		probers:   make(map[key]*prober),
		closeDone: make(chan struct{}),
	}
	c.notes.start(log, opts.OnTransition)
	return c
}

// Sync makes the set of probers match want, so a config reload or an admin API
// change keeps health state where it can:
//   - a new (Pool, Address) gets a prober starting in state StartUp, which is
//     set on its Target before Sync returns (and reported to OnTransition,
//     later and from another goroutine, if the Target changed);
//   - a key absent from want is stopped;
//   - a key whose Check and Target are unchanged is left running untouched;
//   - a key whose Check changed only in timings or thresholds (Interval,
//     UnhealthyInterval, Timeout, Rise, Fall), or whose Target changed, is
//     restarted keeping its up/down state and counters (a new Target is told
//     that state);
//   - a key whose Check changed what is probed or how it is judged (Type, Path,
//     Host, ExpectStatus) is restarted from StartUp, since old results are no
//     evidence about the new check.
//
// Invalid entries (Check.Validate fails, nil Target, Address not host:port) are
// logged and skipped; a prober already running for that key keeps running, as
// a bad reload keeps the old config. If a key repeats, the last entry wins.
//
// Sync returns after stopped probers have exited, so a removed backend is never
// reported on afterwards. It is safe for concurrent use; calls are serialized.
// After Close it does nothing.
func (c *Checker) Sync(want []Probe) {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	if c.closed {
		return
	}

	wanted := make(map[key]Probe, len(want))
	for _, p := range want {
		k := key{p.Pool, p.Address}
		if err := validateProbe(p); err != nil {
			c.log.Error("health: probe rejected", "pool", p.Pool, "backend", p.Address, "error", err)
			// A nil Target marks "keep whatever runs". Last entry wins, even
			// when it is the invalid one.
			wanted[k] = Probe{Pool: p.Pool, Address: p.Address}
			continue
		}
		p.Check = p.Check.normalized()
		wanted[k] = p
	}

	type restart struct {
		old  *prober
		next Probe
	}
	var (
		stopped  []*prober // removed: stop and forget
		restarts []restart // stop, then start a successor
		starts   []Probe   // brand new keys
	)
	c.mu.Lock()
	for k, old := range c.probers {
		if _, ok := wanted[k]; !ok {
			stopped = append(stopped, old)
		}
	}
	for k, p := range wanted {
		old, exists := c.probers[k]
		switch {
		case p.Target == nil: // invalid: keep whatever runs
		case !exists:
			starts = append(starts, p)
		case old.check == p.Check && sameTarget(old.target, p.Target):
			// Unchanged: the running prober is the right one.
		default:
			restarts = append(restarts, restart{old, p})
		}
	}
	c.mu.Unlock()

	// Stop everything that goes away before starting successors, so one key
	// never has two probers reporting to its Target.
	for _, p := range stopped {
		p.cancel()
	}
	for _, r := range restarts {
		r.old.cancel()
	}
	for _, p := range stopped {
		<-p.done
	}
	for _, r := range restarts {
		<-r.old.done
	}

	var fresh []*prober
	for _, p := range starts {
		fresh = append(fresh, c.newProber(p, Status{Up: p.StartUp}, "initial state"))
	}
	for _, r := range restarts {
		// old has exited: its state is final and safe to read.
		st, why := r.old.status(), ""
		if !r.old.check.sameEvidence(r.next.Check) {
			st, why = Status{Up: r.next.StartUp}, "check changed"
		}
		np := c.newProber(r.next, st, why)
		if why == "" && !sameTarget(r.old.target, np.target) {
			np.pushOnStart = true // a new Target must learn the state, but the verdict did not change
		}
		fresh = append(fresh, np)
	}

	c.mu.Lock()
	for _, p := range stopped {
		delete(c.probers, p.key)
	}
	for _, p := range fresh {
		c.probers[p.key] = p
	}
	c.mu.Unlock()

	for _, p := range fresh {
		c.start(p)
	}
}

// Close stops every prober, interrupting probes in flight, delivers the
// transitions still queued for OnTransition, and returns once every goroutine
// of the Checker has exited. Later calls to Sync do nothing; Status keeps
// answering with the last known state. Close is idempotent and safe for
// concurrent use, but must not be called from OnTransition, nor while holding
// a lock OnTransition takes.
func (c *Checker) Close() {
	c.syncMu.Lock()
	first := !c.closed
	if first {
		c.closed = true
		c.mu.Lock()
		for _, p := range c.probers {
			p.cancel()
		}
		c.mu.Unlock()
	}
	// Wait without syncMu: an OnTransition calling Sync meanwhile must find
	// the Checker closed, not block the notifier that Close waits for. No Sync
	// can start a prober any more, so wg only counts down.
	c.syncMu.Unlock()
	if first {
		c.wg.Wait()
		c.notes.stop() // probers are gone: nothing more can be queued
		close(c.closeDone)
	}
	<-c.closeDone // a concurrent Close returns only when the first is done
}

// Status returns a copy of the state of the prober for (pool, address), and
// false if there is none. A TypeNone prober reports Up with no checks. It is safe
// for concurrent use, including from OnTransition.
func (c *Checker) Status(pool, address string) (Status, bool) {
	c.mu.Lock()
	p, ok := c.probers[key{pool, address}]
	c.mu.Unlock()
	if !ok {
		return Status{}, false
	}
	return p.status(), true
}

// validateProbe checks what Sync needs beyond Check.Validate.
func validateProbe(p Probe) error {
	if err := p.Check.Validate(); err != nil {
		return err
	}
	if p.Target == nil {
		return errNilTarget
	}
	if p.Check.normalized().Type == TypeNone {
		return nil // never dialled: the address is only a key
	}
	if _, _, err := net.SplitHostPort(p.Address); err != nil {
		return err
	}
	return nil
}

// sameTarget reports whether a and b are the same Target. Targets are pointers
// in practice; an uncomparable dynamic type would panic on ==, and is treated
// as different, which at worst restarts a prober keeping its state.
func sameTarget(a, b Target) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

// start sets a new prober's starting state on its Target when needed and
// launches its goroutine (none for TypeNone, which has nothing to do).
func (c *Checker) start(p *prober) {
	if p.initialReason != "" {
		c.push(p, p.st.Up, p.initialReason, time.Now(), true)
	} else if p.pushOnStart {
		c.push(p, p.st.Up, "", time.Time{}, false)
	}
	if p.check.Type == TypeNone {
		close(p.done)
		return
	}
	c.wg.Add(1)
	c.running.Add(1)
	go func() {
		// Deferred in reverse: the count drops before done and wg announce
		// the exit, so whoever waited on them sees it.
		defer c.wg.Done()
		defer close(p.done)
		defer c.running.Add(-1)
		c.run(p)
	}()
}

// push tells p's Target the verdict up and, when reason is set and (with
// onlyIfChanged, for a starting prober) the Target actually changed, logs the
// Transition and queues it for OnTransition. A panic in the Target is logged,
// not propagated: it would otherwise take the whole proxy down from a
// background goroutine.
func (c *Checker) push(p *prober, up bool, reason string, at time.Time, onlyIfChanged bool) {
	defer func() {
		if r := recover(); r != nil {
			panics.Contain(c.log.With("pool", p.key.pool, "backend", p.key.address), "health: Target.SetProbeUp", r)
		}
	}()
	changed := p.target.SetProbeUp(up)
	if reason == "" || (onlyIfChanged && !changed) {
		return
	}
	state, level := "down", slog.LevelWarn
	if up {
		state, level = "up", slog.LevelInfo
	}
	c.log.LogAttrs(context.Background(), level, "health: backend "+state,
		slog.String("pool", p.key.pool), slog.String("backend", p.key.address),
		slog.String("state", state), slog.String("reason", reason))
	c.notes.queue(Transition{Pool: p.key.pool, Address: p.key.address, Up: up, Reason: reason, At: at})
}
