// Package proxy owns floodgate's data plane: the public fasthttp listener, the
// immutable routing snapshot, strict validation of what clients send, and the
// byte-faithful forwarding of requests to backends and of responses back.
//
// The request path reads exactly one *Snapshot through an atomic pointer, takes no
// global lock and allocates nothing in steady state. proxy may import balancer and
// degrade; it must not import conf, health or cmd: cmd/floodgate turns the config
// into Options.
package proxy
