package degrade

import (
	"iter"
	"time"
)

// pool is one pool's monitor state. Every field is guarded by Monitor.mu
// except gate and rec, which are safe for concurrent use on their own.
type pool struct {
	name string
	cfg  PoolConfig
	gate *Gate
	rec  *Recorder

	// Sampling: the end of the last evaluated window and the readings taken
	// then, differenced with the next ones. snaps alternates between the
	// previous and the current recorder snapshot, so a window copies 4 KB and
	// allocates nothing.
	last       time.Time
	prevSample Sample
	snaps      [2]recSnapshot
	cur        int // index of the previous snapshot in snaps
	sig        Signals
	win        windowStats
	noneUp     bool // no backend up in the last window

	// The automatic state machine: what the signals say.
	auto       Mode
	autoReason string
	overRun    int       // consecutive windows with a signal at its enter threshold (while normal)
	calmRun    int       // consecutive calm windows (while degraded)
	calmSince  time.Time // start of the first of them

	// The admission level controller, active while auto or the override says
	// degraded.
	level Level
	relax int // consecutive windows in favour of stepping the level down

	// What the gate publishes and the admin API shows.
	override   Override
	mode       Mode
	reason     string
	since      time.Time
	toDegraded uint64
	toNormal   uint64
}

func newPool(name string, now time.Time) *pool {
	p := &pool{name: name, gate: new(Gate), rec: new(Recorder), last: now, since: now}
	p.rec.snapshot(&p.snaps[p.cur])
	return p
}

// configure takes a validated, defaulted config. The source is sampled at
// once: a new source may count from another origin than the old one, and
// differencing across the two would be garbage.
func (p *pool) configure(c PoolConfig) {
	p.cfg = c
	p.prevSample = Sample{}
	if c.Source != nil {
		p.prevSample = c.Source.Sample()
	}
}

func (p *pool) minRequests() uint64 { return uint64(p.cfg.MinRequests) }

// step evaluates one window ending at now, if the pool's window has elapsed,
// and returns the transition it caused.
func (p *pool) step(now time.Time) (Transition, bool) {
	elapsed := now.Sub(p.last)
	if elapsed <= 0 || elapsed < p.cfg.Window-p.cfg.Window/10 {
		return Transition{}, false
	}
	start := p.last
	p.measure(now, elapsed)
	p.last = now

	reached, why := p.reached()
	p.noneUp = p.sig.HealthyCapacity == 0
	if p.active() {
		p.adjustLevel(reached)
	}
	p.advanceAuto(reached, why, start, now)
	return p.settle(now)
}

// measure computes the signals of the window [now-elapsed, now].
func (p *pool) measure(now time.Time, elapsed time.Duration) {
	var s Sample
	if p.cfg.Source != nil {
		s = p.cfg.Source.Sample()
	}
	prev := p.prevSample
	if s.QueueWaits < prev.QueueWaits || s.QueueWaitNanos < prev.QueueWaitNanos || s.QueueRefused < prev.QueueRefused {
		prev = Sample{} // the source went backwards: a new origin, not a wrap
	}
	p.prevSample = s

	sig := Signals{
		At:              now,
		Window:          elapsed,
		Inflight:        s.Inflight,
		Capacity:        s.Capacity,
		QueueDepth:      s.QueueDepth,
		Refused:         s.QueueRefused - prev.QueueRefused,
		HealthyCapacity: 1,
	}
	if s.Capacity > 0 {
		sig.InflightRatio = float64(s.Inflight) / float64(s.Capacity)
	}
	if n := s.QueueWaits - prev.QueueWaits; n > 0 {
		sig.QueueWait = time.Duration((s.QueueWaitNanos - prev.QueueWaitNanos) / n)
	}
	if s.TotalWeight > 0 {
		sig.HealthyCapacity = float64(s.UpWeight) / float64(s.TotalWeight)
	}

	older, newer := &p.snaps[p.cur], &p.snaps[1-p.cur]
	p.rec.snapshot(newer)
	p.win = delta(older, newer)
	p.cur = 1 - p.cur
	sig.Forwarded, sig.Failed = p.win.forwarded, p.win.failed
	for _, d := range p.win.diverted {
		sig.Diverted += d
	}
	if sig.Forwarded >= p.minRequests() {
		sig.P95Latency = p.win.p95
		sig.ErrorRate = float64(sig.Failed) / float64(sig.Forwarded)
		sig.Demand = float64(sig.Forwarded+sig.Diverted) / float64(sig.Forwarded)
	}
	p.sig = sig
}

// reached reports whether any signal is at its enter threshold in the current
// window and, if so, the reason naming the one furthest past it.
func (p *pool) reached() (bool, string) {
	best, found := 0.0, false
	var bs signal
	var bv, bt float64
	for s, r := range p.readings(&p.cfg.Enter) {
		v, thr := r.v, r.thr
		var score float64
		if s.inverted() {
			if v > thr {
				continue
			}
			score = thr / max(v, 1e-9)
		} else {
			if v < thr {
				continue
			}
			score = v / thr
		}
		if !found || score > best {
			best, found, bs, bv, bt = score, true, s, v, thr
		}
	}
	if !found {
		return false, ""
	}
	return true, reachReason(bs, bv, bt)
}

// calm reports whether every signal is under its exit threshold in the
// current window. Signals without data (too few requests) are calm.
func (p *pool) calm() bool {
	for s, r := range p.readings(&p.cfg.Exit) {
		if s.inverted() && r.v < r.thr || !s.inverted() && r.v > r.thr {
			return false
		}
	}
	return true
}

// reading is a signal's value in the current window and its threshold.
type reading struct{ v, thr float64 }

// readings yields each signal that t sets and that has data in the current
// window (enough requests), with its reading.
func (p *pool) readings(t *Thresholds) iter.Seq2[signal, reading] {
	return func(yield func(signal, reading) bool) {
		for s := range numSignals {
			thr := t.threshold(s)
			if thr == 0 {
				continue
			}
			v, ok := p.sig.value(s, p.minRequests())
			if !ok {
				continue
			}
			if !yield(s, reading{v, thr}) {
				return
			}
		}
	}
}

// fits reports whether the pool would stay under its enter inflight_ratio if
// the extra requests degraded mode diverted in the window were forwarded too.
// By Little's law in-flight requests grow with the request rate at a given
// latency, so the projection is ratio × (forwarded+extra)/forwarded; it is
// optimistic (latency grows too near saturation), which is why it is compared
// with the enter threshold and not with anything lower.
//
// This is what keeps a spike from giving two entries: shedding lowers the
// signals, sometimes under the exit thresholds, while the offered load is as
// high as ever; leaving then would bring the spike straight back. Without an
// inflight_ratio signal, or with too few forwarded requests to project from,
// it answers true and the hold alone decides.
func (p *pool) fits(extra uint64) bool {
	thr := p.cfg.Enter.InflightRatio
	s := &p.sig
	if extra == 0 || thr == 0 || s.Capacity == 0 || s.Forwarded < p.minRequests() {
		return true
	}
	return s.InflightRatio*float64(s.Forwarded+extra)/float64(s.Forwarded) < thr
}

// active reports whether the level controller runs: whenever the signals or
// the admin say degraded, so that an override lifted later finds the level
// current.
func (p *pool) active() bool { return p.auto == ModeDegraded || p.override == OverrideDegraded }

// adjustLevel moves the admission level by the current window, towards
//
//	LevelCriticalOnly  no backend up: nothing but critical is worth trying;
//	                   or a signal still at its enter threshold with normal
//	                   refused, in a pool without a connection limit, where
//	                   nothing but the gate bounds the load;
//	LevelShedNormal    a signal still at its enter threshold although low is
//	                   refused;
//	LevelShedLow       otherwise.
//
// With a connection limit the gate never refuses high: high requests take a
// slot if one is free (the balancer decides that per request, exactly, and
// refused ones get their route's action at once), and critical keeps its
// reserved slots. Refusing high at the gate there would only leave slots idle:
// a closed-loop test at 18x showed the origin at 54% of its capacity.
//
// The level rises to the target at once: saturation costs requests every
// second it lasts. It falls one step only after Windows consecutive windows
// below that level, each showing that the class the step lets back in (the
// requests diverted at the current level) would fit.
func (p *pool) adjustLevel(reached bool) {
	target := LevelShedLow
	switch {
	case p.noneUp:
		target = LevelCriticalOnly
	case reached && p.level >= LevelShedNormal && p.sig.Capacity == 0:
		target = LevelCriticalOnly
	case reached:
		target = LevelShedNormal
	}
	switch {
	case target > p.level:
		p.level, p.relax = target, 0
	case target < p.level && p.fits(p.win.diverted[p.level]):
		if p.relax++; p.relax >= p.cfg.Windows {
			p.level, p.relax = p.level-1, 0
		}
	default:
		p.relax = 0
	}
}

// advanceAuto steps the automatic state machine by the window [start, now]:
//
//	normal → degraded: a signal at its enter threshold in Windows
//	                   consecutive windows (not necessarily the same signal).
//	degraded → normal: every signal under its exit threshold, and the
//	                   diverted demand fitting, in every window for at least
//	                   Hold and Windows windows, with the level down to
//	                   LevelShedLow.
//
// A window between the two thresholds breaks both runs, which is the
// hysteresis: the state stays as it is.
func (p *pool) advanceAuto(reached bool, why string, start, now time.Time) {
	if p.auto == ModeNormal {
		if !reached {
			p.overRun = 0
			return
		}
		if p.overRun++; p.overRun >= p.cfg.Windows {
			p.auto, p.autoReason = ModeDegraded, why
			p.overRun, p.calmRun = 0, 0
		}
		return
	}
	if !p.calm() || !p.fits(p.sig.Diverted) {
		p.calmRun = 0
		return
	}
	if p.calmRun == 0 {
		p.calmSince = start
	}
	p.calmRun++
	held := now.Sub(p.calmSince)
	if p.calmRun >= p.cfg.Windows && held >= p.cfg.Hold && p.level <= LevelShedLow {
		p.auto = ModeNormal
		p.autoReason = calmReason(&p.cfg.Exit, &p.sig, held, p.minRequests())
		p.calmRun = 0
	}
}

// effective returns the mode the gate shows and why.
func (p *pool) effective() (Mode, string) {
	switch p.override {
	case OverrideDegraded:
		return ModeDegraded, "admin override: degraded"
	case OverrideNormal:
		return ModeNormal, "admin override: normal"
	}
	return p.auto, p.autoReason
}

// settle starts or stops the level controller, publishes the gate and
// records a transition if the effective mode changed.
func (p *pool) settle(now time.Time) (Transition, bool) {
	switch {
	case !p.active():
		p.level, p.relax = LevelNormal, 0
	case p.level == LevelNormal:
		// Low priority goes first; normal follows one window later if that
		// was not enough. A pool without a backend up skips the steps.
		p.level, p.relax = LevelShedLow, 0
		if p.noneUp {
			p.level = LevelCriticalOnly
		}
	}
	mode, reason := p.effective()
	lvl := p.level
	if mode == ModeNormal {
		lvl = LevelNormal
	}
	p.gate.set(lvl)
	p.reason = reason
	if mode == p.mode {
		return Transition{}, false
	}
	tr := Transition{Pool: p.name, From: p.mode, To: mode, Level: lvl, Reason: reason, At: now, Signals: p.sig}
	p.mode, p.since = mode, now
	if mode == ModeDegraded {
		p.toDegraded++
	} else {
		p.toNormal++
	}
	return tr, true
}

func (p *pool) status() Status {
	return Status{
		Pool:        p.name,
		Mode:        p.mode,
		Auto:        p.auto,
		Override:    p.override,
		Level:       p.gate.Level(),
		Reason:      p.reason,
		Since:       p.since,
		Signals:     p.sig,
		Transitions: p.toDegraded + p.toNormal,
	}
}
