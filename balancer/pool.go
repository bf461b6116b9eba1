package balancer

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/floodgate/floodgate/internal/limits"
)

// Slow start ramps a backend's effective weight from rampFloor/rampOne (~10%) to
// 100% of its weight, in fixed point so the admission test is integer-only.
const (
	rampOne   = 1024
	rampFloor = 102
)

// DefaultMaxEjectionPercent is PoolOptions.MaxEjectionPercent's default.
const DefaultMaxEjectionPercent = 50

// minScan is the fewest ring positions a pick examines before falling back to a
// linear pass over the backends; see Pool.scan.
const minScan = 64

// BackendSpec describes one backend of a pool generation.
type BackendSpec struct {
	// Address is the backend's dial address. It must be non-empty and unique in
	// the pool.
	Address string
	// Weight is the backend's share of traffic, 0 to MaxWeight. Weight 0 means
	// draining: never picked, while requests already holding a slot finish.
	Weight int
	// State is the backend's live state, shared with earlier and later
	// generations of the pool. nil gets a fresh NewBackendState(Address), which is
	// only right for a pool that is never rebuilt (tests, one-shot tools).
	State *BackendState
	// MaxConns is this backend's own connection limit (HAProxy's per-server
	// maxconn), for pools whose backends differ in size; 0 means the pool's
	// MaxConnsPerBackend and Reserved. Bounded by limits.CheckMaxConns. Like
	// the pool's, it is a property of the generation: a reload or an admin
	// change builds a new one over the same BackendState, whose in-flight
	// count carries over.
	MaxConns int64
	// Reserved is how many of MaxConns only AcquireCritical may take: the
	// backend's own PoolOptions.Reserved. It must be 0 when MaxConns is 0, and
	// below MaxConns otherwise.
	Reserved int64
}

// PoolOptions configures NewPool. The zero value is a valid, empty pool with no
// connection limits, queue, slow start or passive health.
type PoolOptions struct {
	// Name identifies the pool in errors.
	Name string
	// State holds what must outlive a generation: the wait queue and its
	// statistics. Pass the same PoolState to every generation of a pool so that a
	// slot released in one serves a request queued in another. nil gets a private
	// PoolState.
	State *PoolState
	// Backends in the order Pool.Backends returns them. At most MaxBackends.
	Backends []BackendSpec
	// MaxConnsPerBackend caps the slots Acquire hands out per backend; 0 means
	// unlimited. A backend with a MaxConns of its own (BackendSpec.MaxConns)
	// has that limit instead. The count lives in BackendState, so it spans
	// generations.
	MaxConnsPerBackend int64
	// QueueMax is how many Acquire calls may wait when every eligible backend is
	// at its limit; 0 means none: Acquire fails with ErrQueueFull at once.
	QueueMax int
	// QueueTimeout is how long a queued Acquire waits before ErrQueueTimeout. It
	// must be positive when QueueMax is. Measured with real timers, not Now.
	QueueTimeout time.Duration
	// SlowStart is how long a backend that came up (new, or probe-up again) takes
	// to ramp from ~10% to 100% of its weight; 0 disables slow start.
	SlowStart time.Duration
	// Reserved is how many of each backend's MaxConnsPerBackend slots only
	// AcquireCritical may take, so that critical routes (the back office) stay
	// usable however hard the rest is pushed. 0 = none; it must be below the
	// limit.
	Reserved int64
	// Logger receives a line for each passive ejection; nil discards.
	Logger *slog.Logger
	// MaxFails consecutive failures reported to BackendState.Report eject a
	// backend for EjectFor; 0 disables passive health.
	MaxFails int
	// EjectFor is how long an ejection lasts, doubling when a backend is ejected
	// again soon after re-admission, up to 8x. It must be positive when MaxFails
	// is.
	EjectFor time.Duration
	// MaxEjectionPercent bounds passive health like Envoy's outlier detection:
	// at most this percentage of the weighted backends (rounded down, but at
	// least one) is ejected at once, and the last weighted backend up is never
	// ejected, so that a few dropped connections cannot empty the pool. 0
	// means DefaultMaxEjectionPercent; at most 100.
	MaxEjectionPercent int
	// Now is the clock for slow start and ejection; nil means time.Now. For tests.
	Now func() time.Time
	// Staged builds the pool without recording its settings in the shared
	// BackendStates; call Pool.Adopt once it is in service. Without it NewPool
	// adopts at once, which suits a pool that is never rebuilt.
	Staged bool
}

// Backend is one backend as seen by one pool generation. Index is its position in
// Pool.Backends, so the proxy can keep a parallel slice of upstream clients.
// Backends are built by NewPool and must not be modified; they are safe for
// concurrent use.
type Backend struct {
	Index   int
	Address string
	Weight  int
	State   *BackendState
	// MaxConns is the backend's connection limit in this generation (its
	// own, else the pool's MaxConnsPerBackend; 0 = unlimited) and Reserved
	// the part of it kept for critical requests.
	MaxConns, Reserved int64

	pool *Pool
}

// Pool is one immutable generation of a backend pool: its members, weights and
// limits, and the smooth weighted round-robin ring built from them. Membership or
// weight changes build a new Pool over the same BackendStates and PoolState;
// health changes need no rebuild, because Pick reads the shared state.
//
// A Pool is safe for concurrent use and must not be copied. The zero value is not
// usable; build one with NewPool.
type Pool struct {
	name     string
	state    *PoolState
	backends []*Backend
	// active lists the backends with a non-zero weight, for the linear fallback
	// pass of scan.
	active []uint16
	// ring is one cycle of the smooth WRR schedule, as indices into backends; see
	// buildRing.
	ring []uint16
	// scanLimit is how many ring positions scan examines before falling back to a
	// linear pass over active.
	scanLimit int
	byState   map[*BackendState]*Backend
	policy    *statePolicy // recorded in the BackendStates by Adopt

	reserve      bool // some backend keeps slots for critical requests
	limited      bool // every weighted backend has a limit; see Limited
	queueMax     int
	queueTimeout time.Duration
	slowStart    int64 // nanoseconds
	now          func() time.Time

	errNoHealthy, errQueueFull, errQueueTimeout error
	errWouldWait, errNoWait, errMaxWait         error

	// next is the ring cursor, written by every pick: on its own cache line so it
	// does not slow down reads of the fields above.
	_    [64]byte
	next atomic.Uint64
	_    [56]byte
}

// ValidatePool is the one rule for a valid pool: it returns every problem of
// opts, joined and prefixed with the pool's name, or nil. Weights outside
// [0, MaxWeight], empty or duplicate addresses, a BackendState used twice, more
// than MaxBackends backends, connection limits (the pool's or a backend's own)
// outside limits.CheckMaxConns, negative durations, a reserve not below its
// connection limit, a queue without a timeout, passive health without an
// ejection period. It is pure: NewPool calls it first, and a control plane that
// must know whether a pool would build (before it commits a change) calls it
// without building anything.
func ValidatePool(opts PoolOptions) error {
	var errs []error
	if len(opts.Backends) > MaxBackends {
		errs = append(errs, fmt.Errorf("%d backends: at most %d allowed", len(opts.Backends), MaxBackends))
	}
	if err := limits.CheckMaxConns(opts.MaxConnsPerBackend); err != nil {
		errs = append(errs, fmt.Errorf("max conns per backend: %w", err))
	}
	if opts.QueueMax < 0 {
		errs = append(errs, fmt.Errorf("queue max %d: must be >= 0", opts.QueueMax))
	}
	if opts.QueueTimeout < 0 || (opts.QueueMax > 0 && opts.QueueTimeout == 0) {
		errs = append(errs, fmt.Errorf("queue timeout %v: must be > 0 with a queue", opts.QueueTimeout))
	}
	if opts.Reserved < 0 || (opts.Reserved > 0 && opts.Reserved >= opts.MaxConnsPerBackend) {
		errs = append(errs, fmt.Errorf("reserved %d: must be >= 0 and below max conns per backend %d", opts.Reserved, opts.MaxConnsPerBackend))
	}
	if opts.SlowStart < 0 {
		errs = append(errs, fmt.Errorf("slow start %v: must be >= 0", opts.SlowStart))
	}
	if opts.MaxFails < 0 {
		errs = append(errs, fmt.Errorf("max fails %d: must be >= 0", opts.MaxFails))
	}
	if opts.EjectFor < 0 || (opts.MaxFails > 0 && opts.EjectFor == 0) {
		errs = append(errs, fmt.Errorf("eject for %v: must be > 0 with max fails", opts.EjectFor))
	}
	if opts.MaxEjectionPercent < 0 || opts.MaxEjectionPercent > 100 {
		errs = append(errs, fmt.Errorf("max ejection percent %d: must be in [0, 100]", opts.MaxEjectionPercent))
	}
	addrs := make(map[string]int, len(opts.Backends))
	states := make(map[*BackendState]int, len(opts.Backends))
	for i, spec := range opts.Backends {
		if spec.Address == "" {
			errs = append(errs, fmt.Errorf("backends[%d]: empty address", i))
		} else if j, dup := addrs[spec.Address]; dup {
			errs = append(errs, fmt.Errorf("backends[%d]: address %q duplicates backends[%d]", i, spec.Address, j))
		} else {
			addrs[spec.Address] = i
		}
		if spec.Weight < 0 || spec.Weight > MaxWeight {
			errs = append(errs, fmt.Errorf("backends[%d] (%s): weight %d: must be in [0, %d]", i, spec.Address, spec.Weight, MaxWeight))
		}
		if err := limits.CheckMaxConns(spec.MaxConns); err != nil {
			errs = append(errs, fmt.Errorf("backends[%d] (%s): max conns: %w", i, spec.Address, err))
		}
		if spec.Reserved < 0 || (spec.Reserved > 0 && spec.Reserved >= spec.MaxConns) {
			errs = append(errs, fmt.Errorf("backends[%d] (%s): reserved %d: must be >= 0 and below its max conns %d", i, spec.Address, spec.Reserved, spec.MaxConns))
		}
		if spec.State != nil {
			if j, dup := states[spec.State]; dup {
				errs = append(errs, fmt.Errorf("backends[%d] (%s): state %q already used by backends[%d]", i, spec.Address, spec.State.ID(), j))
			} else {
				states[spec.State] = i
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("balancer: pool %q: %w", opts.Name, err)
	}
	return nil
}

// NewPool validates opts with ValidatePool and builds a pool generation.
//
// On success, unless opts.Staged, it records the pool's passive-health settings,
// clock and PoolState in each BackendState (see Adopt), so Report and
// SetProbeUp follow the newest generation.
// NewPool is safe for concurrent use, but two pools built over the same
// BackendStates at once race for which settings win.
func NewPool(opts PoolOptions) (*Pool, error) {
	if err := ValidatePool(opts); err != nil {
		return nil, err
	}

	p := &Pool{
		name:            opts.Name,
		state:           opts.State,
		backends:        make([]*Backend, len(opts.Backends)),
		byState:         make(map[*BackendState]*Backend, len(opts.Backends)),
		queueMax:        opts.QueueMax,
		queueTimeout:    opts.QueueTimeout,
		slowStart:       int64(opts.SlowStart),
		now:             opts.Now,
		errNoHealthy:    newPoolError(opts.Name, ErrNoHealthyBackend, ""),
		errQueueFull:    newPoolError(opts.Name, ErrQueueFull, fmt.Sprintf("max %d", opts.QueueMax)),
		errQueueTimeout: newPoolError(opts.Name, ErrQueueTimeout, fmt.Sprintf("after %v", opts.QueueTimeout)),
		errWouldWait:    newPoolError(opts.Name, ErrWouldWait, "predicted from the queue ahead"),
		errNoWait:       newPoolError(opts.Name, ErrWouldWait, "no free slot, and the request may not wait"),
		errMaxWait:      newPoolError(opts.Name, ErrQueueTimeout, "after the request's max wait"),
	}
	if p.state == nil {
		p.state = NewPoolState(opts.Name)
	}
	if p.now == nil {
		p.now = time.Now
	}
	weights := make([]int, len(opts.Backends))
	for i, spec := range opts.Backends {
		st := spec.State
		if st == nil {
			st = NewBackendState(spec.Address)
		}
		b := &Backend{Index: i, Address: spec.Address, Weight: spec.Weight, State: st, pool: p,
			MaxConns: opts.MaxConnsPerBackend, Reserved: opts.Reserved}
		if spec.MaxConns > 0 {
			b.MaxConns, b.Reserved = spec.MaxConns, spec.Reserved
		}
		if b.Reserved > 0 {
			p.reserve = true
		}
		p.backends[i] = b
		p.byState[st] = b
		weights[i] = spec.Weight
		if spec.Weight > 0 {
			p.active = append(p.active, uint16(i))
		}
	}
	p.limited = opts.MaxConnsPerBackend > 0
	if len(p.active) > 0 {
		p.limited = true
		for _, i := range p.active {
			if p.backends[i].MaxConns <= 0 {
				p.limited = false
			}
		}
	}
	p.ring = buildRing(weights)
	p.scanLimit = min(len(p.ring), max(minScan, 4*len(p.active)))

	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pct := opts.MaxEjectionPercent
	if pct == 0 {
		pct = DefaultMaxEjectionPercent
	}
	members := make([]*BackendState, 0, len(p.active))
	for _, i := range p.active {
		members = append(members, p.backends[i].State)
	}
	p.policy = &statePolicy{maxFails: int64(opts.MaxFails), ejectFor: int64(opts.EjectFor), now: p.now, log: log, pool: opts.Name,
		members: members, maxEjected: max(1, len(members)*pct/100), ejectMu: &p.state.ejectMu}
	if !opts.Staged {
		p.Adopt()
	}
	return p, nil
}

// Adopt records the pool's passive-health settings, members, clock and
// PoolState in its BackendStates, so that Report and SetProbeUp follow this
// generation from now on. NewPool does it, unless PoolOptions.Staged is set;
// a control plane that builds a generation while the previous one serves
// stages it and adopts it once it is swapped in, so that a build (which may
// yet fail) changes nothing the generation in service reads. Safe for
// concurrent use; calling it again is harmless.
func (p *Pool) Adopt() {
	for _, b := range p.backends {
		b.State.policy.Store(p.policy)
		b.State.owner.Store(p.state)
	}
}

// Name returns the pool's name.
func (p *Pool) Name() string { return p.name }

// State returns the PoolState the pool queues on.
func (p *Pool) State() *PoolState { return p.state }

// Backends returns the pool's backends in spec order, draining ones included. The
// slice is shared: do not modify it.
func (p *Pool) Backends() []*Backend { return p.backends }

// Pick returns the next healthy backend in smooth weighted round-robin order,
// without taking a connection slot (no Release needed). Unhealthy backends are
// skipped and their ring positions consumed, so the others keep their relative
// weights; slow-starting backends get their ramped share. It returns
// ErrNoHealthyBackend, wrapped, when no backend is up. Safe for concurrent use;
// lock-free and allocation-free.
func (p *Pool) Pick() (*Backend, error) {
	if b, v := p.scan(nil, false, false); v == found {
		return b, nil
	}
	return nil, p.errNoHealthy
}

// Acquire is Pick plus a connection slot: it returns the next healthy backend
// other than skip with fewer slots held than its limit (BackendSpec.MaxConns, else
// MaxConnsPerBackend), and takes one.
// The caller must call Release on the result exactly once. It is AcquireTicket
// with the zero Ticket: a normal request of unknown cost.
func (p *Pool) Acquire(skip *Backend) (*Backend, error) { return p.AcquireTicket(skip, Ticket{}) }

// AcquireCritical is Acquire for a critical request: it may also take the slots
// reserved by PoolOptions.Reserved, and a queued critical request is not held up
// by public requests ahead of it that cannot use the reserve.
func (p *Pool) AcquireCritical(skip *Backend) (*Backend, error) {
	return p.AcquireTicket(skip, Ticket{Class: ClassCritical})
}

// AcquireTicket is Acquire for a request described by t.
//
// skip (nil for none) is excluded outright, to retry on another backend; if no
// other backend is healthy it returns ErrNoHealthyBackend. When every eligible
// backend is at its limit, and whenever others already wait, the call queues
// for a Release or Kick in the pool's queue, ordered by class, then expected
// service time (t.Cost), then arrival. It fails with:
//
//   - ErrWouldWait at once when t.MaxWait is negative, or when the expected
//     service time of the waiters ahead of it, over the slots they drain
//     through, exceeds its deadline (t.MaxWait, or QueueTimeout if that is
//     shorter or t.MaxWait is 0): the request learns at arrival what it would
//     otherwise learn at the timeout;
//   - ErrQueueFull if QueueMax calls already wait and none ranks after it (one
//     that does is pushed out with ErrQueueFull and this one takes its place);
//   - ErrQueueTimeout once its deadline has passed in the queue.
//
// ErrWouldWait, ErrQueueFull and ErrQueueTimeout all wrap ErrSaturated. All
// errors are wrapped with the pool's name.
//
// Safe for concurrent use. Without waiters it is lock-free and allocation-free;
// queueing takes the PoolState's lock.
func (p *Pool) AcquireTicket(skip *Backend, t Ticket) (*Backend, error) {
	var ss *BackendState
	if skip != nil {
		ss = skip.State
	}
	critical := t.Class == ClassCritical
	if p.state.waiting.Load() == 0 || (critical && p.reserve) {
		switch b, v := p.scan(ss, true, critical); v {
		case found:
			return b, nil
		case noneUp:
			return nil, p.errNoHealthy
		}
	} else if t.MaxWait < 0 {
		// Others wait, so no slot is idle: lock-free refusal.
		return nil, p.errNoWait
	}
	return p.state.wait(p, ss, t)
}

// Limited reports whether the pool caps connections on every backend it
// sends to (each backend's own MaxConns, else MaxConnsPerBackend): whether it
// can run out of slots at all. One weighted backend without a limit always
// has a free slot.
func (p *Pool) Limited() bool { return p.limited }

// slots is how many requests the pool's up backends serve at once for a
// request of this kind: the sum of their own limits (the reserve counts for
// critical ones only); 0 without a limit. It reads each backend's health: for
// the slow path only.
func (p *Pool) slots(critical bool) int64 {
	if !p.limited {
		return 0
	}
	clk := clock{now: p.now}
	var n int64
	for _, i := range p.active {
		if b := p.backends[i]; b.State.upAt(&clk) {
			n += b.limit(critical)
		}
	}
	return n
}

// Release gives back the slot taken by Acquire. If requests are queued on the
// pool, the slot goes straight to the oldest one that can use it (FIFO, one
// waiter woken per slot: no thundering herd). It works whichever generation is
// current: the slot belongs to the BackendState and the queue to the PoolState.
// Release panics if called more often than Acquire returned b. Safe for
// concurrent use; allocation-free.
func (b *Backend) Release() {
	if b.State.inflight.Add(-1) < 0 {
		panic("balancer: Release without a matching Acquire")
	}
	// The decrement comes first and waiters announce themselves before their
	// last attempt (see PoolState.wait), so either they see this slot or we see
	// them.
	if ps := b.pool.state; ps.waiting.Load() != 0 {
		ps.handoff(b)
	}
}

type verdict uint8

const (
	found   verdict = iota
	noneUp          // no eligible backend at all
	allFull         // eligible backends exist, none with a free slot
)

type outcome uint8

const (
	tryOK outcome = iota
	tryDown
	tryRamp
	tryFull
)

// scan walks the ring from the shared cursor to the first eligible backend,
// taking a slot on it if take is set.
//
// Positions of skipped backends are consumed (the cursor advances past them), so
// with one backend down the rest keep their relative weights exactly: 3/2/1 with
// the 2 down gives 3:1, which skipping without consuming would turn into 5:1.
// The cursor moves with one atomic add, plus one more if anything was skipped.
//
// The ring can hold up to maxRing slots, so after scanLimit positions (a few per
// backend) scan switches to one linear pass over the weighted backends: a pick
// then costs O(backends), not O(ring), when most of the pool is down or full. The
// same pass, ignoring slow start, runs when slow-starting backends were passed
// over by their ramp: slow start shapes shares, it must never refuse traffic.
func (p *Pool) scan(skip *BackendState, take, critical bool) (*Backend, verdict) {
	n := uint64(len(p.ring))
	if n == 0 {
		return nil, noneUp
	}
	start := p.next.Add(1) - 1
	pos := start % n
	clk := clock{now: p.now}
	full, ramped := false, false
	for i := 0; i < p.scanLimit; i++ {
		b := p.backends[p.ring[pos]]
		switch p.try(b, skip, take, critical, &clk, false) {
		case tryOK:
			if i > 0 {
				p.next.Add(uint64(i))
			}
			return b, found
		case tryFull:
			full = true
		case tryRamp:
			ramped = true
		}
		if pos++; pos == n {
			pos = 0
		}
	}
	if ramped || p.scanLimit < len(p.ring) {
		m := uint64(len(p.active))
		j := start % m
		for range m {
			b := p.backends[p.active[j]]
			switch p.try(b, skip, take, critical, &clk, true) {
			case tryOK:
				return b, found
			case tryFull:
				full = true
			}
			if j++; j == m {
				j = 0
			}
		}
	}
	if full {
		return nil, allFull
	}
	return nil, noneUp
}

// try tells whether b can serve now, and takes its slot if take is set.
func (p *Pool) try(b *Backend, skip *BackendState, take, critical bool, clk *clock, ignoreRamp bool) outcome {
	s := b.State
	if s == skip || !s.upAt(clk) {
		return tryDown
	}
	if !ignoreRamp && !p.rampAccept(s, clk) {
		return tryRamp
	}
	if take && !s.take(b.limit(critical)) {
		return tryFull
	}
	return tryOK
}

// rampAccept implements slow start without touching the ring: a backend that
// came up less than SlowStart ago accepts each of its ring slots with probability
// ramp = 10% + 90% * elapsed/SlowStart (Envoy's slow start and nginx Plus's
// slow_start ramp weight linearly the same way). "Probability" is a per-backend
// counter, Bresenham style: slot number t is accepted when floor(t*ramp) moves,
// so exactly a ramp fraction of slots is accepted, with no random source and no
// allocation. Declined slots pass to the next backend in the ring.
//
// A warm backend costs one atomic load (rampFrom == 0), and only in pools with
// slow start; the clock is read only while a ramp is running.
func (p *Pool) rampAccept(s *BackendState, clk *clock) bool {
	if p.slowStart == 0 {
		return true
	}
	from := s.rampFrom.Load()
	if from == 0 {
		return true
	}
	elapsed := clk.nanos() - from
	if elapsed >= p.slowStart {
		s.rampFrom.CompareAndSwap(from, 0)
		return true
	}
	r := uint64(rampFloor)
	if elapsed > 0 {
		r += uint64(math.Round(float64(rampOne-rampFloor) * float64(elapsed) / float64(p.slowStart)))
	}
	t := s.rampTick.Add(1)
	return (t*r)/rampOne != ((t-1)*r)/rampOne
}

// takeFor claims a slot for a queued request: on hint (the backend whose slot
// was just released) if this pool has it and it suits the request, else on the
// next backend in ring order. The hint ignores slow start: the slot is being
// handed over, not added, so the backend's load does not grow.
func (p *Pool) takeFor(skip *BackendState, hint *Backend, critical bool) (*Backend, verdict) {
	if hint != nil && hint.State != skip {
		if b := p.byState[hint.State]; b != nil && b.Weight > 0 {
			clk := clock{now: p.now}
			if p.try(b, skip, true, critical, &clk, true) == tryOK {
				return b, found
			}
		}
	}
	return p.scan(skip, true, critical)
}

// limit is the backend's slot limit for a request: the whole limit for
// critical ones, the limit less the reserve for the others.
func (b *Backend) limit(critical bool) int64 {
	if critical || b.MaxConns <= 0 {
		return b.MaxConns
	}
	return b.MaxConns - b.Reserved
}

// eligible reports whether any weighted backend other than skip is up.
func (p *Pool) eligible(skip *BackendState) bool {
	clk := clock{now: p.now}
	for _, i := range p.active {
		if s := p.backends[i].State; s != skip && s.upAt(&clk) {
			return true
		}
	}
	return false
}
