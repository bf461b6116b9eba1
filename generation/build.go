package generation

import (
	"fmt"
	"log/slog"
	"reflect"

	"github.com/floodgate/floodgate/balancer"
	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/health"
	"github.com/floodgate/floodgate/proxy"
	"github.com/floodgate/floodgate/registry"
)

// Generation is one built generation, ready to be committed or dropped. It is
// immutable; nothing it holds is in service until Commit.
type Generation struct {
	// Gen is the registry index it was built from.
	Gen uint64

	snap    *proxy.Snapshot
	pools   []*balancer.Pool // staged: adopted by Commit
	states  map[string]*balancer.BackendState
	pstates map[string]*balancer.PoolState
	probes  []health.Probe
	// removing are the states of backends being removed: Commit marks them
	// down once their probers are stopped.
	removing []*balancer.BackendState
	// policy is the monitor's input, without its sources; plan is nil when
	// it equals the previous generation's (the monitor keeps its windows).
	policy []policy
	plan   *degrade.Plan
	gates  map[string]gate
	view   *View
	routes int
}

// policy is one pool's degraded-mode input, comparable across generations.
// The connection limits are not part of it: the monitor's source reads them
// from the generation in service (degrade.PoolSource), so a change of a
// backend's max_conns keeps the monitor's windows.
type policy struct {
	name    string
	degrade Degrade
}

// gate is a pool's degraded-mode gate and recorder.
type gate struct {
	g *degrade.Gate
	r *degrade.Recorder
}

// View returns the generation as the admin API sees it.
func (g *Generation) View() *View { return g.view }

// Build turns registry contents into a Generation. It is pure: it reads prev
// (the generation in service, nil before the first) for the live state to
// carry over by key, reads the data plane's tables and the monitor's pools,
// and writes nothing any of them serve from. Every check that could fail a
// commit runs here: the balancer's pool rules (balancer.ValidatePool, through
// NewPool), the health checks, the proxy's routes, and the monitor's Prepare.
func (m *Manager) Build(c *registry.Contents, prev *Generation) (*Generation, error) {
	g := &Generation{
		Gen:     c.Index,
		states:  make(map[string]*balancer.BackendState),
		pstates: make(map[string]*balancer.PoolState, len(c.Pools)),
		view:    &View{Gen: c.Index, Pools: make([]*PoolView, 0, len(c.Pools))},
	}
	var prevStates map[string]*balancer.BackendState
	var prevPools map[string]*balancer.PoolState
	if prev != nil {
		prevStates, prevPools = prev.states, prev.pstates
	}
	settings := make([]PoolSettings, len(c.Pools))
	for i := range c.Pools {
		s, ok := c.Pools[i].Settings.(PoolSettings)
		if !ok && c.Pools[i].Settings != nil {
			return nil, fmt.Errorf("generation: pool %q: settings of type %T, want generation.PoolSettings", c.Pools[i].Name, c.Pools[i].Settings)
		}
		settings[i] = s
		g.policy = append(g.policy, policy{name: c.Pools[i].Name, degrade: s.Degrade})
	}
	if err := m.prepareMonitor(g, prev); err != nil {
		return nil, err
	}

	spec := proxy.Spec{Gen: c.Index}
	for i, p := range c.Pools {
		s := settings[i]
		if err := s.Health.Validate(); err != nil {
			return nil, fmt.Errorf("pool %q: health: %w", p.Name, err)
		}
		ps := prevPools[p.Name]
		if ps == nil {
			ps = balancer.NewPoolState(p.Name)
		}
		g.pstates[p.Name] = ps
		opts := poolOptions(p.Name, s, ps, m.log)
		pv := &PoolView{Name: p.Name, Config: s, State: ps}
		for _, b := range p.Backends {
			id := b.ID()
			st := prevStates[id]
			if st == nil {
				if s.activeHealth() && !b.StartUp {
					st = balancer.NewBackendStateDown(id) // health-gated addition
				} else {
					st = balancer.NewBackendState(id)
				}
			}
			g.states[id] = st
			bv := &BackendView{Backend: b, State: st, Limit: int64(s.MaxConnsPerBackend)}
			if b.MaxConns > 0 {
				bv.Limit = int64(b.MaxConns)
			}
			pv.Backends = append(pv.Backends, bv)
			spec := balancer.BackendSpec{Address: b.Address, Weight: b.EffectiveWeight(), State: st}
			if b.MaxConns > 0 {
				spec.MaxConns = int64(b.MaxConns)
				spec.Reserved = degrade.Reserve(spec.MaxConns, s.CriticalShare)
			}
			opts.Backends = append(opts.Backends, spec)
			if b.Removing {
				// No prober: it would mark the backend up again.
				g.removing = append(g.removing, st)
				continue
			}
			check := s.Health
			if !s.activeHealth() {
				check = health.Check{Type: health.TypeNone}
			}
			g.probes = append(g.probes, health.Probe{Pool: b.Pool, Address: b.Address, Check: check, Target: st, StartUp: b.StartUp})
		}
		bp, err := balancer.NewPool(opts) // staged: records nothing in the states
		if err != nil {
			return nil, err
		}
		g.pools = append(g.pools, bp)
		gt := g.gates[p.Name]
		spec.Pools = append(spec.Pools, proxy.PoolSpec{
			Pool:               bp,
			ConnectTimeout:     s.ConnectTimeout,
			ResponseTimeout:    s.ResponseTimeout,
			Retries:            s.Retries,
			MaxConnsPerBackend: s.MaxConnsPerBackend,
			Gate:               gt.g,
			Recorder:           gt.r,
		})
		g.view.Pools = append(g.view.Pools, pv)
	}
	for _, rt := range c.Routes {
		rs, ok := rt.Spec.(proxy.RouteSpec)
		if !ok && rt.Spec != nil {
			return nil, fmt.Errorf("generation: route %q: spec of type %T, want proxy.RouteSpec", rt.Name, rt.Spec)
		}
		rs.Name, rs.Pool = rt.Name, rt.Pool
		spec.Routes = append(spec.Routes, rs)
	}
	snap, err := m.dp.Build(spec)
	if err != nil {
		return nil, err
	}
	g.snap, g.routes = snap, len(spec.Routes)
	return g, nil
}

// poolOptions are the balancer options of a pool, without its backends: the
// one translation from PoolSettings.
func poolOptions(name string, s PoolSettings, ps *balancer.PoolState, log *slog.Logger) balancer.PoolOptions {
	return balancer.PoolOptions{
		Name:               name,
		State:              ps,
		MaxConnsPerBackend: int64(s.MaxConnsPerBackend),
		QueueMax:           s.QueueMax,
		QueueTimeout:       s.QueueTimeout,
		SlowStart:          s.SlowStart,
		MaxFails:           s.MaxFails,
		EjectFor:           s.EjectFor,
		MaxEjectionPercent: s.MaxEjectionPercent,
		Reserved:           degrade.Reserve(int64(s.MaxConnsPerBackend), s.CriticalShare),
		Logger:             log,
		Staged:             true, // adopted by Commit, once in service
	}
}

// prepareMonitor fills g's gates: the previous generation's when the pools'
// degraded-mode input is unchanged (so the monitor's windows go on
// undisturbed), else those of a new Plan that Commit commits.
func (m *Manager) prepareMonitor(g *Generation, prev *Generation) error {
	g.gates = make(map[string]gate, len(g.policy))
	if m.mon == nil {
		return nil
	}
	if prev != nil && reflect.DeepEqual(prev.policy, g.policy) {
		g.gates = prev.gates
		return nil
	}
	cfgs := make([]degrade.PoolConfig, len(g.policy))
	for i, p := range g.policy {
		name := p.name
		cfgs[i] = p.degrade.PoolConfig(name, &degrade.PoolSource{
			Pool: func() *balancer.Pool { return m.currentPool(name) },
		})
	}
	plan, err := m.mon.Prepare(cfgs)
	if err != nil {
		return err
	}
	g.plan = plan
	for _, p := range g.policy {
		g.gates[p.name] = gate{plan.Gate(p.name), plan.Recorder(p.name)}
	}
	return nil
}
