// Package health owns active health checking: one prober goroutine per backend that
// probes over HTTP or TCP on a jittered interval and reports up/down transitions,
// after rise/fall thresholds, to a consumer-declared sink.
//
// A Checker holds the probers, keyed by (pool, address). Checker.Sync makes the
// running set match the wanted one, so a config reload or an admin API change keeps
// each backend's health state; Checker.Close stops everything and waits. Verdicts go
// to each backend's Target (balancer.BackendState) synchronously, so routing follows
// them at once, and to Options.OnTransition from a goroutine of the Checker's own, so
// that user code never runs on a prober or on the goroutine calling Sync.
//
// Probes use their own connections (a fresh one per probe), never the proxy's pool:
// a probe must see what a new client would see, and must not be queued behind
// client traffic on a saturated backend.
//
// health imports only the standard library. It must not import proxy, conf or cmd;
// it reports through small interfaces declared here (Target) and callbacks.
package health
