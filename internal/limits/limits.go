// Package limits holds the bounds on pools that the config file (package conf)
// checks and the balancer enforces, and the rule of a route's rate limit that
// conf checks and the proxy enforces, so that `floodgate -check` refuses what a
// start would refuse. Before it, conf allowed 10,000 backends in a pool and the
// balancer 4,096: -check passed a file that a start then failed on.
//
// It imports only the standard library and the internal packages of pure rules
// (field, httpwire), so that conf and the runtime packages can both use it.
package limits

const (
	// MaxWeight is the largest backend weight.
	MaxWeight = 1000
	// MaxBackends is the most backends in one pool. It keeps the balancer's
	// ring indices in a uint16 and the linear fallback pass of a pick short.
	MaxBackends = 4096
)
