// Package registry is floodgate's control-plane store: pools, backends and
// routes, and who owns each backend.
//
// They live in a hashicorp/go-memdb database (NewSchema). Every change,
// whatever its source (a config reload, an admin API call, the state file
// restored at start), is exactly one write transaction: it applies whole or not
// at all, is checked before it commits (the registry's own rules, then
// Options.Check, which says whether a generation builds from the result), and
// inserts modified copies, never mutating a stored object. A pool's settings
// and a route's spec are stored as given and compared, not interpreted: they
// are in the terms of whoever builds generations.
//
// The registry applies nothing itself. Whoever builds data-plane generations
// (package generation) watches it: Snapshot returns one consistent reading of
// the tables with its index and a go-memdb watch channel that closes at the
// next commit; Applied reports each index in service. Writers wait
// (WaitApplied) until the generation holding their change is live before they
// return, so an admin API call answers only once its effect is in service.
// Remove drains a backend in two writes (marked removing, then deleted), polling
// its in-flight count through Options.Inflight in between.
//
// A backend's Source says who owns it: the config file, or the admin API. A
// reload replaces the config-owned backends and keeps the API-owned ones; API
// changes to a config-owned backend (weight, drain) are overrides that last
// until the file changes that backend. Backends owned by the API, and
// overrides, are what the state file holds (State).
//
// registry imports go-memdb, the standard library and the project's internal
// helpers (internal/ident, internal/hostport, internal/limits,
// internal/panics), nothing of the data plane: not balancer, health, degrade
// or proxy, and not conf, admin or cmd. .ci/deps checks it.
package registry
