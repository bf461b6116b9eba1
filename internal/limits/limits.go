// Package limits holds the bounds on pools that the config file (package conf)
// checks and the balancer enforces, and the rule of a route's rate limit that
// conf checks and the proxy enforces, so that `floodgate -check` refuses what a
// start would refuse. Before it, conf allowed 10,000 backends in a pool and the
// balancer 4,096: -check passed a file that a start then failed on.
//
// It imports only the standard library and the internal packages of pure rules
// (field, httpwire), so that conf and the runtime packages can both use it.
package limits

import "fmt"

const (
	// MaxWeight is the largest backend weight.
	MaxWeight = 1000
	// MaxBackends is the most backends in one pool. It keeps the balancer's
	// ring indices in a uint16 and the linear fallback pass of a pick short.
	MaxBackends = 4096
)

// MaxConnsPerBackend bounds a backend's connection limit: a pool's
// max_conns_per_backend and a backend's own max_conns alike.
const MaxConnsPerBackend = 1_000_000

// CheckMaxConns is the one rule of a connection limit per backend (a pool's
// max_conns_per_backend, a backend's max_conns in the file or the admin API):
// 0 to MaxConnsPerBackend, 0 meaning no limit of its own. conf checks the
// file with it, the registry the admin API's bodies and the state file, and
// the balancer (balancer.ValidatePool) every pool it builds, so that none
// accepts what another refuses. The error says what is wrong, for the caller
// to prefix with the field.
func CheckMaxConns(n int64) error {
	if n < 0 || n > MaxConnsPerBackend {
		return fmt.Errorf("must be between 0 and %d, got %d", MaxConnsPerBackend, n)
	}
	return nil
}
