package generation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/floodgate/floodgate/balancer"
	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/health"
	"github.com/floodgate/floodgate/internal/panics"
	"github.com/floodgate/floodgate/proxy"
	"github.com/floodgate/floodgate/registry"
)

// Dataplane is what generations are built into: *proxy.Server. Build must
// not change what Swap installed (proxy.Server.Build only reads its tables).
type Dataplane interface {
	Build(spec proxy.Spec) (*proxy.Snapshot, error)
	Swap(snap *proxy.Snapshot) *proxy.Snapshot
}

// HealthSyncer runs the active health checks: *health.Checker.
type HealthSyncer interface {
	Sync(want []health.Probe)
}

// Monitor is the pools' degraded-mode controller: *degrade.Monitor. Prepare
// checks a configuration and changes nothing; the Plan's Commit applies it.
type Monitor interface {
	Prepare(pools []degrade.PoolConfig) (*degrade.Plan, error)
}

// Options configures New.
type Options struct {
	// Dataplane receives each generation. Required.
	Dataplane Dataplane
	// Health is synced with every generation's probes. nil runs no probes:
	// every backend counts as up (for tests and tools).
	Health HealthSyncer
	// Monitor is given every generation's degraded-mode policy (when it
	// changed); nil leaves pools without degraded mode.
	Monitor Monitor
	// Logger receives one record per generation and per problem. nil discards.
	Logger *slog.Logger
	// Persist, DrainPoll and DrainSettle are the registry's; see
	// registry.Options.
	Persist     func(registry.State) error
	DrainPoll   time.Duration
	DrainSettle time.Duration
}

// Manager is the registry and the generations built from it: the registry's
// methods (Init, ApplyConfig, Register, Update, Remove, State, WaitApplied)
// are its own, and Run applies what they write. All methods are safe for
// concurrent use. Build it with New and run Run in a goroutine of its own;
// writers block until Run has applied their change.
type Manager struct {
	*registry.Registry

	dp  Dataplane
	hc  HealthSyncer
	mon Monitor
	log *slog.Logger

	cur     atomic.Pointer[Generation] // in service; nil before the first
	view    atomic.Pointer[View]
	running atomic.Bool
	// checked is the generation the latest Check built, for Run to commit
	// instead of building it again; see reuse.
	checked atomic.Pointer[checked]
}

// checked is a generation built by Check, and the generation in service it
// was built over.
type checked struct{ prev, g *Generation }

// New returns a Manager over an empty registry. It fails only if opts lacks a
// Dataplane.
func New(opts Options) (*Manager, error) {
	if opts.Dataplane == nil {
		return nil, errors.New("generation: Options.Dataplane is required")
	}
	m := &Manager{dp: opts.Dataplane, hc: opts.Health, mon: opts.Monitor, log: opts.Logger}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	reg, err := registry.New(registry.Options{
		Logger:      m.log,
		Persist:     opts.Persist,
		Check:       m.Check,
		Probed:      Probed,
		Inflight:    m.inflight,
		DrainPoll:   opts.DrainPoll,
		DrainSettle: opts.DrainSettle,
	})
	if err != nil {
		return nil, err
	}
	m.Registry = reg
	m.view.Store(&View{})
	return m, nil
}

// View returns the generation in service: never nil (empty before the first).
func (m *Manager) View() *View { return m.view.Load() }

// currentPool returns the balancer pool of the generation in service, for the
// monitor's sources.
func (m *Manager) currentPool(name string) *balancer.Pool {
	if g := m.cur.Load(); g != nil {
		return g.snap.Pool(name)
	}
	return nil
}

// inflight is registry.Options.Inflight: the backend's in-flight count in the
// generation in service.
func (m *Manager) inflight(pool, address string) (int64, bool) {
	b := m.View().Backend(pool, address)
	if b == nil {
		return 0, false
	}
	return b.State.Inflight(), true
}

// Check is registry.Options.Check: it builds the generation of c and drops
// it, so that the registry commits only what builds. Build is pure, so this
// changes nothing.
func (m *Manager) Check(c *registry.Contents) error {
	prev := m.cur.Load()
	g, err := m.safely("generation check", func() (*Generation, error) { return m.Build(c, prev) })
	if err == nil {
		m.checked.Store(&checked{prev: prev, g: g})
	}
	return err
}

// reuse returns the generation Check built for index idx, if it can be
// committed as it is: the registry calls Check inside the transaction, after
// its last change, so the contents the latest Check at idx saw are the
// contents committed at idx (a transaction aborted after its Check is
// followed, at the same idx, by another Check). It must also have been built
// over the generation in service now, whose live state it carries over. Build
// being pure, this saves the second build of every write, nothing else.
func (m *Manager) reuse(idx uint64) *Generation {
	p := m.checked.Load()
	if p == nil || p.g.Gen != idx || p.prev != m.cur.Load() {
		return nil
	}
	m.checked.CompareAndSwap(p, nil)
	return p.g
}

// Run is the watcher: it builds the generation of the registry's contents and
// commits it, then waits on the registry's watch channel until a write
// commits, and starts again. Writes that land while a build runs are
// coalesced into the next one. A failed build (which Check makes a bug, not
// an input error) is logged and reported to the writers waiting for it; the
// previous generation keeps serving. Run returns nil when ctx ends, after
// closing the registry; call it once.
func (m *Manager) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("generation: Run called twice")
	}
	defer m.Registry.Close()
	built := false
	var applied uint64
	for {
		c, changed := m.Registry.Snapshot()
		// The first pass builds even an empty registry, so the data plane has
		// a snapshot from the start.
		if !built || c.Index > applied {
			g, err := m.reuse(c.Index), error(nil)
			if g == nil {
				g, err = m.safely("generation build", func() (*Generation, error) { return m.Build(c, m.cur.Load()) })
			}
			if err == nil {
				m.commit(g)
			} else {
				m.log.Error("generation not applied, the previous one keeps serving", "generation", c.Index, "error", err.Error())
			}
			m.Registry.Applied(c.Index, err)
			built, applied = true, c.Index
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		}
	}
}

// safely runs build and turns a panic in it into an error, after package
// panics has counted and logged it: a bug met while building one generation
// fails that generation (the previous one keeps serving, its writers get the
// error) instead of ending the watcher, and with it the process.
func (m *Manager) safely(where string, build func() (*Generation, error)) (g *Generation, err error) {
	defer func() {
		if v := recover(); v != nil {
			panics.Contain(m.log, where, v)
			g, err = nil, fmt.Errorf("%s: internal error: %v", where, v)
		}
	}()
	return build()
}
