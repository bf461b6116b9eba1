// Package degrade owns degraded mode: the per-pool saturation monitor, admission
// by priority, the policy of the degraded actions of routes (stale, static,
// shed, capture) and their preloaded answers. The order capture journal lives
// in degrade/capture.
//
// # Control loop
//
// The design follows Envoy's overload manager: resource pressure is sampled on
// a ticker, off the request path; triggers with hysteresis turn it into a
// state; the state is published atomically and the request path only reads it.
//
//   - Recorder (one per pool): the proxy calls Observe once per forwarded
//     request and Divert once per request degraded mode kept from the pool.
//     Both are one atomic add.
//   - SignalSource (one per pool; PoolSource reads a balancer.Pool): in-flight
//     requests against connection capacity, the wait queue, healthy capacity.
//   - Monitor (one per process): every window it turns both into Signals,
//     steps each pool's state machine (normal ⇄ degraded: any enter threshold
//     for Windows consecutive windows to enter, every exit threshold for Hold
//     to leave) and its admission Level, and stores the level in the pool's
//     Gate. It also holds the admin override and the transition counters.
//   - Gate (one per pool): Degraded and Level are one atomic load; Admit and
//     Decide are pure functions of the level, the route's Priority and its
//     Action.
//
// Gates and Recorders are keyed by pool name and survive Configure (a reload)
// for as long as their pool stays, like balancer.BackendState.
//
// See docs/degraded-mode.md for the behaviour as users see it.
//
// degrade imports the standard library, balancer (to read its statistics) and
// the Prometheus client (its metrics.go, the pattern of metrics/doc.go);
// it must not import proxy, conf or cmd: the wiring in cmd/floodgate turns
// conf values into PoolConfig, Priority and Action.
package degrade
