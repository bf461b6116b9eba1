package registry

import (
	"context"
	"fmt"
	"slices"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/floodgate/floodgate/balancer"
	"github.com/floodgate/floodgate/health"
	"github.com/floodgate/floodgate/internal/panics"
	"github.com/floodgate/floodgate/proxy"
)

// Run is the watcher: it builds a generation from the current contents, swaps it
// into the data plane, then blocks on a WatchSet over every table until a
// transaction commits, and starts again. Commits that land while a build runs are
// coalesced into the next one. A failed build (which check makes a bug, not an
// input error) is logged and reported to the writers waiting for it; the previous
// generation keeps serving. Run returns nil when ctx ends; call it once.
func (r *Registry) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("registry: Run called twice")
	}
	defer func() {
		// Removals in progress see done and end; wait for them, so that
		// nothing of the registry runs after Run has returned.
		close(r.done)
		r.remMu.Lock()
		r.remClosed = true
		r.remMu.Unlock()
		r.remWG.Wait()
	}()
	built := false
	for {
		txn := r.db.Txn(false)
		ws := memdb.NewWatchSet()
		for _, table := range []string{tablePools, tableBackends, tableRoutes, tableMeta} {
			it, err := txn.Get(table, indexID)
			if err != nil {
				return fmt.Errorf("registry: %w", err)
			}
			ws.Add(it.WatchCh())
		}
		idx := metaValue(txn, metaIndex)
		// The first pass builds even an empty registry, so the data plane has
		// a snapshot from the start.
		if !built || idx > r.applied.Load().idx {
			err := r.safely("registry build", func() error { return r.build(txn, idx) })
			if err != nil {
				r.log.Error("registry: generation not applied, the previous one keeps serving", "generation", idx, "error", err.Error())
			}
			r.publish(idx, err)
			built = true
		}
		if err := ws.WatchCtx(ctx); err != nil {
			return nil
		}
	}
}

// safely runs fn and turns a panic in it into an error, after package panics
// has counted and logged it: a bug met while building one generation fails
// that generation (the previous one keeps serving, its writers get the error)
// instead of ending the watcher, and with it the process.
func (r *Registry) safely(where string, fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			panics.Contain(r.log, where, v)
			err = fmt.Errorf("%s: internal error: %v", where, v)
		}
	}()
	return fn()
}

// publish records the outcome of the build for idx and wakes waiters.
func (r *Registry) publish(idx uint64, err error) {
	old := r.applied.Load()
	r.applied.Store(&applied{idx: idx, err: err, ch: make(chan struct{})})
	close(old.ch)
}

// build turns the registry contents in txn into the next generation and swaps
// it in. Only Run calls it.
func (r *Registry) build(txn *memdb.Txn, idx uint64) error {
	poolRows := all[poolRow](txn, tablePools)
	slices.SortFunc(poolRows, func(a, b *poolRow) int { return a.Order - b.Order })
	routeRows := all[routeRow](txn, tableRoutes)
	slices.SortFunc(routeRows, func(a, b *routeRow) int { return a.Order - b.Order })

	states := make(map[string]*balancer.BackendState, len(r.states))
	pstates := make(map[string]*balancer.PoolState, len(poolRows))
	spec := proxy.Spec{Gen: idx}
	view := &View{Gen: idx, Pools: make([]*PoolView, 0, len(poolRows))}
	var probes []health.Probe
	var removing []*balancer.BackendState
	for _, p := range poolRows {
		c := p.Config
		ps := r.pools[p.Name]
		if ps == nil {
			ps = balancer.NewPoolState(p.Name)
		}
		pstates[p.Name] = ps
		opts := balancer.PoolOptions{
			Name:               p.Name,
			State:              ps,
			MaxConnsPerBackend: int64(c.MaxConnsPerBackend),
			QueueMax:           c.QueueMax,
			QueueTimeout:       c.QueueTimeout,
			SlowStart:          c.SlowStart,
			MaxFails:           c.MaxFails,
			EjectFor:           c.EjectFor,
			MaxEjectionPercent: c.MaxEjectionPercent,
			Reserved:           c.Reserved,
			Logger:             r.log,
			Staged:             true, // adopted below, once in service
		}
		pv := &PoolView{Name: p.Name, Config: c, State: ps}
		for _, b := range poolBackends(txn, p.Name) {
			id := BackendID(b.Pool, b.Address)
			st := r.states[id]
			if st == nil {
				if c.activeHealth() && !b.StartUp {
					st = balancer.NewBackendStateDown(id) // health-gated addition
				} else {
					st = balancer.NewBackendState(id)
				}
			}
			states[id] = st
			bv := &BackendView{Pool: b.Pool, Address: b.Address, Weight: b.Weight, Drain: b.Drain,
				Removing: b.Removing, Source: b.Source, Overridden: b.Overridden, FileWeight: b.FileWeight, State: st}
			pv.Backends = append(pv.Backends, bv)
			opts.Backends = append(opts.Backends, balancer.BackendSpec{Address: b.Address, Weight: bv.EffectiveWeight(), State: st})
			if b.Removing {
				// No prober: it would mark the backend up again.
				removing = append(removing, st)
				continue
			}
			check := c.Health
			if !c.activeHealth() {
				check = health.Check{Type: health.TypeNone}
			}
			probes = append(probes, health.Probe{Pool: b.Pool, Address: b.Address, Check: check, Target: st, StartUp: b.StartUp})
		}
		bp, err := balancer.NewPool(opts)
		if err != nil {
			return err
		}
		pspec := proxy.PoolSpec{
			Pool:               bp,
			ConnectTimeout:     c.ConnectTimeout,
			ResponseTimeout:    c.ResponseTimeout,
			Retries:            c.Retries,
			MaxConnsPerBackend: c.MaxConnsPerBackend,
		}
		if r.degrade != nil {
			pspec.Gate, pspec.Recorder = r.degrade(p.Name)
		}
		spec.Pools = append(spec.Pools, pspec)
		view.Pools = append(view.Pools, pv)
	}
	for _, rt := range routeRows {
		spec.Routes = append(spec.Routes, rt.Spec)
	}
	snap, err := r.dp.Build(spec)
	if err != nil {
		return err
	}

	// Commit: nothing below fails.
	r.dp.Swap(snap)
	for _, ps := range spec.Pools {
		ps.Pool.Adopt()
	}
	r.states, r.pools = states, pstates
	for _, ps := range pstates {
		ps.Kick()
	}
	if r.hc != nil {
		r.hc.Sync(probes)
	} else {
		for _, pv := range view.Pools {
			for _, b := range pv.Backends {
				if !b.Removing {
					b.State.SetProbeUp(true)
				}
			}
		}
	}
	// Sync has stopped their probers: from now on no generation, old or new,
	// picks these backends (Up reads the shared state), and a DELETE can wait
	// for their in-flight count to reach zero.
	for _, st := range removing {
		st.SetProbeUp(false)
	}
	r.view.Store(view)
	r.log.Info("registry: generation applied", "generation", idx, "pools", len(view.Pools), "routes", len(spec.Routes))
	return nil
}
