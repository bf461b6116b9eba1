package registry

import (
	"reflect"

	memdb "github.com/hashicorp/go-memdb"
)

// Table and index names.
const (
	tablePools    = "pools"
	tableBackends = "backends"
	tableRoutes   = "routes"
	tableMeta     = "meta"

	indexID     = "id"
	indexPool   = "pool"
	indexSource = "source"
)

// Meta keys: counters kept in the database so that they change in the same
// transaction as the rows they count.
const (
	metaIndex = "index" // bumped by every committed write; the generation number
	metaSeq   = "seq"   // orders backends registered over the API
)

// apiSeqBase puts backends registered over the API after every backend of the
// config file (whose Seq is its position in the file), in registration order.
const apiSeqBase = 1 << 40

// NewSchema returns the database schema: pools by name, backends by (pool,
// address) and by pool, routes by name, and a meta table of counters. It is a new
// value each call; memdb validates it in NewMemDB.
func NewSchema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		tablePools: {
			Name: tablePools,
			Indexes: map[string]*memdb.IndexSchema{
				indexID: {Name: indexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
			},
		},
		tableBackends: {
			Name: tableBackends,
			Indexes: map[string]*memdb.IndexSchema{
				indexID: {Name: indexID, Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
					&memdb.StringFieldIndex{Field: "Pool"},
					&memdb.StringFieldIndex{Field: "Address"},
				}}},
				indexPool:   {Name: indexPool, Indexer: &memdb.StringFieldIndex{Field: "Pool"}},
				indexSource: {Name: indexSource, Indexer: &memdb.StringFieldIndex{Field: "Source"}},
			},
		},
		tableRoutes: {
			Name: tableRoutes,
			Indexes: map[string]*memdb.IndexSchema{
				indexID: {Name: indexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Name"}},
			},
		},
		tableMeta: {
			Name: tableMeta,
			Indexes: map[string]*memdb.IndexSchema{
				indexID: {Name: indexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
			},
		},
	}}
}

// Source says who owns a backend.
type Source string

// Backend sources.
const (
	// SourceConfig backends come from the config file: a reload adds, changes
	// and removes them, and the admin API cannot delete them.
	SourceConfig Source = "config"
	// SourceAPI backends were registered over the admin API: reloads keep them,
	// and the state file saves them.
	SourceAPI Source = "api"
)

// poolRow is a stored pool. Rows are never modified once inserted: a change
// inserts a modified copy.
type poolRow struct {
	Name     string
	Order    int // position in the config file
	Settings any // PoolSpec.Settings, opaque here
}

// backendRow is a stored backend.
type backendRow struct {
	Pool, Address string
	// Weight is the weight set by the file or the API; Drain and Removing put it
	// to 0 in the data plane without forgetting it.
	Weight int
	// Drain is the API's drain flag (PATCH {"drain": true}).
	Drain bool
	// Removing marks a backend whose DELETE is draining it; it is gone from the
	// state file and leaves the data plane when the DELETE completes.
	Removing bool
	Source   Source
	// FileWeight is the weight the config file gave a config-owned backend at
	// the last reload; Overridden says Weight, Drain or MaxConns were set over
	// the API since. An override lasts until the file changes FileWeight or
	// FileMaxConns.
	FileWeight int
	Overridden bool
	// MaxConns is the backend's own connection limit, set by the file or the
	// API; 0 means the pool's. FileMaxConns is the file's, for config-owned
	// backends: like FileWeight, a change of it ends an override.
	MaxConns     int
	FileMaxConns int
	// Seq orders a pool's backends: the file position for config backends,
	// apiSeqBase plus a counter for API backends.
	Seq uint64
	// StartUp is the health state a new prober starts in: true for backends
	// known at start, false for backends added at runtime to a pool with an
	// active check, which must pass their rise probes first.
	StartUp bool
}

// routeRow is a stored route.
type routeRow struct {
	Name  string
	Order int
	Pool  string
	Spec  any // RouteSpec.Spec, opaque here
}

// metaRow is a named counter.
type metaRow struct {
	Key   string
	Value uint64
}

// samePool reports whether two pool rows are equal; their settings may hold
// anything a caller stores.
func samePool(a, b *poolRow) bool {
	return a.Name == b.Name && a.Order == b.Order && reflect.DeepEqual(a.Settings, b.Settings)
}

// sameRoute reports whether two route rows are equal.
func sameRoute(a, b *routeRow) bool {
	return a.Name == b.Name && a.Order == b.Order && a.Pool == b.Pool && reflect.DeepEqual(a.Spec, b.Spec)
}
