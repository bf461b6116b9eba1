package generation

import (
	"github.com/floodgate/floodgate/balancer"
	"github.com/floodgate/floodgate/registry"
)

// View is one applied generation as the admin API and metrics see it: the pools
// and backends in service, with pointers to their live state. It is immutable
// once published (the live state it points to is atomic); do not modify it.
type View struct {
	// Gen is the registry index the generation was built from (0 before the
	// first).
	Gen uint64
	// Pools in config file order.
	Pools []*PoolView
}

// Pool returns the named pool, or nil.
func (v *View) Pool(name string) *PoolView {
	for _, p := range v.Pools {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Backend returns a backend of a pool, or nil. address may be spelt any way
// registry.CanonicalAddress accepts.
func (v *View) Backend(pool, address string) *BackendView {
	if c, err := registry.CanonicalAddress(address); err == nil {
		address = c
	}
	if p := v.Pool(pool); p != nil {
		for _, b := range p.Backends {
			if b.Address == address {
				return b
			}
		}
	}
	return nil
}

// PoolView is one pool of a View.
type PoolView struct {
	// Name is the pool's name.
	Name string
	// Config is the pool's settings.
	Config PoolSettings
	// State is the pool's queue, shared by its generations.
	State *balancer.PoolState
	// Backends in balancing order: the config file's, then the API's in
	// registration order.
	Backends []*BackendView
}

// BackendView is one backend of a View: the stored backend and its live
// state.
type BackendView struct {
	registry.Backend
	// State is the backend's live state, shared by its generations.
	State *balancer.BackendState
	// Limit is the connection limit in service: the backend's own MaxConns,
	// else the pool's MaxConnsPerBackend; 0 = unlimited.
	Limit int64
}

// Backend states reported by BackendView.Status.
const (
	StatusUp       = "up"
	StatusDown     = "down"
	StatusDraining = "draining"
)

// Status is "draining" when the backend gets no new requests by choice (drain
// flag, DELETE in progress, weight 0), else "up" or "down" from its health
// (active probes and passive ejection). It reads live state.
func (b *BackendView) Status() string {
	switch {
	case b.EffectiveWeight() == 0:
		return StatusDraining
	case b.State.Up():
		return StatusUp
	}
	return StatusDown
}
