package degrade

import (
	"fmt"
	"math"
	"sync/atomic"
)

// Priority orders routes for admission while their pool is degraded. Higher
// priorities are refused later; PriorityCritical is never refused.
//
// The zero Priority is treated as PriorityNormal, the default of a route's
// `priority` key, so a route built without one is neither favoured nor shed
// first.
type Priority uint8

// Route priorities, lowest first.
const (
	PriorityLow      Priority = iota + 1 // shed first: search, recommendations
	PriorityNormal                       // the default
	PriorityHigh                         // checkout, login: admitted while any capacity is free
	PriorityCritical                     // the back office: always admitted
)

// rank maps p to 1 (low) .. 4 (critical), with the zero value and unknown
// values as normal.
func (p Priority) rank() Level {
	if p == 0 || p > PriorityCritical {
		return Level(PriorityNormal)
	}
	return Level(p)
}

// String returns the name used in the config file and in metric labels:
// "low", "normal", "high" or "critical".
func (p Priority) String() string {
	switch p.rank() {
	case Level(PriorityLow):
		return "low"
	case Level(PriorityHigh):
		return "high"
	case Level(PriorityCritical):
		return "critical"
	}
	return "normal"
}

// ParsePriority maps a config value ("critical", "high", "normal", "low") to a
// Priority. The empty string is PriorityNormal, the config default.
func ParsePriority(s string) (Priority, error) {
	switch s {
	case "low":
		return PriorityLow, nil
	case "", "normal":
		return PriorityNormal, nil
	case "high":
		return PriorityHigh, nil
	case "critical":
		return PriorityCritical, nil
	}
	return 0, fmt.Errorf("degrade: unknown priority %q: want critical, high, normal or low", s)
}

// Level is how much of a pool's traffic admission refuses, published by the
// Monitor once per window and read by the request path with one atomic load
// (Gate.Level). It plays the part of the scaled trigger value of an Envoy
// overload action: 0 means no action, and each step up refuses one more
// priority class. In a pool with a connection limit, "refuses" means "admits
// only onto a slot that is free at once" (see Decide): the level decides who
// may wait in the queue, the balancer who gets a free slot.
type Level uint32

// Admission levels. A request of priority p is admitted at level l when
// p's rank (low 1 .. critical 4) is above l.
const (
	// LevelNormal: the pool is not degraded; every request is admitted.
	LevelNormal Level = iota
	// LevelShedLow: degraded; low-priority requests are refused.
	LevelShedLow
	// LevelShedNormal: degraded and still saturated although low is refused;
	// normal is refused too.
	LevelShedNormal
	// LevelCriticalOnly: no backend is up, or the pool has no connection
	// limit and refusing normal was not enough; only critical requests are
	// admitted. A pool with a connection limit never gets here while a backend
	// is up: there the balancer refuses high exactly when no slot is free, and
	// critical has slots reserved.
	LevelCriticalOnly
)

// MaxLevel is the highest Level.
const MaxLevel = LevelCriticalOnly

// String returns a short name for logs and the admin API.
func (l Level) String() string {
	switch l {
	case LevelNormal:
		return "normal"
	case LevelShedLow:
		return "shed-low"
	case LevelShedNormal:
		return "shed-normal"
	case LevelCriticalOnly:
		return "critical-only"
	}
	return fmt.Sprintf("level(%d)", uint32(l))
}

// Admit reports whether a request of priority p may queue for its pool's
// backends at admission level l. It is a pure function: low is refused from
// LevelShedLow, normal from LevelShedNormal, high from LevelCriticalOnly, and
// critical never. A refused request never waits: in a pool with a connection
// limit it takes a slot if one is free at once, and otherwise (or in a pool
// without a limit) it gets its route's degraded action (see Decide).
func Admit(p Priority, l Level) bool { return p.rank() > l }

// Gate is one pool's degraded-mode switch as the request path sees it: the
// admission level, written by the Monitor and read with one atomic load.
//
// Gates are created and owned by a Monitor (Monitor.Gate) and survive
// Configure for as long as their pool stays configured, so a snapshot built
// before a reload keeps a live gate. All methods are safe for concurrent use
// and allocation-free. A nil *Gate is a pool that is never degraded. A Gate
// must not be copied.
type Gate struct {
	// The level is read by every request and written once per window: keep it
	// on a cache line of its own so that nothing written per request shares it.
	_     [64]byte
	level atomic.Uint32
	_     [60]byte
}

// Degraded reports whether the pool is in degraded mode: one atomic load.
func (g *Gate) Degraded() bool { return g != nil && g.level.Load() != 0 }

// Level returns the pool's admission level: one atomic load. LevelNormal for
// a nil Gate.
func (g *Gate) Level() Level {
	if g == nil {
		return LevelNormal
	}
	return Level(g.level.Load())
}

// Admit is Admit(p, g.Level()).
func (g *Gate) Admit(p Priority) bool { return Admit(p, g.Level()) }

func (g *Gate) set(l Level) { g.level.Store(uint32(l)) }

// Action is what a route does while its pool is degraded (the route's
// `on_degraded.action`).
type Action uint8

// Degraded actions.
const (
	// ActionNone: no on_degraded section. The route keeps using the pool,
	// subject to admission; refused requests get the shed answer.
	ActionNone Action = iota
	// ActionStale: serve from the cache regardless of age up to the route's
	// max_stale; on a miss, forward if admitted, else the shed answer.
	ActionStale
	// ActionStatic: refused requests get the route's Static answer.
	ActionStatic
	// ActionShed: refused requests get status 503 or 429 with Retry-After.
	ActionShed
	// ActionCapture: requests with a captured method are journalled and
	// answered 202 when refused (or, with CaptureAlways, whenever the pool is
	// degraded); other methods are admitted or shed.
	ActionCapture
)

// String returns the config name of the action, "" for ActionNone.
func (a Action) String() string {
	switch a {
	case ActionStale:
		return "stale"
	case ActionStatic:
		return "static"
	case ActionShed:
		return "shed"
	case ActionCapture:
		return "capture"
	}
	return ""
}

// ParseAction maps a config value (stale, static, shed, capture, or "" for no
// on_degraded section) to an Action.
func ParseAction(s string) (Action, error) {
	switch s {
	case "":
		return ActionNone, nil
	case "stale":
		return ActionStale, nil
	case "static":
		return ActionStatic, nil
	case "shed":
		return ActionShed, nil
	case "capture":
		return ActionCapture, nil
	}
	return 0, fmt.Errorf("degrade: unknown action %q: want stale, static, shed or capture", s)
}

// Outcome is what the proxy does with one request; see Decide.
type Outcome uint8

// Outcomes of Decide.
const (
	// OutcomeForward: the normal path (cache, then the pool).
	OutcomeForward Outcome = iota
	// OutcomeStale: answer from the cache up to max_stale past expiry; on a
	// miss, forward if Admit allows, else OutcomeShed.
	OutcomeStale
	// OutcomeStatic: answer with the route's Static.
	OutcomeStatic
	// OutcomeShed: answer the route's shed status (503 by default) with
	// Retry-After.
	OutcomeShed
	// OutcomeCapture: hand the request to the capture journal (202).
	OutcomeCapture
	// OutcomeFreeSlot: the level refuses the request's priority, but its pool
	// caps connections, so the balancer knows whether a slot is free: forward
	// if one is free now, without queueing; else the route's action, at once
	// (what Decide would have answered without a limit). A free slot is never
	// left idle while a request is refused.
	OutcomeFreeSlot
)

// String returns a short name for logs and metric labels.
func (o Outcome) String() string {
	switch o {
	case OutcomeForward:
		return "forward"
	case OutcomeStale:
		return "stale"
	case OutcomeStatic:
		return "static"
	case OutcomeShed:
		return "shed"
	case OutcomeCapture:
		return "capture"
	case OutcomeFreeSlot:
		return "free-slot"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// Capture says whether a request is one its route journals while degraded,
// and when.
type Capture uint8

// Capture values.
const (
	// CaptureNo: the route does not capture, or not this method.
	CaptureNo Capture = iota
	// CaptureRefused: journalled when admission refuses it or no slot frees in
	// time; admitted orders go to the backends (on_degraded.when: refused,
	// the default), which keeps them at full use with real checkouts.
	CaptureRefused
	// CaptureAlways: journalled whenever the pool is degraded (when:
	// degraded), for backends that should get no orders at all meanwhile.
	CaptureAlways
)

// Decide is the whole degraded-mode policy for one request, as a pure function
// of the pool's level, the route's priority and action, whether and when the
// request's method is captured, and whether the pool caps connections per
// backend (limited). It allocates nothing.
//
//   - Not degraded (LevelNormal): forward.
//   - capture, CaptureAlways: capture.
//   - stale: the cache first, whatever the priority, because a stale page
//     costs the backends nothing; on a miss the proxy forwards if Admit
//     allows, else takes a free slot if the pool is limited (as
//     OutcomeFreeSlot), else answers busy.
//   - admitted: forward, into the pool's queue, ordered by priority. A
//     forwarded request that then finds no slot in time, or whose predicted
//     wait exceeds its deadline, gets its route's action too (the proxy's
//     refuse), so a captured order admitted here is journalled rather than
//     failed.
//   - refused by the level in a limited pool: OutcomeFreeSlot. Work
//     conservation: the level says the pool is saturated, but shedding is
//     for when there is no capacity, and the balancer knows exactly when
//     there is; a refused request that finds a slot free is served.
//   - otherwise (refused, no limit) the route's action: capture for a
//     captured method, static for static, shed for everything else (shed,
//     none, and capture's other methods). The proxy first answers a refused
//     request from the cache when it holds a fresh copy.
//
// Requests that are not forwarded, and that would have reached the pool in
// normal mode, should be counted with Recorder.Divert so that the monitor
// knows the demand it is holding back; answers from the cache should not.
func Decide(l Level, p Priority, a Action, c Capture, limited bool) Outcome {
	if l == LevelNormal {
		return OutcomeForward
	}
	captured := a == ActionCapture && c != CaptureNo
	switch {
	case captured && c == CaptureAlways:
		return OutcomeCapture
	case a == ActionStale:
		return OutcomeStale
	case Admit(p, l):
		return OutcomeForward
	case limited:
		return OutcomeFreeSlot
	case captured:
		return OutcomeCapture
	case a == ActionStatic:
		return OutcomeStatic
	}
	return OutcomeShed
}

// Reserve returns how many of a backend's limit connections to reserve for
// critical requests: ceil(limit × share), at least 1 when share > 0, and never
// all of them (a backend with limit 1 reserves none), so that other traffic
// always has a slot to use. limit <= 0 (no limit) reserves nothing: without a
// limit there is nothing to run out of. The wiring computes it once per pool
// generation and hands it to the balancer.
func Reserve(limit int64, share float64) int64 {
	if limit <= 1 || !(share > 0) {
		return 0
	}
	// The epsilon keeps 30 × 0.1 (3.0000000000000004 in binary) at 3.
	r := int64(math.Ceil(float64(limit)*math.Min(share, 1) - 1e-9))
	return max(1, min(r, limit-1))
}
