package degrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Defaults of MonitorOptions and PoolConfig.
const (
	// DefaultWindow is the sampling window (conf: degrade.window).
	DefaultWindow = 2 * time.Second
	// DefaultWindows is how many consecutive windows a condition must hold
	// (conf: degrade.windows).
	DefaultWindows = 2
	// DefaultMinRequests is the fewest forwarded requests in a window for its
	// p95 latency, error rate and demand to count: 3 failures out of 5 are not
	// a 60% error rate worth degrading a site for.
	DefaultMinRequests = 20
)

// Sentinel errors, tested with errors.Is.
var (
	// ErrUnknownPool means the pool is not configured in the Monitor.
	ErrUnknownPool = errors.New("degrade: unknown pool")
	// ErrClosed means Close was called.
	ErrClosed = errors.New("degrade: monitor closed")
)

// Mode is a pool's degraded-mode state.
type Mode uint8

// Modes.
const (
	ModeNormal Mode = iota
	ModeDegraded
)

// String returns "normal" or "degraded", the admin API's and the
// transitions metric's `to` label.
func (m Mode) String() string {
	if m == ModeDegraded {
		return "degraded"
	}
	return "normal"
}

// Override is the admin API's hold on a pool's mode.
type Override uint8

// Overrides. The zero value is OverrideAuto.
const (
	// OverrideAuto: the mode follows the signals.
	OverrideAuto Override = iota
	// OverrideDegraded: the pool is degraded whatever the signals say; the
	// admission level still follows them (at least LevelShedLow).
	OverrideDegraded
	// OverrideNormal: the pool is normal whatever the signals say; nothing is
	// refused (the balancer's critical reservation still applies).
	OverrideNormal
)

// String returns "auto", "degraded" or "normal", as in the admin API.
func (o Override) String() string {
	switch o {
	case OverrideDegraded:
		return "degraded"
	case OverrideNormal:
		return "normal"
	}
	return "auto"
}

// ParseOverride maps the admin API's mode ("auto", "degraded", "normal") to
// an Override.
func ParseOverride(s string) (Override, error) {
	switch s {
	case "auto":
		return OverrideAuto, nil
	case "degraded":
		return OverrideDegraded, nil
	case "normal":
		return OverrideNormal, nil
	}
	return 0, fmt.Errorf("degrade: unknown mode %q: want auto, degraded or normal", s)
}

// MonitorOptions configures NewMonitor. The zero value is usable.
type MonitorOptions struct {
	// Window is the default sampling window of pools that set none, and the
	// longest the ticker sleeps. <= 0 means DefaultWindow; below MinWindow
	// means MinWindow, above MaxWindow MaxWindow.
	Window time.Duration
	// Now is the clock used by Run, Configure and SetOverride; nil means
	// time.Now. Tests inject one and call Step instead of Run.
	Now func() time.Time
	// Logger receives one record per transition (Warn on entry, Info on
	// exit), with the pool, the reason and the level. nil discards them.
	Logger *slog.Logger
	// OnTransition, if set, is called after every change of a pool's mode,
	// from the goroutine that caused it (Run's, or SetOverride's caller),
	// outside the Monitor's lock: it may call Status but should return
	// quickly, since the next window waits for it. Transitions of one pool
	// are delivered in order unless SetOverride races with a window.
	OnTransition func(Transition)
}

// PoolConfig is one pool's degraded-mode settings, built by the wiring from
// the pool's `degrade` section. A PoolConfig with zero Enter never degrades
// automatically (a pool without a `degrade` section); its gate still follows
// the admin override.
type PoolConfig struct {
	// Name is the pool's name, unique in a Configure call.
	Name string
	// Source samples the pool's connection slots and queue; nil leaves
	// inflight_ratio, queue_wait and healthy_capacity without data.
	Source SignalSource
	// Enter: the pool enters degraded mode when any signal reaches its Enter
	// threshold for Windows consecutive windows. Exit: it leaves when every
	// signal has been under its Exit threshold for Hold (and at least Windows
	// windows). Exit must set exactly the signals Enter sets, each strictly
	// on the calm side of its Enter value: that gap is the hysteresis.
	Enter, Exit Thresholds
	// Hold is how long the calm must last before leaving degraded mode; 0
	// means Windows windows.
	Hold time.Duration
	// Window is the pool's sampling window; 0 means MonitorOptions.Window.
	Window time.Duration
	// Windows is the consecutive windows a condition must hold; 0 means
	// DefaultWindows.
	Windows int
	// MinRequests is the fewest forwarded requests in a window for p95
	// latency, error rate and demand to count; 0 means DefaultMinRequests.
	MinRequests int
}

// Transition is one change of a pool's mode, passed to
// MonitorOptions.OnTransition.
type Transition struct {
	Pool     string
	From, To Mode
	// Level is the admission level published with the new mode.
	Level Level
	// Reason says why: the signal that crossed its threshold
	// ("p95_latency 1.2s > 800ms"), the calm that ended it, or
	// "admin override: ...".
	Reason string
	At     time.Time
	// Signals are those of the window that caused the transition (the latest
	// window for an override).
	Signals Signals
}

// Status is a pool's degraded-mode state for the admin API's
// GET /api/v1/pools/{pool}/mode. It is a plain value.
type Status struct {
	Pool string
	// Mode is the effective mode: the override's if one is set, else Auto.
	Mode Mode
	// Auto is what the signals say, whatever the override.
	Auto     Mode
	Override Override
	// Level is the admission level the gate publishes.
	Level Level
	// Reason is why the pool is in Mode (empty for a pool that has always
	// been normal), and Since when it got there.
	Reason string
	Since  time.Time
	// Signals are the latest window's.
	Signals Signals
	// Transitions counts the pool's mode changes since it was first
	// configured.
	Transitions uint64
}

// PoolStats are one pool's counters for metrics: floodgate_degraded{pool} is
// Mode, floodgate_degrade_transitions_total{pool,to} is ToDegraded and
// ToNormal. The counters live as long as the pool stays configured.
type PoolStats struct {
	Pool                 string
	Mode                 Mode
	Level                Level
	ToDegraded, ToNormal uint64
}

// Monitor is the degraded-mode controller of every pool, in the manner of
// Envoy's overload manager: off the request path, a ticker samples each
// pool's saturation signals once per window, runs them through triggers with
// hysteresis (enter and exit thresholds, consecutive windows, a hold time),
// and publishes the outcome as one atomic word per pool, the Gate, which the
// request path reads with a single load. Where Envoy's actions scale with one
// resource's pressure, the published level here steps one priority class at a
// time, up at once when saturation persists and down only after Windows
// windows proving that the traffic let back in will fit.
//
// Create one per process with NewMonitor, feed it pools with Configure on
// every reload, and run it with Run. All methods are safe for concurrent use.
// A Monitor must not be copied; the zero value is not usable.
type Monitor struct {
	window       time.Duration
	now          func() time.Time
	log          *slog.Logger
	onTransition func(Transition)

	mu     sync.Mutex
	pools  map[string]*pool
	list   []*pool // pools sorted by name, for Step, Statuses and Stats
	closed bool
	done   chan struct{}
	wg     sync.WaitGroup
}

// NewMonitor returns a Monitor without pools.
func NewMonitor(opts MonitorOptions) *Monitor {
	m := &Monitor{
		window:       opts.Window,
		now:          opts.Now,
		log:          opts.Logger,
		onTransition: opts.OnTransition,
		pools:        make(map[string]*pool),
		done:         make(chan struct{}),
	}
	if m.window <= 0 {
		m.window = DefaultWindow
	}
	m.window = min(max(m.window, MinWindow), MaxWindow)
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	return m
}

// Configure applies a new set of pools, as a whole or not at all: it returns
// every problem found, joined, and changes nothing if there is one. Pools
// that stay keep their mode, level, override, counters, gate and recorder,
// and take the new thresholds at the next window; new pools start normal;
// pools left out are dropped, their gates set back to LevelNormal so that a
// snapshot still holding one admits everything. It is Prepare then Commit.
//
// Call it after swapping in the generation built from the same config: the
// sources read that generation's pools. Gate and Recorder may be called
// before, while the generation is built.
func (m *Monitor) Configure(pools []PoolConfig) error {
	plan, err := m.Prepare(pools)
	if err != nil {
		return err
	}
	plan.Commit()
	return nil
}

// Plan is a Configure checked and made ready but not applied: Prepare returns
// it and Commit applies it, which cannot fail. Its gates and recorders are the
// ones the pools have once it is committed (those in service for pools that
// stay, new ones for new pools), so a control plane builds a generation over
// them, commits the plan with the generation, or drops both, and nothing
// changed. A Plan is immutable; commit it once.
type Plan struct {
	m     *Monitor
	cfgs  []PoolConfig
	pools map[string]*pool
}

// Prepare checks a new set of pools (see Configure) and returns the Plan that
// applies it, or every problem found, joined. It changes nothing: the pools it
// makes for new names are the Plan's until Commit. Prepare and Commit of one
// Plan are meant to be called by one goroutine, the control plane's; a Plan
// committed after another still applies whole.
func (m *Monitor) Prepare(pools []PoolConfig) (*Plan, error) {
	cfgs := make([]PoolConfig, len(pools))
	var errs []error
	seen := make(map[string]int, len(pools))
	for i, c := range pools {
		if j, dup := seen[c.Name]; dup {
			errs = append(errs, fmt.Errorf("pools[%d]: name %q duplicates pools[%d]", i, c.Name, j))
			continue
		}
		seen[c.Name] = i
		c, err := m.normalize(c)
		if err != nil {
			errs = append(errs, fmt.Errorf("pools[%d] (%s): %w", i, c.Name, err))
		}
		cfgs[i] = c
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("degrade: configure: %w", err)
	}
	plan := &Plan{m: m, cfgs: cfgs, pools: make(map[string]*pool, len(cfgs))}
	m.mu.Lock()
	now := m.now()
	for _, c := range cfgs {
		p := m.pools[c.Name]
		if p == nil {
			p = newPool(c.Name, now)
		}
		plan.pools[c.Name] = p
	}
	m.mu.Unlock()
	return plan, nil
}

// Gate returns the named pool's gate as it is once the Plan is committed, or
// nil for a pool the Plan does not name.
func (pl *Plan) Gate(pool string) *Gate {
	if p := pl.pools[pool]; p != nil {
		return p.gate
	}
	return nil
}

// Recorder returns the named pool's recorder, like Gate.
func (pl *Plan) Recorder(pool string) *Recorder {
	if p := pl.pools[pool]; p != nil {
		return p.rec
	}
	return nil
}

// Commit applies the Plan. It cannot fail.
func (pl *Plan) Commit() {
	m := pl.m
	m.mu.Lock()
	defer m.mu.Unlock()
	next := make(map[string]*pool, len(pl.cfgs))
	for _, c := range pl.cfgs {
		p := pl.pools[c.Name]
		p.configure(c)
		next[c.Name] = p
	}
	for name, p := range m.pools {
		if next[name] != p {
			p.gate.set(LevelNormal)
		}
	}
	m.pools = next
	m.relist()
}

// normalize fills in c's defaults and validates it: the trigger by
// Trigger.Check, the rule conf checks the file with.
func (m *Monitor) normalize(c PoolConfig) (PoolConfig, error) {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name: empty"))
	}
	if c.Window == 0 {
		c.Window = m.window
	}
	if c.Windows == 0 {
		c.Windows = DefaultWindows
	}
	if c.MinRequests == 0 {
		c.MinRequests = DefaultMinRequests
	}
	if c.MinRequests < 0 {
		errs = append(errs, fmt.Errorf("min requests: %d: must be >= 1", c.MinRequests))
	}
	for _, p := range c.Trigger().Check() {
		errs = append(errs, p)
	}
	return c, errors.Join(errs...)
}

// relist rebuilds the sorted pool list. m.mu must be held.
func (m *Monitor) relist() {
	m.list = m.list[:0]
	for _, p := range m.pools {
		m.list = append(m.list, p)
	}
	slices.SortFunc(m.list, func(a, b *pool) int { return strings.Compare(a.name, b.name) })
}

// lookup returns the named pool, creating an unconfigured one (never
// automatically degraded) if there is none. m.mu must be held.
func (m *Monitor) lookup(name string) *pool {
	p := m.pools[name]
	if p == nil {
		p = newPool(name, m.now())
		p.configure(PoolConfig{Name: name, Window: m.window, Windows: DefaultWindows, MinRequests: DefaultMinRequests})
		m.pools[name] = p
		m.relist()
	}
	return p
}

// Gate returns the named pool's gate, for the snapshot builder. The same
// *Gate is returned for as long as the pool stays configured. An unknown name
// gets a pool that is never degraded automatically until Configure names it,
// so a generation can be built before Configure is called for it. Safe for
// concurrent use; takes the Monitor's lock, so call it at build time, not per
// request.
func (m *Monitor) Gate(pool string) *Gate {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lookup(pool).gate
}

// Recorder returns the named pool's request recorder, like Gate.
func (m *Monitor) Recorder(pool string) *Recorder {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lookup(pool).rec
}

// SetOverride sets the admin override of a pool and applies it at once (not
// at the next window). It returns ErrUnknownPool, wrapped, for a pool that is
// not configured. The override survives Configure while the pool stays, but
// not a restart.
func (m *Monitor) SetOverride(pool string, o Override) error {
	if o > OverrideNormal {
		return fmt.Errorf("degrade: pool %q: invalid override %d", pool, o)
	}
	m.mu.Lock()
	p := m.pools[pool]
	if p == nil {
		m.mu.Unlock()
		return fmt.Errorf("%w %q", ErrUnknownPool, pool)
	}
	p.override = o
	tr, ok := p.settle(m.now())
	m.mu.Unlock()
	if ok {
		m.emit(tr)
	}
	return nil
}

// Status returns the named pool's state, and false if it is not configured.
func (m *Monitor) Status(pool string) (Status, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pools[pool]
	if p == nil {
		return Status{}, false
	}
	return p.status(), true
}

// Statuses returns every pool's state, sorted by pool name.
func (m *Monitor) Statuses() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Status, len(m.list))
	for i, p := range m.list {
		out[i] = p.status()
	}
	return out
}

// Stats returns every pool's counters for metrics, sorted by pool name.
func (m *Monitor) Stats() []PoolStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]PoolStats, len(m.list))
	for i, p := range m.list {
		out[i] = PoolStats{Pool: p.name, Mode: p.mode, Level: p.gate.Level(), ToDegraded: p.toDegraded, ToNormal: p.toNormal}
	}
	return out
}

// Step evaluates every pool whose window has elapsed at now: it computes the
// window's signals, steps the pool's state machine and publishes its gate.
// Run calls it once per tick; tests call it directly with a synthetic clock.
// A pool is evaluated when at least 90% of its window has passed since its
// last evaluation (timers fire late, never early, but a tick shorter than the
// window must not run it early either); the signals use the real elapsed
// time.
func (m *Monitor) Step(now time.Time) {
	var trs []Transition
	m.mu.Lock()
	for _, p := range m.list {
		if tr, ok := p.step(now); ok {
			trs = append(trs, tr)
		}
	}
	m.mu.Unlock()
	m.emit(trs...)
}

// emit logs transitions and hands them to OnTransition. It must be called
// without m.mu held.
func (m *Monitor) emit(trs ...Transition) {
	for _, tr := range trs {
		lvl, msg := slog.LevelInfo, "degrade: pool left degraded mode"
		if tr.To == ModeDegraded {
			lvl, msg = slog.LevelWarn, "degrade: pool entered degraded mode"
		}
		m.log.LogAttrs(context.Background(), lvl, msg,
			slog.String("pool", tr.Pool), slog.String("reason", tr.Reason), slog.String("level", tr.Level.String()))
		if m.onTransition != nil {
			m.onTransition(tr)
		}
	}
}

// tick is how long Run sleeps between Steps: the shortest pool window, at
// most MonitorOptions.Window.
func (m *Monitor) tick() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := m.window
	for _, p := range m.list {
		d = min(d, p.cfg.Window)
	}
	return d
}

// Run calls Step every tick until ctx is done or Close is called, then
// returns nil; it returns ErrClosed at once after Close. It blocks, so run it
// in its own goroutine (errgroup.Go). Several concurrent Runs would each
// step the pools, shortening nothing (a pool's window is measured, not
// counted) but wasting work: run one.
func (m *Monitor) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	m.wg.Add(1)
	m.mu.Unlock()
	defer m.wg.Done()

	t := time.NewTimer(m.tick())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-m.done:
			return nil
		case <-t.C:
			m.Step(m.now())
			// Re-read the tick: Configure may have added a shorter window.
			t.Reset(m.tick())
		}
	}
}

// Close stops Run and waits for it to return. Gates keep their last level.
// Close is idempotent and safe for concurrent use.
func (m *Monitor) Close() {
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		close(m.done)
	}
	m.mu.Unlock()
	m.wg.Wait()
}
