package balancer

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// maxEjectShift caps the doubling of the ejection period on repeated ejections:
// EjectFor, 2x, 4x, then 8x at most, as Envoy's outlier detection does with its
// ejection multiplier.
const maxEjectShift = 3

// BackendState is the live state of one backend: probe verdict, passive-health
// ejection, slow-start ramp, in-flight count and totals. It outlives config
// generations: the control plane keeps one per backend ID and hands the same
// pointer to every Pool it builds, so counters and connection slots carry over a
// reload and a slot taken from one generation is given back in the next.
//
// Every field is atomic; all methods are safe for concurrent use. A BackendState
// must not be copied. The zero value is not usable; build one with
// NewBackendState or NewBackendStateDown.
//
// A BackendState belongs to one pool (the successive generations of one pool):
// NewPool records that pool's passive-health settings, clock and queue in it, and
// the last pool built wins if a state is shared more widely.
type BackendState struct {
	id string

	// Read on every pick: kept together, away from the counters written per
	// request, so that scanning the ring does not contend with Acquire/Release.
	probeUp      atomic.Bool
	ejectedUntil atomic.Int64 // unix nanos; 0 = not ejected
	rampFrom     atomic.Int64 // unix nanos the slow-start ramp runs from; 0 = warm
	upSince      atomic.Int64 // unix nanos of the last transition to probe-up
	policy       atomic.Pointer[statePolicy]
	owner        atomic.Pointer[PoolState]

	_        [64]byte
	inflight atomic.Int64
	_        [56]byte

	requests    atomic.Uint64
	failures    atomic.Uint64
	consecFails atomic.Int64
	rampTick    atomic.Uint64 // slow-start admission counter, see Pool.rampAccept
	ejections   atomic.Uint64
	ejectShift  atomic.Int32 // doubling applied to the last ejection
	lastEjected atomic.Int64 // unix nanos the last ejection ended (or ends)
	held        atomic.Bool  // an ejection was refused by the pool's bound; logged once until it clears
}

// statePolicy is what NewPool tells a BackendState about its pool, so that Report
// and Up, called without a Pool at hand, use the pool's settings and clock.
type statePolicy struct {
	maxFails int64
	ejectFor int64 // nanoseconds
	now      func() time.Time
	log      *slog.Logger // never nil
	pool     string

	// members are the weighted backends of the newest generation, and
	// maxEjected how many of them passive health may hold ejected at once
	// (PoolOptions.MaxEjectionPercent). ejectMu is the PoolState's: ejection
	// decisions of every generation of the pool are taken one at a time.
	members    []*BackendState
	maxEjected int
	ejectMu    *sync.Mutex
}

// admitEjection decides, under the pool's ejection lock, whether s may be
// ejected until until, and records the ejection if so: never when that would
// exceed maxEjected backends ejected at once, and never when s is the last
// weighted backend up (Envoy's max_ejection_percent, with the pool never
// emptied by passive health: a backend that drops some connections still
// serves the rest, where an empty pool answers every request 503). A backend
// outside the weighted members (draining) is always ejectable.
func (p *statePolicy) admitEjection(s *BackendState, now, until int64) (ok bool, why string) {
	p.ejectMu.Lock()
	defer p.ejectMu.Unlock()
	member, ejected, othersUp := false, 0, 0
	for _, m := range p.members {
		if m == s {
			member = true
			continue
		}
		u := m.ejectedUntil.Load()
		out := u != 0 && now < u
		if out {
			ejected++
		}
		if !out && m.probeUp.Load() {
			othersUp++
		}
	}
	switch {
	case !member:
	case othersUp == 0:
		return false, "last backend up"
	case ejected+1 > p.maxEjected:
		return false, "max_ejection_percent reached"
	}
	s.ejectedUntil.Store(until)
	return true, ""
}

func (p *statePolicy) nanos() int64 {
	if p == nil || p.now == nil {
		return time.Now().UnixNano()
	}
	return p.now().UnixNano()
}

// NewBackendState returns the state of a backend that starts up: probe-up, not
// ejected, with its slow-start ramp (if its pool has one) starting now. Use it for
// pools without active health checks, where nothing would ever mark it up.
func NewBackendState(id string) *BackendState {
	s := &BackendState{id: id}
	now := time.Now().UnixNano()
	s.probeUp.Store(true)
	s.upSince.Store(now)
	s.rampFrom.Store(nonZero(now))
	return s
}

// NewBackendStateDown returns the state of a backend that starts probe-down and
// receives no traffic until SetProbeUp(true): health-gated addition, where a new
// backend must pass its first probes before it is used.
func NewBackendStateDown(id string) *BackendState {
	return &BackendState{id: id}
}

// ID returns the identifier the state was created with.
func (s *BackendState) ID() string { return s.id }

// Up reports whether the backend may receive traffic: probe-up and not ejected.
// In steady state it is two atomic loads; the clock is read only while an
// ejection is recorded, and an expired ejection is cleared lazily here, so no
// goroutine is needed to re-admit a backend.
func (s *BackendState) Up() bool {
	if !s.probeUp.Load() {
		return false
	}
	until := s.ejectedUntil.Load()
	return until == 0 || s.ejectionOver(until, s.policy.Load().nanos())
}

// upAt is Up with the pool's lazily read clock.
func (s *BackendState) upAt(c *clock) bool {
	if !s.probeUp.Load() {
		return false
	}
	until := s.ejectedUntil.Load()
	return until == 0 || s.ejectionOver(until, c.nanos())
}

// ejectionOver reports whether an ejection lasting until has expired at now and,
// if so, clears it so later calls skip the clock.
func (s *BackendState) ejectionOver(until, now int64) bool {
	if now < until {
		return false
	}
	s.ejectedUntil.CompareAndSwap(until, 0)
	return true
}

// SetProbeUp records the active health checker's verdict and reports whether it
// changed. A transition to up restarts the slow-start ramp. Any transition wakes
// the owning pool's queued requests (PoolState.Kick) so they can take a backend
// that came up, or fail fast with ErrNoHealthyBackend when the last one went down;
// that costs one atomic load when nothing is queued. Safe for concurrent use.
func (s *BackendState) SetProbeUp(up bool) (changed bool) {
	if up {
		if s.probeUp.Load() {
			return false
		}
		now := s.policy.Load().nanos()
		// Publish the ramp start before the flag: a picker that sees the backend
		// up must not see a stale ramp and skip slow start.
		s.upSince.Store(now)
		s.rampFrom.Store(nonZero(now))
		if !s.probeUp.CompareAndSwap(false, true) {
			return false
		}
	} else if !s.probeUp.Swap(false) {
		return false
	}
	if ps := s.owner.Load(); ps != nil {
		ps.Kick()
	}
	return true
}

// Inflight returns the number of connection slots currently held on the backend
// (Acquire minus Release, across all generations).
func (s *BackendState) Inflight() int64 { return s.inflight.Load() }

// Report records the outcome of one forwarded request for passive health: ok is
// false for a connect failure, a reset before the response, or a 5xx. MaxFails
// consecutive failures eject the backend for the pool's EjectFor; a success resets
// the count. An ejection that follows the previous one within that previous
// period doubles it, up to 8x EjectFor; one that comes later starts again at 1x.
// Failures reported while the backend is ejected are not counted: they come from
// requests sent before the ejection. The pool's MaxEjectionPercent bounds how
// many backends are ejected at once, and the last weighted backend up is never
// ejected: its failures are counted, the ejection is skipped (and logged once).
// Ejection is independent of the probe state.
// Re-admission is lazy (the next Up or pick after EjectFor sees it), so requests
// already queued notice it at the next Release or PoolState.Kick.
//
// Report counts totals even when passive health is off (MaxFails 0) or the state
// belongs to no pool. Safe for concurrent use; allocation-free.
func (s *BackendState) Report(ok bool) {
	s.requests.Add(1)
	if ok {
		// Load first: a store on every success would bounce the cache line.
		if s.consecFails.Load() != 0 {
			s.consecFails.Store(0)
			s.held.Store(false)
		}
		return
	}
	s.failures.Add(1)
	pol := s.policy.Load()
	if pol == nil || pol.maxFails <= 0 {
		return
	}
	var now int64
	if until := s.ejectedUntil.Load(); until != 0 {
		now = pol.nanos()
		if !s.ejectionOver(until, now) {
			return
		}
	}
	n := s.consecFails.Add(1)
	// Only the goroutine that resets the count ejects, so concurrent failures
	// eject once.
	if n < pol.maxFails || !s.consecFails.CompareAndSwap(n, 0) {
		return
	}
	if now == 0 {
		now = pol.nanos()
	}
	shift := int32(0)
	if last := s.lastEjected.Load(); last != 0 {
		prev := s.ejectShift.Load()
		if now-last < pol.ejectFor<<prev {
			shift = min(prev+1, maxEjectShift)
		}
	}
	until := now + pol.ejectFor<<shift
	// Rare by construction (once per MaxFails failures), so the lock and the
	// logging here cost the request path nothing in steady state.
	admitted, why := pol.admitEjection(s, now, until)
	if !admitted {
		if !s.held.Swap(true) && pol.log.Enabled(context.Background(), slog.LevelWarn) {
			pol.log.Warn("backend not ejected despite consecutive failures: "+why, "pool", pol.pool, "backend", s.id,
				"failures", pol.maxFails)
		}
		return
	}
	s.held.Store(false)
	s.ejectShift.Store(shift)
	s.lastEjected.Store(until)
	s.ejections.Add(1)
	if pol.log.Enabled(context.Background(), slog.LevelWarn) { // no fields built when discarded
		pol.log.Warn("backend ejected: consecutive failures", "pool", pol.pool, "backend", s.id,
			"failures", pol.maxFails, "for", time.Duration(pol.ejectFor<<shift).String())
	}
}

// BackendStats is a point-in-time copy of a BackendState for the admin API and
// metrics. Fields are read one by one, so they may be mutually inconsistent by a
// request or two.
type BackendStats struct {
	ID string
	// Up is ProbeUp && !Ejected: whether the backend may receive traffic.
	Up      bool
	ProbeUp bool
	Ejected bool
	// EjectedUntil is when the current ejection ends; zero when not ejected.
	EjectedUntil time.Time
	// Ejections counts every passive-health ejection since creation.
	Ejections uint64
	Inflight  int64
	// Requests and Failures count the outcomes passed to Report.
	Requests uint64
	Failures uint64
	// UpSince is when the backend last came up (or was created up); zero while
	// probe-down.
	UpSince time.Time
}

// Stats returns a snapshot of the state. Safe for concurrent use; it reads the
// clock once, to tell whether an ejection is current.
func (s *BackendState) Stats() BackendStats {
	st := BackendStats{
		ID:        s.id,
		ProbeUp:   s.probeUp.Load(),
		Ejections: s.ejections.Load(),
		Inflight:  s.inflight.Load(),
		Requests:  s.requests.Load(),
		Failures:  s.failures.Load(),
	}
	if until := s.ejectedUntil.Load(); until != 0 && !s.ejectionOver(until, s.policy.Load().nanos()) {
		st.Ejected = true
		st.EjectedUntil = time.Unix(0, until)
	}
	st.Up = st.ProbeUp && !st.Ejected
	if st.ProbeUp {
		if t := s.upSince.Load(); t != 0 {
			st.UpSince = time.Unix(0, t)
		}
	}
	return st
}

// take claims a connection slot if fewer than limit are held; limit <= 0 means
// unlimited, but the slot is still counted so Inflight stays meaningful.
func (s *BackendState) take(limit int64) bool {
	if limit <= 0 {
		s.inflight.Add(1)
		return true
	}
	for {
		n := s.inflight.Load()
		if n >= limit {
			return false
		}
		if s.inflight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// nonZero keeps 0 free to mean "unset" in the nanosecond fields, even for a test
// clock standing at the Unix epoch.
func nonZero(ns int64) int64 {
	if ns == 0 {
		return 1
	}
	return ns
}

// clock reads the pool's clock at most once per pick, and only if a backend on
// the way is ejected or slow-starting, so steady state never calls time.Now.
type clock struct {
	now func() time.Time
	ns  int64
	ok  bool
}

func (c *clock) nanos() int64 {
	if !c.ok {
		c.ns, c.ok = c.now().UnixNano(), true
	}
	return c.ns
}
