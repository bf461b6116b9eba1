// Package generation builds floodgate's data-plane generations from the
// registry's contents and puts them in service.
//
// The registry (package registry) is the store: pools, backends and routes in
// go-memdb, written in transactions, watched through channels. It imports
// nothing of the data plane. This package is the other half, the one that
// knows the data plane:
//
//   - Build is the pure builder: registry contents in (one consistent
//     Snapshot, at one index), an immutable Generation out: balancer pools
//     over the BackendState and PoolState objects carried over by backend ID
//     and pool name (so health verdicts, in-flight counts, queues and pooled
//     connections survive), the proxy snapshot, the health probes, and the
//     degraded-mode plan of the pools' monitor. It changes nothing: the
//     pools are staged, the proxy's Build only reads its tables, the
//     monitor's Prepare only checks; a Generation dropped leaves no trace.
//   - The commit step puts one Generation in service, all or nothing:
//     everything that can fail has failed in Build, so it swaps the snapshot in,
//     adopts the pools, syncs the health checker and commits the monitor's
//     plan, in that order, and cannot fail.
//   - Run is the watcher: it waits on the registry's watch channel, builds
//     and commits the generation of each new index, and tells the registry,
//     whose writers return once their change is in service.
//   - Check, which the registry calls inside every write transaction, is
//     Build on the contents as they would commit: a change that would not
//     build (a pool the balancer refuses, a degraded-mode policy the monitor
//     refuses) is not committed, so a committed change always reaches the
//     data plane and a refused one changes nothing. The generation Check
//     builds is the one Run commits when nothing was committed in between,
//     so a write costs one build, as before the split.
//
// Manager holds a Registry (its methods are the Manager's) and the
// generation in service. View is that generation as the admin API and the
// metrics read it.
//
// generation imports registry, balancer, health, degrade and proxy. It must
// not import conf, admin or cmd: cmd/floodgate translates the config file
// into registry.Config with PoolSettings and proxy.RouteSpec values.
package generation
