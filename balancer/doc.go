// Package balancer owns backend pools: smooth weighted round-robin schedules built
// once per generation, per-backend live state (in-flight, health, ejection, slow
// start) that outlives generations, connection limits and the per-pool wait queue.
//
// Pick and Acquire are lock-free and allocation-free on their fast path. balancer
// imports only the standard library; it must not import proxy, conf or cmd.
//
// # Generations
//
// A Pool is immutable: the control plane builds a new one with NewPool whenever
// membership, weights or limits change, and swaps it in. What must survive the
// swap lives in two shared objects the control plane keeps across generations:
//
//   - BackendState, one per backend ID: probe verdict, passive-health ejection,
//     slow-start ramp, in-flight slots and totals. Health changes flip it in
//     place and every generation sees them at once, with no rebuild.
//   - PoolState, one per pool: the queue of requests waiting for a slot,
//     ordered by class (critical, high, normal, low), then by expected service
//     time (shortest first), then by arrival.
//
// So a slot taken from one generation can be released after the next one is
// swapped in, and the request it goes to may have queued on either. A queued
// request always receives a Backend of the generation it called Acquire on, so
// Backend.Index stays valid for the caller's snapshot.
//
// # Scheduling
//
// NewPool precomputes one cycle of nginx's smooth weighted round-robin (see
// buildRing) as a ring of backend indices; Pick walks it with one atomic add,
// skipping backends that are down, ejected or (with probability 1-ramp)
// slow-starting. Acquire does the same and also claims a slot below
// its limit (its own BackendSpec.MaxConns, else the pool's MaxConnsPerBackend),
// queueing when every eligible backend is at its limit.
// Release hands a freed slot straight to the first waiter in queue order.
// AcquireTicket predicts an arriving request's wait from the work queued ahead
// of it and refuses at once (ErrWouldWait) what would outwait its deadline.
package balancer
