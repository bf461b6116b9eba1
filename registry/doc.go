// Package registry owns floodgate's control-plane state and turns it into
// data-plane generations.
//
// Pools, backends and routes live in a hashicorp/go-memdb database (NewSchema).
// Every change, whatever its source (a config reload, an admin API call, the state
// file restored at start), is exactly one write transaction: it applies whole or
// not at all, is checked before it commits (so a generation can always be built
// from it), and inserts modified copies, never mutating a stored object.
//
// Run is the watcher. It blocks on a memdb WatchSet; when a transaction commits it
// reads one consistent snapshot of the tables, builds the next generation (balancer
// pools over the BackendState and PoolState objects it keeps by backend ID, so
// health verdicts, in-flight counts, queues and pooled connections survive), builds
// a proxy.Snapshot, swaps it into the data plane and syncs the health checker.
// Writers wait until the generation holding their change is live before they
// return, so an admin API call answers only once its effect is in service.
//
// A backend's Source says who owns it: the config file, or the admin API. A reload
// replaces the config-owned backends and keeps the API-owned ones; API changes to a
// config-owned backend (weight, drain) are overrides that last until the file
// changes that backend. Backends owned by the API, and overrides, are what the
// state file holds (State).
//
// registry imports balancer, health and proxy, the packages it wires, and
// go-memdb. It must not import conf, admin or cmd: cmd/floodgate translates the
// config file into Config, so the file format never reaches this package.
package registry
