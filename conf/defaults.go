package conf

import (
	"net/netip"
	"time"

	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/internal/limits"
)

// Defaults that do not depend on other keys. The decoder calls setDefaults on
// a section just before decoding the keys written in it, so every key that is
// not written keeps these values. Defaults that depend on another key (a
// health path only for type http, a burst derived from the rate) are filled
// after decoding, in (*decoder).fill.

func (c *Config) setDefaults() {
	c.Listen = ":8080"
	c.Timeouts.setDefaults()
	c.Limits.setDefaults()
	c.Admin.setDefaults()
	c.Cache.setDefaults()
}

func (t *Timeouts) setDefaults() {
	*t = Timeouts{
		ClientHeader:  10 * time.Second,
		ClientBody:    60 * time.Second,
		ClientIdle:    60 * time.Second,
		ShutdownGrace: 30 * time.Second,
	}
}

func (l *Limits) setDefaults() {
	*l = Limits{
		MaxRequestBody:  64 << 20,
		MaxHeaderBytes:  16 << 10,
		MaxHeaderFields: 100,
		MaxConns:        10000,
	}
}

func (t *TLS) setDefaults() { t.Listen = ":8443" }

func (a *Admin) setDefaults() {
	*a = Admin{Listen: "127.0.0.1:9090", DrainTimeout: 30 * time.Second}
}

func (c *Cache) setDefaults() { c.MaxBytes = 256 << 20 }

func (c *Capture) setDefaults() {
	*c = Capture{ReplayRate: Rate{Events: 50, Per: time.Second}, ReplayConcurrency: 8}
}

func (p *Pool) setDefaults() {
	*p = Pool{
		ConnectTimeout:  2 * time.Second,
		ResponseTimeout: 30 * time.Second,
		Retries:         1,
	}
	// No health section means no active probing; a health section without a
	// type means HTTP, the check that catches the most.
	p.Health.setDefaults()
	p.Health.Type = HealthNone
	p.Queue.setDefaults()
	p.Passive.setDefaults()
}

func (b *Backend) setDefaults() { b.Weight = 1 }

func (h *Health) setDefaults() {
	*h = Health{
		Type:     HealthHTTP,
		Interval: 2 * time.Second,
		Timeout:  time.Second,
		Rise:     2,
		Fall:     3,
	}
}

func (q *Queue) setDefaults() { *q = Queue{Timeout: time.Second} }

func (p *Passive) setDefaults() {
	*p = Passive{MaxFails: 5, EjectFor: 10 * time.Second, MaxEjectionPercent: 50}
}

func (d *Degrade) setDefaults() {
	*d = Degrade{Hold: 30 * time.Second, Window: degrade.DefaultWindow, Windows: degrade.DefaultWindows}
}

func (r *Route) setDefaults() { r.Priority = PriorityNormal }

func (c *RouteCache) setDefaults() { *c = RouteCache{MaxStale: time.Hour, MaxObjectBytes: 8 << 20} }

func (r *RateLimit) setDefaults() { *r = RateLimit{Key: "ip", MaxKeys: limits.DefaultMaxKeys} }

// fill sets the defaults that depend on other keys, and normalises values
// whose spelling does not matter.
func (d *decoder) fill(c *Config) {
	for i := range c.Pools {
		p := &c.Pools[i]
		f := field("pools", i)
		h := &p.Health
		if h.Type == HealthHTTP && !d.has(f+".health.path") {
			h.Path = "/healthz"
		}
		if !d.has(f + ".health.unhealthy_interval") {
			h.UnhealthyInterval = h.Interval
		}
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		f := field("routes", i)
		r.Host = lowerASCII(r.Host)
		if n := len(r.Host); n > 2 && r.Host[0] == '[' && r.Host[n-1] == ']' {
			// One spelling per IPv6 address (RFC 5952), the one requests are
			// routed on, so that two spellings are one host to the
			// duplicate check too.
			if ip, err := netip.ParseAddr(r.Host[1 : n-1]); err == nil && ip.Is6() && ip.Zone() == "" {
				r.Host = "[" + ip.String() + "]"
			}
		}
		if rl := r.RateLimit; rl != nil && !d.has(f+".rate_limit.burst") {
			rl.Burst = limits.DefaultBurst(rl.Rate.PerSecond())
		}
		if od := r.OnDegraded; od != nil {
			switch od.Action {
			case ActionShed:
				if !d.has(f + ".on_degraded.status") {
					od.Status = 503
				}
				if !d.has(f + ".on_degraded.retry_after") {
					od.RetryAfter = 30 * time.Second
				}
			case ActionCapture:
				if !d.has(f + ".on_degraded.methods") {
					od.Methods = []string{"POST"}
				}
				if !d.has(f + ".on_degraded.when") {
					od.When = "refused"
				}
			}
		}
	}
}

// lowerASCII lowercases host names; a non-ASCII host is left for validation
// to refuse (hosts must be written in their punycode form). Not
// strings.ToLower, which maps some non-ASCII letters to ASCII (the Kelvin sign
// U+212A to "k") and so would let such a host pass.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
