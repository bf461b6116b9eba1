// Package degrade owns degraded mode: the per-pool saturation monitor, admission by
// priority, the degraded actions of routes and the order capture journal.
//
// The request path only reads a pool's level with one atomic load. degrade must not
// import proxy, conf or cmd.
package degrade
