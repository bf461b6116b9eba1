package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/floodgate/floodgate/internal/limits"
)

// maxWeight is the largest backend weight: the balancer's (package limits).
const maxWeight = limits.MaxWeight

// Options configures New. Every field is optional; the hooks are how whoever
// builds generations from the registry (package generation) lends it the rules
// of the data plane, which the registry does not import.
type Options struct {
	// Logger receives one record per problem. nil discards.
	Logger *slog.Logger
	// Persist, if set, is called inside every write transaction that changes
	// the State (what the API owns), before the transaction commits; an error
	// aborts the transaction. So the state file and the registry never
	// disagree, and a change that cannot be saved is not made. Calls are
	// serialised.
	Persist func(State) error
	// Check, if set, is called inside every write transaction with the
	// contents as they would commit; an error aborts the transaction and is
	// returned to the writer as an ErrInvalid. It says whether a generation
	// can be built from them, so that a committed change always reaches the
	// data plane. Calls are serialised.
	Check func(*Contents) error
	// Probed reports whether a pool with these settings (PoolSpec.Settings)
	// checks its backends actively: a backend added at runtime to such a pool
	// starts down until its rise probes pass (Backend.StartUp). nil means no
	// pool does.
	Probed func(settings any) bool
	// Inflight returns how many requests a backend has in flight in the
	// generation in service, and false when the backend is not in it. Remove
	// polls it while it drains a backend. nil ends every drain at once.
	Inflight func(pool, address string) (n int64, ok bool)
	// DrainPoll is how often Remove checks a draining backend's in-flight
	// count. 0 means 5ms.
	DrainPoll time.Duration
	// DrainSettle is how long a draining backend's in-flight count must stay
	// at zero before it is removed. It covers a request that chose the backend
	// an instant before it was marked down and has not yet taken its slot.
	// 0 means 20ms.
	DrainSettle time.Duration
}

// Registry is the control-plane database. All methods are safe for concurrent
// use. Build it with New; whoever applies its contents to the data plane
// watches it with Snapshot, reports each index it applied with Applied, and
// calls Close when it stops. Writers block until their change is applied.
type Registry struct {
	db       *memdb.MemDB
	log      *slog.Logger
	persist  func(State) error
	check    func(*Contents) error
	probed   func(settings any) bool
	inflight func(pool, address string) (int64, bool)
	poll     time.Duration
	settle   time.Duration

	applied   atomic.Pointer[applied]
	done      chan struct{} // closed by Close
	closeOnce sync.Once

	remMu     sync.Mutex
	removals  map[string]*removal // by backend ID
	remClosed bool                // set by Close: no new removal starts
	remWG     sync.WaitGroup      // removals in progress; Close waits for them
}

// applied is the outcome of the newest apply. ch is closed when a newer one is
// published, to wake waiters.
type applied struct {
	idx uint64
	err error
	ch  chan struct{}
}

// New returns an empty Registry.
func New(opts Options) (*Registry, error) {
	db, err := memdb.NewMemDB(NewSchema())
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	r := &Registry{
		db:       db,
		log:      opts.Logger,
		persist:  opts.Persist,
		check:    opts.Check,
		probed:   opts.Probed,
		inflight: opts.Inflight,
		poll:     opts.DrainPoll,
		settle:   opts.DrainSettle,
		done:     make(chan struct{}),
		removals: make(map[string]*removal),
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.poll <= 0 {
		r.poll = 5 * time.Millisecond
	}
	if r.settle <= 0 {
		r.settle = 20 * time.Millisecond
	}
	if r.probed == nil {
		r.probed = func(any) bool { return false }
	}
	r.applied.Store(&applied{ch: make(chan struct{})})
	return r, nil
}

// BackendID is the identifier of a backend across generations: its BackendState
// and its proxy upstream (with pooled connections) are kept under it.
func BackendID(pool, address string) string { return pool + "/" + address }

// State returns what the state file should hold now: the backends registered
// over the API (except those being removed) and the API's overrides of config
// backends.
func (r *Registry) State() State { return savedState(r.db.Txn(false)) }

// WaitApplied blocks until the generation holding committed index idx is in
// service, and returns the error of that build if it failed. It returns ctx's
// error if ctx ends first and ErrClosed once the registry is closed.
func (r *Registry) WaitApplied(ctx context.Context, idx uint64) error {
	for {
		a := r.applied.Load()
		if a.idx >= idx {
			return a.err
		}
		select {
		case <-a.ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-r.done:
			if a := r.applied.Load(); a.idx >= idx {
				return a.err
			}
			return ErrClosed
		}
	}
}

// write runs fn in one write transaction. When fn changed nothing, the
// transaction is aborted and the current index returned. Otherwise the result is
// checked (the registry's own rules, then Options.Check: a generation must
// build from it), the State is persisted if it changed, the index is bumped and
// the transaction commits: all of it, or none.
func (r *Registry) write(fn func(txn *memdb.Txn) error) (idx uint64, changed bool, err error) {
	return r.transact(fn, true)
}

// transact is write, or with commit false, everything write does short of
// persisting and committing: the transaction is checked and then aborted.
func (r *Registry) transact(fn func(txn *memdb.Txn) error, commit bool) (idx uint64, changed bool, err error) {
	txn := r.db.Txn(true)
	defer txn.Abort()
	select {
	case <-r.done: // nothing would apply it
		return 0, false, ErrClosed
	default:
	}
	txn.TrackChanges()
	var before State
	if r.persist != nil {
		before = savedState(txn)
	}
	if err := fn(txn); err != nil {
		return 0, false, err
	}
	if len(txn.Changes()) == 0 {
		return metaValue(txn, metaIndex), false, nil
	}
	if err := check(txn); err != nil {
		return 0, false, err
	}
	idx = metaValue(txn, metaIndex) + 1
	if r.check != nil {
		if err := r.check(contents(txn, idx)); err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrConflict) {
				err = &kindError{ErrInvalid, err.Error()}
			}
			return 0, false, err
		}
	}
	if !commit {
		return idx, true, nil
	}
	if r.persist != nil {
		if after := savedState(txn); !sameState(before, after) {
			if err := r.persist(after); err != nil {
				return 0, false, fmt.Errorf("registry: change not applied: %w", err)
			}
		}
	}
	if err := txn.Insert(tableMeta, &metaRow{Key: metaIndex, Value: idx}); err != nil {
		return 0, false, fmt.Errorf("registry: %w", err)
	}
	txn.Commit()
	return idx, true, nil
}

// writeAndWait is write followed by WaitApplied.
func (r *Registry) writeAndWait(ctx context.Context, fn func(txn *memdb.Txn) error) (idx uint64, changed bool, err error) {
	idx, changed, err = r.write(fn)
	if err != nil {
		return 0, false, err
	}
	return idx, changed, r.WaitApplied(ctx, idx)
}

// Config is the config file's part of the registry, in runtime terms:
// cmd/floodgate translates the file into it.
type Config struct {
	// Pools in file order; names unique.
	Pools []PoolSpec
	// Routes in file order; names unique, each naming a pool of Pools.
	Routes []RouteSpec
}

// PoolSpec is one pool of the config file.
type PoolSpec struct {
	// Name is the pool's name, [A-Za-z0-9_.-]{1,64}.
	Name string
	// Settings is everything but the backends, in the terms of whoever
	// builds generations (generation.PoolSettings): the registry stores it,
	// compares it with reflect.DeepEqual, hands it to Options.Probed and
	// Options.Check, and does not look inside. It must not be modified once
	// given.
	Settings any
	// Backends are the file's backends of the pool, in file order.
	Backends []BackendSpec
}

// RouteSpec is one route of the config file.
type RouteSpec struct {
	// Name is the route's name, [A-Za-z0-9_.-]{1,64}.
	Name string
	// Pool names the pool of Config.Pools the route sends to.
	Pool string
	// Spec is the rest of the route, in the terms of whoever builds
	// generations (proxy.RouteSpec), stored like PoolSpec.Settings.
	Spec any
}

// BackendSpec is one backend of the config file.
type BackendSpec struct {
	// Address is host:port (see CanonicalAddress), unique in the pool once
	// canonical.
	Address string
	// Weight is 0 to limits.MaxWeight.
	Weight int
	// MaxConns is the backend's own connection limit (limits.CheckMaxConns);
	// 0 means the pool's.
	MaxConns int
}

// ApplyResult says what a config apply did.
type ApplyResult struct {
	// Gen is the generation in service after the apply.
	Gen uint64
	// Changed is false when the config matched the registry already.
	Changed bool
	// Dropped lists "pool/address" of API backends removed with their pool.
	Dropped []string
	// TakenOver lists "pool/address" of API backends that the file now lists,
	// which the file owns from now on.
	TakenOver []string
	// OverridesCleared lists "pool/address" of config backends whose API
	// override ended because the file changed their weight or max_conns.
	OverridesCleared []string
}

// ApplyConfig replaces the config-owned part of the registry with cfg in one
// transaction and waits until it is in service: pools and routes are replaced,
// config backends added, changed and removed, API backends kept (except in pools
// that cfg drops, which go with their pool). Backends new to a pool with an active
// health check start down until their rise probes pass. On error nothing changed.
func (r *Registry) ApplyConfig(ctx context.Context, cfg Config) (ApplyResult, error) {
	var res ApplyResult
	idx, changed, err := r.writeAndWait(ctx, func(txn *memdb.Txn) error {
		res = ApplyResult{}
		return r.applyConfig(txn, cfg, false, &res)
	})
	if err != nil {
		return ApplyResult{}, err
	}
	res.Gen, res.Changed = idx, changed
	return res, nil
}

// InitResult says what Init restored.
type InitResult struct {
	ApplyResult
	// Restored counts state entries applied.
	Restored int
	// Skipped describes state entries not applied and why.
	Skipped []string
}

// Init loads the config at start and restores saved (the state file; may be
// empty) in the same transaction, so the first generation already holds every
// backend. Backends known at start begin up; health checks take out the dead
// ones. Saved API backends of pools the config no longer has are dropped, with a
// line each in Skipped; saved overrides apply only while the file still gives the
// backend the weight and max_conns it had when the override was made. Call it
// once, before any other write, with the generations' watcher running.
func (r *Registry) Init(ctx context.Context, cfg Config, saved State) (InitResult, error) {
	var res InitResult
	idx, _, err := r.writeAndWait(ctx, r.initTxn(cfg, saved, &res))
	if err != nil {
		return InitResult{}, err
	}
	res.Gen, res.Changed = idx, true
	return res, nil
}

// CheckInit is Init short of committing: the same transaction, checked the
// same way (Options.Check included), then aborted. It returns what Init would
// restore and skip, or the error Init would return, and changes nothing:
// nothing is stored, persisted or applied, and no watcher needs to run.
// `floodgate -check` calls it, so that it refuses what a start refuses.
func (r *Registry) CheckInit(cfg Config, saved State) (InitResult, error) {
	var res InitResult
	idx, _, err := r.transact(r.initTxn(cfg, saved, &res), false)
	if err != nil {
		return InitResult{}, err
	}
	res.Gen, res.Changed = idx, true
	return res, nil
}

// initTxn is the transaction of Init, filling res.
func (r *Registry) initTxn(cfg Config, saved State, res *InitResult) func(txn *memdb.Txn) error {
	return func(txn *memdb.Txn) error {
		*res = InitResult{}
		if metaValue(txn, metaIndex) != 0 {
			return errors.New("registry: Init called twice")
		}
		if err := r.applyConfig(txn, cfg, true, &res.ApplyResult); err != nil {
			return err
		}
		return restore(txn, saved, res)
	}
}

// addName adds name, that of list[i] (a kind: pool, route), to seen, or
// refuses it when it is invalid or already there.
func addName(seen map[string]bool, list, kind string, i int, name string) error {
	if !validName(name) {
		return invalidf("%s[%d]: invalid name %q", list, i, name)
	}
	if seen[name] {
		return invalidf("%s[%d]: %s %q defined twice", list, i, kind, name)
	}
	seen[name] = true
	return nil
}

// applyConfig writes cfg into txn. boot marks backends as known at start.
func (r *Registry) applyConfig(txn *memdb.Txn, cfg Config, boot bool, res *ApplyResult) error {
	wantPools := make(map[string]bool, len(cfg.Pools))
	for i, ps := range cfg.Pools {
		if err := addName(wantPools, "pools", "pool", i, ps.Name); err != nil {
			return err
		}
		old, _ := first[poolRow](txn, tablePools, ps.Name)
		row := &poolRow{Name: ps.Name, Order: i, Settings: ps.Settings}
		if old == nil || !samePool(old, row) {
			if err := txn.Insert(tablePools, row); err != nil {
				return fmt.Errorf("registry: %w", err)
			}
		}
		if err := applyBackends(txn, ps, boot || !r.probed(ps.Settings), res); err != nil {
			return err
		}
	}
	// Pools that went away take all their backends with them.
	for _, p := range all[poolRow](txn, tablePools) {
		if wantPools[p.Name] {
			continue
		}
		for _, b := range poolBackends(txn, p.Name) {
			if b.Source == SourceAPI {
				res.Dropped = append(res.Dropped, BackendID(b.Pool, b.Address))
			}
			if err := txn.Delete(tableBackends, b); err != nil {
				return fmt.Errorf("registry: %w", err)
			}
		}
		if err := txn.Delete(tablePools, p); err != nil {
			return fmt.Errorf("registry: %w", err)
		}
	}
	wantRoutes := make(map[string]bool, len(cfg.Routes))
	for i, rs := range cfg.Routes {
		if err := addName(wantRoutes, "routes", "route", i, rs.Name); err != nil {
			return err
		}
		row := &routeRow{Name: rs.Name, Order: i, Pool: rs.Pool, Spec: rs.Spec}
		old, _ := first[routeRow](txn, tableRoutes, rs.Name)
		if old != nil && sameRoute(old, row) {
			continue
		}
		if err := txn.Insert(tableRoutes, row); err != nil {
			return fmt.Errorf("registry: %w", err)
		}
	}
	for _, rt := range all[routeRow](txn, tableRoutes) {
		if !wantRoutes[rt.Name] {
			if err := txn.Delete(tableRoutes, rt); err != nil {
				return fmt.Errorf("registry: %w", err)
			}
		}
	}
	return nil
}

// applyBackends makes the config-owned backends of one pool match ps. New
// backends start up when startUp is set (known at start, or a pool without an
// active health check).
func applyBackends(txn *memdb.Txn, ps PoolSpec, startUp bool, res *ApplyResult) error {
	want := make(map[string]bool, len(ps.Backends))
	for i, bs := range ps.Backends {
		addr, err := CanonicalAddress(bs.Address)
		if err != nil {
			return fmt.Errorf("pools %q: backends[%d]: %w", ps.Name, i, err)
		}
		bs.Address = addr
		if bs.Weight < 0 || bs.Weight > maxWeight {
			return invalidf("pool %q: backend %s: weight %d out of range 0-%d", ps.Name, bs.Address, bs.Weight, maxWeight)
		}
		if err := limits.CheckMaxConns(int64(bs.MaxConns)); err != nil {
			return invalidf("pool %q: backend %s: max_conns: %v", ps.Name, bs.Address, err)
		}
		if want[bs.Address] {
			return invalidf("pool %q: backend %s listed twice", ps.Name, bs.Address)
		}
		want[bs.Address] = true
		old, _ := first[backendRow](txn, tableBackends, ps.Name, bs.Address)
		var row backendRow
		switch {
		case old == nil:
			row = backendRow{Pool: ps.Name, Address: bs.Address, Weight: bs.Weight, Source: SourceConfig,
				FileWeight: bs.Weight, MaxConns: bs.MaxConns, FileMaxConns: bs.MaxConns, Seq: uint64(i), StartUp: startUp}
		case old.Source == SourceAPI:
			// The file now lists a backend the API registered: the file owns it,
			// with the file's weight. A DELETE draining it is cancelled.
			res.TakenOver = append(res.TakenOver, BackendID(ps.Name, bs.Address))
			row = backendRow{Pool: ps.Name, Address: bs.Address, Weight: bs.Weight, Source: SourceConfig,
				FileWeight: bs.Weight, MaxConns: bs.MaxConns, FileMaxConns: bs.MaxConns, Seq: uint64(i), StartUp: old.StartUp}
		default:
			row = *old
			row.Seq = uint64(i)
			switch {
			case !old.Overridden:
				row.Weight, row.MaxConns = bs.Weight, bs.MaxConns
			case bs.Weight != old.FileWeight || bs.MaxConns != old.FileMaxConns:
				// The file changed this backend after the API did: the newer
				// word wins.
				res.OverridesCleared = append(res.OverridesCleared, BackendID(ps.Name, bs.Address))
				row.Weight, row.MaxConns, row.Drain, row.Overridden = bs.Weight, bs.MaxConns, false, false
			}
			row.FileWeight, row.FileMaxConns = bs.Weight, bs.MaxConns
		}
		if old == nil || *old != row {
			if err := txn.Insert(tableBackends, &row); err != nil {
				return fmt.Errorf("registry: %w", err)
			}
		}
	}
	for _, b := range poolBackends(txn, ps.Name) {
		if b.Source == SourceConfig && !want[b.Address] {
			if err := txn.Delete(tableBackends, b); err != nil {
				return fmt.Errorf("registry: %w", err)
			}
		}
	}
	return nil
}

// restore applies a saved State on top of the config.
func restore(txn *memdb.Txn, saved State, res *InitResult) error {
	res.Skipped = append(res.Skipped, saved.merged...)
	for _, sb := range saved.Backends {
		id := BackendID(sb.Pool, sb.Address)
		if p, _ := first[poolRow](txn, tablePools, sb.Pool); p == nil {
			res.Skipped = append(res.Skipped, fmt.Sprintf("%s: pool %q is not in the config any more", id, sb.Pool))
			continue
		}
		old, _ := first[backendRow](txn, tableBackends, sb.Pool, sb.Address)
		var row backendRow
		switch sb.Source {
		case SourceAPI:
			if old != nil {
				res.Skipped = append(res.Skipped, fmt.Sprintf("%s: the config file lists it now; the file's entry applies", id))
				continue
			}
			row = backendRow{Pool: sb.Pool, Address: sb.Address, Weight: sb.Weight, Drain: sb.Drain,
				MaxConns: sb.MaxConns, Source: SourceAPI, Seq: nextSeq(txn), StartUp: true}
		case SourceConfig:
			if old == nil || old.Source != SourceConfig {
				res.Skipped = append(res.Skipped, fmt.Sprintf("%s: override of a backend the config file no longer lists", id))
				continue
			}
			if old.FileWeight != sb.FileWeight {
				res.Skipped = append(res.Skipped, fmt.Sprintf("%s: override dropped, the config file changed the backend's weight since (%d, was %d)", id, old.FileWeight, sb.FileWeight))
				continue
			}
			if old.FileMaxConns != sb.FileMaxConns {
				res.Skipped = append(res.Skipped, fmt.Sprintf("%s: override dropped, the config file changed the backend's max_conns since (%d, was %d)", id, old.FileMaxConns, sb.FileMaxConns))
				continue
			}
			row = *old
			row.Weight, row.Drain, row.MaxConns, row.Overridden = sb.Weight, sb.Drain, sb.MaxConns, true
		}
		if err := txn.Insert(tableBackends, &row); err != nil {
			return fmt.Errorf("registry: %w", err)
		}
		res.Restored++
	}
	return nil
}

// BackendUpdate is a change to one backend: nil fields are left alone.
type BackendUpdate struct {
	// Weight, when set, is the new weight, 0 to limits.MaxWeight.
	Weight *int
	// MaxConns, when set, is the backend's own connection limit
	// (limits.CheckMaxConns); 0 means the pool's max_conns_per_backend.
	MaxConns *int
	// Drain, when set, is the new drain flag. Update only.
	Drain *bool
}

// check returns the first problem of u's values, naming the field, as an
// ErrInvalid.
func (u BackendUpdate) check() error {
	if u.Weight != nil && (*u.Weight < 0 || *u.Weight > maxWeight) {
		return invalidf("weight: %d out of range 0-%d", *u.Weight, maxWeight)
	}
	if u.MaxConns != nil {
		if err := limits.CheckMaxConns(int64(*u.MaxConns)); err != nil {
			return invalidf("max_conns: %v", err)
		}
	}
	return nil
}

// apply writes u's fields into row and reports whether anything changed.
func (u BackendUpdate) apply(row *backendRow) bool {
	old := *row
	if u.Weight != nil {
		row.Weight = *u.Weight
	}
	if u.MaxConns != nil {
		row.MaxConns = *u.MaxConns
	}
	if u.Drain != nil {
		row.Drain = *u.Drain
	}
	return *row != old
}

// Register adds a backend to a pool over the API, or, when the address is
// already in the pool, sets the fields of u that are non-nil (idempotent, so a
// script can retry). A new backend gets weight 1 when u.Weight is nil and the
// pool's connection limit when u.MaxConns is nil or 0; in a pool with an
// active health check it starts down until its rise probes pass. It returns
// whether the backend is new, once its generation is in service. Registering
// an address of the config file sets an override of it. u.Drain must be nil:
// drain with Update. A bad value is refused, naming the field, and nothing
// changes.
func (r *Registry) Register(ctx context.Context, pool, address string, u BackendUpdate) (created bool, err error) {
	address, err = CanonicalAddress(address)
	if err != nil {
		return false, err
	}
	if u.Drain != nil {
		return false, invalidf("drain: not accepted when registering; set it with an update")
	}
	if err := u.check(); err != nil {
		return false, err
	}
	_, _, err = r.writeAndWait(ctx, func(txn *memdb.Txn) error {
		created = false
		p, err := first[poolRow](txn, tablePools, pool)
		if err != nil {
			return err
		}
		if p == nil {
			return notFoundf("pool %q not found", pool)
		}
		old, err := first[backendRow](txn, tableBackends, pool, address)
		if err != nil {
			return err
		}
		if old == nil {
			if n := len(poolBackends(txn, pool)); n >= limits.MaxBackends {
				return conflictf("pool %q is full: %d backends, the most a pool can hold", pool, n)
			}
			row := &backendRow{Pool: pool, Address: address, Weight: 1,
				Source: SourceAPI, Seq: nextSeq(txn), StartUp: !r.probed(p.Settings)}
			u.apply(row)
			created = true
			return txn.Insert(tableBackends, row)
		}
		if old.Removing {
			return conflictf("backend %s of pool %q is being removed; register it again once the DELETE has returned", address, pool)
		}
		row := *old
		if !u.apply(&row) {
			return nil
		}
		if row.Source == SourceConfig {
			row.Overridden = true
		}
		return txn.Insert(tableBackends, &row)
	})
	return created, err
}

// Update changes a backend's weight, connection limit or drain flag and
// returns once the change is in service. Changing a config-owned backend sets
// an override, kept across reloads until the file changes that backend's
// weight or max_conns. A bad value is refused, naming the field, and nothing
// changes (the other fields of u included).
func (r *Registry) Update(ctx context.Context, pool, address string, u BackendUpdate) error {
	if u.Weight == nil && u.MaxConns == nil && u.Drain == nil {
		return invalidf("nothing to change: give weight, max_conns, drain or several")
	}
	if err := u.check(); err != nil {
		return err
	}
	_, _, err := r.writeAndWait(ctx, func(txn *memdb.Txn) error {
		old, err := r.findBackend(txn, pool, address)
		if err != nil {
			return err
		}
		if old.Removing {
			return conflictf("backend %s of pool %q is being removed", address, pool)
		}
		row := *old
		if !u.apply(&row) {
			return nil
		}
		if row.Source == SourceConfig {
			row.Overridden = true
		}
		return txn.Insert(tableBackends, &row)
	})
	return err
}

// findBackend returns the stored backend, or an ErrNotFound naming what is
// missing: the pool or the backend. address is looked up in its canonical form.
func (r *Registry) findBackend(txn *memdb.Txn, pool, address string) (*backendRow, error) {
	if c, err := CanonicalAddress(address); err == nil {
		address = c
	}
	p, err := first[poolRow](txn, tablePools, pool)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, notFoundf("pool %q not found", pool)
	}
	b, err := first[backendRow](txn, tableBackends, pool, address)
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, notFoundf("backend %s not found in pool %q", address, pool)
	}
	return b, nil
}

// first returns the object of table matching args on the id index, or nil.
func first[T any](txn *memdb.Txn, table string, args ...any) (*T, error) {
	raw, err := txn.First(table, indexID, args...)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	if raw == nil {
		return nil, nil
	}
	return raw.(*T), nil
}

// all returns every object of table, in id order.
func all[T any](txn *memdb.Txn, table string) []*T {
	it, err := txn.Get(table, indexID)
	if err != nil {
		panic(err) // only a schema bug: the table and index are constants
	}
	var out []*T
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*T))
	}
	return out
}

// poolBackends returns the backends of a pool, in Seq order.
func poolBackends(txn *memdb.Txn, pool string) []*backendRow {
	it, err := txn.Get(tableBackends, indexPool, pool)
	if err != nil {
		panic(err)
	}
	var out []*backendRow
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*backendRow))
	}
	slices.SortFunc(out, func(a, b *backendRow) int {
		if a.Seq != b.Seq {
			if a.Seq < b.Seq {
				return -1
			}
			return 1
		}
		if a.Address < b.Address {
			return -1
		}
		return 1
	})
	return out
}

// metaValue returns a counter, 0 when unset.
func metaValue(txn *memdb.Txn, key string) uint64 {
	m, _ := first[metaRow](txn, tableMeta, key)
	if m == nil {
		return 0
	}
	return m.Value
}

// nextSeq takes the next registration sequence number.
func nextSeq(txn *memdb.Txn) uint64 {
	n := metaValue(txn, metaSeq) + 1
	if err := txn.Insert(tableMeta, &metaRow{Key: metaSeq, Value: n}); err != nil {
		panic(err)
	}
	return apiSeqBase + n
}

// savedState computes the State from txn: API backends that are not being
// removed, and overrides of config backends, sorted by pool then Seq.
func savedState(txn *memdb.Txn) State {
	st := State{Version: StateVersion}
	var rows []*backendRow
	for _, b := range all[backendRow](txn, tableBackends) {
		if (b.Source == SourceAPI && !b.Removing) || (b.Source == SourceConfig && b.Overridden) {
			rows = append(rows, b)
		}
	}
	slices.SortFunc(rows, func(a, b *backendRow) int {
		switch {
		case a.Pool != b.Pool:
			if a.Pool < b.Pool {
				return -1
			}
			return 1
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
	for _, b := range rows {
		sb := SavedBackend{Pool: b.Pool, Address: b.Address, Weight: b.Weight, Drain: b.Drain, MaxConns: b.MaxConns, Source: b.Source}
		if b.Source == SourceConfig {
			sb.FileWeight, sb.FileMaxConns = b.FileWeight, b.FileMaxConns
		}
		st.Backends = append(st.Backends, sb)
	}
	return st
}

func sameState(a, b State) bool { return slices.Equal(a.Backends, b.Backends) }

// check verifies the registry's own rules on what txn would commit: every
// route names a pool. Whether a generation builds from the contents is
// Options.Check's to say.
func check(txn *memdb.Txn) error {
	pools := make(map[string]bool)
	for _, p := range all[poolRow](txn, tablePools) {
		pools[p.Name] = true
	}
	for _, rt := range all[routeRow](txn, tableRoutes) {
		if !pools[rt.Pool] {
			return invalidf("route %q: unknown pool %q", rt.Name, rt.Pool)
		}
	}
	return nil
}
