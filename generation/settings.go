package generation

import (
	"time"

	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/health"
	"github.com/floodgate/floodgate/proxy"
	"github.com/floodgate/floodgate/registry"
)

// PoolSettings is everything about a pool except its backends, in the terms of
// the runtime packages: what registry.PoolSpec.Settings holds. It is a plain
// value.
type PoolSettings struct {
	// MaxConnsPerBackend caps in-flight requests per backend; 0 is unlimited.
	MaxConnsPerBackend int
	// QueueMax is how many requests may wait for a slot; see
	// balancer.PoolOptions.
	QueueMax int
	// QueueTimeout is the longest wait in the queue.
	QueueTimeout time.Duration
	// SlowStart ramps new and recovered backends; 0 is off.
	SlowStart time.Duration
	// MaxFails consecutive failures eject a backend; 0 turns passive health
	// off.
	MaxFails int
	// EjectFor is how long an ejection lasts.
	EjectFor time.Duration
	// MaxEjectionPercent bounds how much of the pool passive health ejects at
	// once; see balancer.PoolOptions. 0 is the balancer's default.
	MaxEjectionPercent int
	// ConnectTimeout bounds dialling a backend; see proxy.PoolSpec.
	ConnectTimeout time.Duration
	// ResponseTimeout bounds a backend's answer.
	ResponseTimeout time.Duration
	// Retries is how many other backends an idempotent request is tried on.
	Retries int
	// CriticalShare is the share of each backend's connection limit (its
	// own max_conns, else MaxConnsPerBackend) that only critical routes may
	// use, rounded by degrade.Reserve; see balancer.PoolOptions.Reserved. 0
	// reserves nothing.
	CriticalShare float64
	// Health is the active check; Type "" or "none" means none.
	Health health.Check
	// Degrade is the pool's degraded-mode policy; the zero value never
	// degrades by itself but follows the admin override. It applies when the
	// Manager has a Monitor.
	Degrade Degrade
}

// Degrade is a pool's degraded-mode policy: the fields of degrade.PoolConfig
// that the config file sets.
type Degrade struct {
	Enter, Exit degrade.Thresholds
	Hold        time.Duration
	Window      time.Duration
	Windows     int
}

// PoolConfig is the monitor's configuration of the pool named name with this
// policy, sampling src: the one translation, which the builder uses.
func (d Degrade) PoolConfig(name string, src degrade.SignalSource) degrade.PoolConfig {
	return degrade.PoolConfig{Name: name, Source: src, Enter: d.Enter, Exit: d.Exit, Hold: d.Hold, Window: d.Window, Windows: d.Windows}
}

// activeHealth reports whether the pool probes its backends.
func (s PoolSettings) activeHealth() bool {
	return s.Health.Type == health.TypeHTTP || s.Health.Type == health.TypeTCP
}

// Probed is registry.Options.Probed for PoolSettings: whether backends added
// at runtime start down until their rise probes pass.
func Probed(settings any) bool {
	s, ok := settings.(PoolSettings)
	return ok && s.activeHealth()
}

// Route is the registry's form of a route.
func Route(rs proxy.RouteSpec) registry.RouteSpec {
	return registry.RouteSpec{Name: rs.Name, Pool: rs.Pool, Spec: rs}
}

// Routes is Route of each.
func Routes(rss ...proxy.RouteSpec) []registry.RouteSpec {
	out := make([]registry.RouteSpec, len(rss))
	for i, rs := range rss {
		out[i] = Route(rs)
	}
	return out
}
