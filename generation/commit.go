package generation

// commit puts g in service: the one step that changes what serves, all of it
// or (when Build failed, and commit is not called) none. Nothing in it fails:
// Build has checked everything that could. Only Run calls it, with the
// generations it built, in index order.
func (m *Manager) commit(g *Generation) {
	m.dp.Swap(g.snap)
	m.cur.Store(g) // the monitor's sources read the pools in service
	for _, p := range g.pools {
		p.Adopt()
	}
	for _, ps := range g.pstates {
		ps.Kick()
	}
	if m.hc != nil {
		m.hc.Sync(g.probes)
	} else {
		for _, pv := range g.view.Pools {
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
	for _, st := range g.removing {
		st.SetProbeUp(false)
	}
	// After the swap: the monitor's sources read the pools in service.
	if g.plan != nil {
		g.plan.Commit()
	}
	m.view.Store(g.view)
	m.log.Info("generation applied", "generation", g.Gen, "pools", len(g.view.Pools), "routes", g.routes)
}
