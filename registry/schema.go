package registry

import (
	"reflect"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/floodgate/floodgate/health"
	"github.com/floodgate/floodgate/proxy"
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
	Name   string
	Order  int // position in the config file
	Config PoolConfig
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
	// the last reload; Overridden says Weight or Drain were set over the API
	// since. An override lasts until the file changes FileWeight.
	FileWeight int
	Overridden bool
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
	Spec  proxy.RouteSpec
}

// metaRow is a named counter.
type metaRow struct {
	Key   string
	Value uint64
}

// PoolConfig is everything about a pool except its backends, in the terms of
// the runtime packages. It is a plain value; Health is compared with ==.
type PoolConfig struct {
	// MaxConnsPerBackend caps in-flight requests per backend; 0 is unlimited.
	MaxConnsPerBackend int
	// QueueMax is how many requests may wait for a slot; see
	// balancer.PoolOptions.
	QueueMax int
	// QueueTimeout is the longest wait in the queue.
	QueueTimeout time.Duration
	// SlowStart ramps new and recovered backends; 0 is off.
	SlowStart time.Duration
	// MaxFails consecutive failures eject a backend; 0 turns passive health
	// off.
	MaxFails int
	// EjectFor is how long an ejection lasts.
	EjectFor time.Duration
	// MaxEjectionPercent bounds how much of the pool passive health ejects at
	// once; see balancer.PoolOptions. 0 is the balancer's default.
	MaxEjectionPercent int
	// ConnectTimeout bounds dialling a backend; see proxy.PoolSpec.
	ConnectTimeout time.Duration
	// ResponseTimeout bounds a backend's answer.
	ResponseTimeout time.Duration
	// Retries is how many other backends an idempotent request is tried on.
	Retries int
	// Reserved is how many of each backend's slots only critical routes may
	// use; see balancer.PoolOptions.Reserved.
	Reserved int64
	// Health is the active check; Type "" or "none" means none.
	Health health.Check
}

// activeHealth reports whether the pool probes its backends.
func (c PoolConfig) activeHealth() bool {
	return c.Health.Type == health.TypeHTTP || c.Health.Type == health.TypeTCP
}

// sameRoute compares route specs, which hold slices.
func sameRoute(a, b proxy.RouteSpec) bool { return reflect.DeepEqual(a, b) }
