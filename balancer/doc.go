// Package balancer owns backend pools: smooth weighted round-robin schedules built
// once per generation, per-backend live state (in-flight, health, ejection, slow
// start) that outlives generations, connection limits and the per-pool wait queue.
//
// Pick and Acquire are lock-free and allocation-free on their fast path. balancer
// imports only the standard library; it must not import proxy, conf or cmd.
package balancer
