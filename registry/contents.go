package registry

import (
	"slices"

	memdb "github.com/hashicorp/go-memdb"
)

// Contents is one consistent reading of the registry: what a generation is
// built from. It is a plain value, immutable once returned; Settings and Spec
// are the values the writers stored.
type Contents struct {
	// Index is the committed write the contents are as of (0 before the
	// first): the generation number.
	Index uint64
	// Pools in config file order.
	Pools []Pool
	// Routes in config file order, each naming a pool of Pools.
	Routes []Route
}

// Pool is one stored pool.
type Pool struct {
	// Name is the pool's name.
	Name string
	// Settings is PoolSpec.Settings as last written by the config file.
	Settings any
	// Backends in balancing order: the config file's, then the API's in
	// registration order.
	Backends []Backend
}

// Backend is one stored backend.
type Backend struct {
	// Pool and Address identify the backend; BackendID(Pool, Address) is
	// its ID.
	Pool, Address string
	// Weight is the weight set by the file or the API, kept while draining.
	Weight int
	// Drain is the API's drain flag; Removing marks a DELETE in progress.
	Drain, Removing bool
	// Source says who owns the backend.
	Source Source
	// Overridden says the API changed this config-owned backend, and
	// FileWeight is the config file's weight for it.
	Overridden bool
	FileWeight int
	// MaxConns is the backend's own connection limit, from the file or the
	// API; 0 means the pool's (max_conns_per_backend). FileMaxConns is the
	// config file's, for a config-owned backend.
	MaxConns, FileMaxConns int
	// StartUp is the health state the backend starts in when it is new to
	// the data plane: true for backends known at start or in a pool without
	// an active check, false for backends added at runtime to a pool with
	// one, which must pass their rise probes first.
	StartUp bool
}

// ID is the backend's BackendID.
func (b *Backend) ID() string { return BackendID(b.Pool, b.Address) }

// EffectiveWeight is the weight in the data plane: 0 while draining or being
// removed.
func (b *Backend) EffectiveWeight() int {
	if b.Drain || b.Removing {
		return 0
	}
	return b.Weight
}

// Route is one stored route.
type Route struct {
	// Name is the route's name and Pool the pool it sends to.
	Name, Pool string
	// Spec is RouteSpec.Spec as last written by the config file.
	Spec any
}

// Pool returns the named pool, or nil.
func (c *Contents) Pool(name string) *Pool {
	for i := range c.Pools {
		if c.Pools[i].Name == name {
			return &c.Pools[i]
		}
	}
	return nil
}

// Snapshot returns the registry's contents as of the latest committed write,
// and a channel that is closed when a later write commits: the watch of the
// meta table, which every committed write changes (go-memdb's watch channels,
// so waiting costs no goroutine). Whoever builds generations loops on it.
func (r *Registry) Snapshot() (*Contents, <-chan struct{}) {
	txn := r.db.Txn(false)
	it, err := txn.Get(tableMeta, indexID)
	if err != nil {
		panic(err) // only a schema bug: the table and index are constants
	}
	return contents(txn, metaValue(txn, metaIndex)), it.WatchCh()
}

// Applied records that the generation built from the contents at index idx
// is in service (err nil), or that building it failed (the previous one
// serving on), and wakes the writers waiting for it. Whoever builds
// generations calls it once per index it applies, in increasing order.
func (r *Registry) Applied(idx uint64, err error) {
	old := r.applied.Load()
	r.applied.Store(&applied{idx: idx, err: err, ch: make(chan struct{})})
	close(old.ch)
}

// Close says that nothing applies the registry's contents any more (the
// process is shutting down): writes and waits return ErrClosed from now on.
// It waits for removals in progress to end, so that nothing of the registry
// runs after it returns. Calling it again is harmless.
func (r *Registry) Close() {
	r.closeOnce.Do(func() { close(r.done) })
	r.remMu.Lock()
	r.remClosed = true
	r.remMu.Unlock()
	r.remWG.Wait()
}

// contents reads the tables of txn as a Contents at index idx.
func contents(txn *memdb.Txn, idx uint64) *Contents {
	c := &Contents{Index: idx}
	pools := all[poolRow](txn, tablePools)
	slices.SortFunc(pools, func(a, b *poolRow) int { return a.Order - b.Order })
	for _, p := range pools {
		cp := Pool{Name: p.Name, Settings: p.Settings}
		for _, b := range poolBackends(txn, p.Name) {
			cp.Backends = append(cp.Backends, Backend{Pool: b.Pool, Address: b.Address, Weight: b.Weight, Drain: b.Drain,
				Removing: b.Removing, Source: b.Source, Overridden: b.Overridden, FileWeight: b.FileWeight,
				MaxConns: b.MaxConns, FileMaxConns: b.FileMaxConns, StartUp: b.StartUp})
		}
		c.Pools = append(c.Pools, cp)
	}
	routes := all[routeRow](txn, tableRoutes)
	slices.SortFunc(routes, func(a, b *routeRow) int { return a.Order - b.Order })
	for _, rt := range routes {
		c.Routes = append(c.Routes, Route{Name: rt.Name, Pool: rt.Pool, Spec: rt.Spec})
	}
	return c
}
