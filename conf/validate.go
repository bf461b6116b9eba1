package conf

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/health"
	"github.com/floodgate/floodgate/internal/hostport"
	"github.com/floodgate/floodgate/internal/httpwire"
	"github.com/floodgate/floodgate/internal/ident"
	"github.com/floodgate/floodgate/internal/limits"
)

// Bounds. Every list, count and duration has one, so that a typo (an extra
// zero, "h" for "m") is an error instead of a proxy that holds connections
// for a week or allocates a billion rate-limit buckets.
const (
	maxPools        = 1000
	maxBackends     = limits.MaxBackends // per pool, the balancer's bound
	maxRoutes       = 10000
	maxCIDRs        = 10000 // per list
	maxCertificates = 100
	maxMethods      = 32
	maxTokenLen     = 64 // methods and header names

	maxTimeout       = time.Hour
	maxCacheDuration = 30 * 24 * time.Hour

	maxBodySize   = 64 << 30
	maxCacheBytes = 64 << 30
	minHeaderSize = 1 << 10
	maxHeaderSize = 1 << 20

	maxHeaderFields = 10_000

	maxConns      = 10_000_000
	maxQueue      = 1_000_000
	maxRetries    = 5
	maxFails      = 1000
	maxWeight     = limits.MaxWeight
	maxRatePerSec = 1_000_000
	maxReplayConc = 256
)

func field(list string, i int) string { return list + "[" + strconv.Itoa(i) + "]" }

// validate checks c, which fill has completed, and records every problem.
func (d *decoder) validate(c *Config) {
	d.hostPort("listen", c.Listen, false)
	d.duration("timeouts.client_header", c.Timeouts.ClientHeader, 1, maxTimeout)
	d.duration("timeouts.client_body", c.Timeouts.ClientBody, 1, maxTimeout)
	d.duration("timeouts.client_idle", c.Timeouts.ClientIdle, 1, maxTimeout)
	d.duration("timeouts.shutdown_grace", c.Timeouts.ShutdownGrace, 1, maxTimeout)

	d.size("limits.max_request_body", c.Limits.MaxRequestBody, 1, maxBodySize)
	d.size("limits.max_header_bytes", int64(c.Limits.MaxHeaderBytes), minHeaderSize, maxHeaderSize)
	d.intRange("limits.max_header_fields", c.Limits.MaxHeaderFields, 1, maxHeaderFields)
	d.intRange("limits.max_conns", c.Limits.MaxConns, 0, maxConns)
	d.intRange("limits.max_conns_per_ip", c.Limits.MaxConnsPerIP, 0, maxConns)
	if l := c.Limits; l.MaxConns > 0 && l.MaxConnsPerIP > l.MaxConns {
		d.errorf("limits.max_conns_per_ip", "must not exceed limits.max_conns (%d), got %d", l.MaxConns, l.MaxConnsPerIP)
	}

	if t := c.TLS; t != nil {
		d.hostPort("tls.listen", t.Listen, false)
		switch {
		case len(t.Certificates) == 0:
			d.errorf("tls.certificates", "at least one {cert_file, key_file} pair is required")
		case len(t.Certificates) > maxCertificates:
			d.errorf("tls.certificates", "at most %d certificates, got %d", maxCertificates, len(t.Certificates))
		}
		for i, cert := range t.Certificates {
			f := field("tls.certificates", i)
			d.required(f+".cert_file", cert.CertFile)
			d.required(f+".key_file", cert.KeyFile)
		}
	}

	d.hostPort("admin.listen", c.Admin.Listen, false)
	if c.Admin.TokenFile == "" && !isLoopback(c.Admin.Listen) {
		// At the listen line: that is the value that makes the token needed.
		d.errAt(d.lineOf("admin.listen"), "admin.token_file", "required when admin.listen is not loopback")
	}
	d.duration("admin.drain_timeout", c.Admin.DrainTimeout, 1, maxTimeout)
	d.listenerConflicts(c)

	d.cidrs("trusted_proxies", c.TrustedProxies)
	if c.AccessLog != nil {
		d.required("access_log.path", c.AccessLog.Path)
	}
	d.size("cache.max_bytes", c.Cache.MaxBytes, 0, maxCacheBytes)
	if cp := c.Capture; cp != nil {
		d.required("capture.dir", cp.Dir)
		d.rate("capture.replay_rate", cp.ReplayRate)
		d.intRange("capture.replay_concurrency", cp.ReplayConcurrency, 1, maxReplayConc)
	}

	d.listSize("pools", "pool", len(c.Pools), maxPools)
	pools := make(map[string]int, len(c.Pools))
	names := make([]string, 0, len(c.Pools))
	for i := range c.Pools {
		f := field("pools", i)
		p := &c.Pools[i]
		if d.uniqueName("pools", "pool", i, p.Name, pools) {
			names = append(names, p.Name)
		}
		d.pool(f, p)
	}

	d.listSize("routes", "route", len(c.Routes), maxRoutes)
	routes := make(map[string]int, len(c.Routes))
	type match struct{ host, prefix string }
	matches := make(map[match]int, len(c.Routes))
	captureUsed := -1
	for i := range c.Routes {
		f := field("routes", i)
		r := &c.Routes[i]
		d.uniqueName("routes", "route", i, r.Name, routes)
		if r.Pool == "" {
			d.errorf(f+".pool", "required")
		} else if _, ok := pools[r.Pool]; !ok {
			if hint := suggest(r.Pool, names); hint != "" {
				d.errorf(f+".pool", "unknown pool %s, did you mean %s?", quote(r.Pool), hint)
			} else {
				d.errorf(f+".pool", "unknown pool %s", quote(r.Pool))
			}
		}
		if d.pathPrefix(f+".path_prefix", r.PathPrefix) {
			m := match{r.Host, r.PathPrefix}
			if first, dup := matches[m]; dup {
				d.errorf(f+".path_prefix", "routes[%d] (line %d) already matches this host and path_prefix", first, d.lineOf(field("routes", first)))
			} else {
				matches[m] = i
			}
		}
		d.route(f, r, c)
		if od := r.OnDegraded; od != nil && od.Action == ActionCapture && captureUsed < 0 {
			captureUsed = i
		}
	}
	// With a capture section but no dir, capture.dir: required is already
	// reported at the section.
	if captureUsed >= 0 && c.Capture == nil {
		at := d.lineOf(field("routes", captureUsed) + ".on_degraded.action")
		d.errAt(at, "capture.dir", "required because %s uses on_degraded action capture", field("routes", captureUsed))
	}
}

func (d *decoder) pool(f string, p *Pool) {
	switch {
	case len(p.Backends) > maxBackends:
		d.errorf(f+".backends", "at most %d backends, got %d", maxBackends, len(p.Backends))
	}
	addrs := make(map[string]int, len(p.Backends))
	for i, b := range p.Backends {
		bf := field(f+".backends", i)
		// The check the registry makes at start and on the admin API, and
		// the address in its one spelling from here on (so two spellings of
		// one backend are a duplicate, not two backends).
		if c, err := hostport.Backend(b.Address); err != nil {
			d.errorf(bf+".address", "%v", err)
		} else {
			p.Backends[i].Address = c
			if first, dup := addrs[c]; dup {
				msg := quote(b.Address)
				if c != b.Address {
					msg += " (" + c + ")"
				}
				d.errorf(bf+".address", "duplicate backend %s, first at line %d", msg, d.lineOf(field(f+".backends", first)))
			} else {
				addrs[c] = i
			}
		}
		d.intRange(bf+".weight", b.Weight, 0, maxWeight)
		d.maxConns(bf+".max_conns", b.MaxConns)
	}

	d.health(f+".health", p.Health)

	d.maxConns(f+".max_conns_per_backend", p.MaxConnsPerBackend)
	if d.intRange(f+".queue.max", p.Queue.Max, 0, maxQueue) && p.Queue.Max > 0 && p.MaxConnsPerBackend == 0 && !ownLimits(p.Backends) {
		d.errorf(f+".queue.max", "needs max_conns_per_backend > 0 (or max_conns on every backend): requests queue only when every backend is at its limit")
	}
	d.duration(f+".queue.timeout", p.Queue.Timeout, 1, maxTimeout)
	d.duration(f+".slow_start", p.SlowStart, 0, maxTimeout)
	d.duration(f+".connect_timeout", p.ConnectTimeout, 1, maxTimeout)
	d.duration(f+".response_timeout", p.ResponseTimeout, 1, maxTimeout)
	d.intRange(f+".retries", p.Retries, 0, maxRetries)
	d.intRange(f+".passive.max_fails", p.Passive.MaxFails, 0, maxFails)
	d.duration(f+".passive.eject_for", p.Passive.EjectFor, 1, maxTimeout)
	d.intRange(f+".passive.max_ejection_percent", p.Passive.MaxEjectionPercent, 1, 100)

	if g := p.Degrade; g != nil {
		d.degrade(f+".degrade", g)
	}
}

// health checks a pool's health section with the prober's own rule
// (health.Check.Problems). The file adds its own: the type's spelling (with a
// hint), path and expect_status only with type http, and no zero where the
// runtime would read one as its default: the file has defaults of its own, so
// "timeout: 0" would not mean what it reads as. The timings of a check of type
// none are held to the rule too (as a tcp check's): they apply once the type
// is changed.
func (d *decoder) health(hf string, h Health) {
	typ := string(h.Type)
	switch h.Type {
	case HealthHTTP:
	case HealthTCP, HealthNone:
		if h.Path != "" {
			d.errorf(hf+".path", "only valid with health type http")
		}
		if h.ExpectStatus != 0 {
			d.errorf(hf+".expect_status", "only valid with health type http")
		}
		typ = health.TypeTCP
	default:
		d.enum(hf+".type", string(h.Type), "http", "tcp", "none")
		return
	}
	hc := health.Check{Type: typ, Path: h.Path, ExpectStatus: h.ExpectStatus, Interval: h.Interval,
		UnhealthyInterval: h.UnhealthyInterval, Timeout: h.Timeout, Rise: h.Rise, Fall: h.Fall}
	if !d.has(hf + ".unhealthy_interval") {
		hc.UnhealthyInterval = 0 // a copy of interval (fill), which is checked already
	}
	for _, p := range hc.Problems() {
		d.errorf(hf+"."+p.Key, "%s", p.Msg)
	}
	if h.Type == HealthHTTP && h.Path == "" {
		d.errorf(hf+".path", "must start with /, got %s", quote(h.Path))
	}
	if d.has(hf+".unhealthy_interval") && h.UnhealthyInterval == 0 {
		d.errorf(hf+".unhealthy_interval", "must be greater than 0, got 0s")
	}
	if h.Timeout == 0 {
		d.errorf(hf+".timeout", "must be greater than 0, got 0s")
	}
	if h.Rise == 0 {
		d.errorf(hf+".rise", "must be between 1 and %d, got 0", health.MaxRiseFall)
	}
	if h.Fall == 0 {
		d.errorf(hf+".fall", "must be between 1 and %d, got 0", health.MaxRiseFall)
	}
}

// degrade checks a pool's degrade section with the monitor's own rule
// (degrade.Trigger.Check); only "an empty enter" is the file's: a section that
// sets no threshold is a mistake, where the monitor takes a pool without one.
func (d *decoder) degrade(f string, g *Degrade) {
	if g.Enter == (Thresholds{}) {
		d.errorf(f+".enter", "set at least one of inflight_ratio, queue_wait, p95_latency, error_rate")
	}
	th := func(t Thresholds) degrade.Thresholds {
		return degrade.Thresholds{InflightRatio: t.InflightRatio, QueueWait: t.QueueWait, P95Latency: t.P95Latency, ErrorRate: t.ErrorRate}
	}
	tr := degrade.Trigger{Enter: th(g.Enter), Exit: th(g.Exit), Hold: g.Hold, Window: g.Window, Windows: g.Windows}
	for _, p := range tr.Check() {
		d.errorf(f+"."+p.Key, "%s", p.Msg)
	}
}

func (d *decoder) route(f string, r *Route, c *Config) {
	if r.Host != "" {
		if msg := checkRouteHost(r.Host); msg != "" {
			d.errorf(f+".host", "%s", msg)
		}
	}
	d.methods(f+".methods", r.Methods)
	d.enum(f+".priority", string(r.Priority), "critical", "high", "normal", "low")

	if rc := r.Cache; rc != nil {
		cf := f + ".cache"
		d.duration(cf+".max_stale", rc.MaxStale, 0, maxCacheDuration)
		d.duration(cf+".ttl", rc.TTL, 0, maxCacheDuration)
		if d.size(cf+".max_object_bytes", rc.MaxObjectBytes, 1, maxCacheBytes) && rc.Enabled {
			if c.Cache.MaxBytes == 0 {
				d.errorf(cf+".enabled", "needs cache.max_bytes > 0")
			} else if rc.MaxObjectBytes > c.Cache.MaxBytes {
				d.errorf(cf+".max_object_bytes", "must not exceed cache.max_bytes (%d bytes), got %d bytes", c.Cache.MaxBytes, rc.MaxObjectBytes)
			}
		}
	}

	if rl := r.RateLimit; rl != nil {
		lf := f + ".rate_limit"
		header := ""
		if rl.Key != "ip" {
			name, ok := strings.CutPrefix(rl.Key, "header:")
			if !ok || name == "" {
				d.errorf(lf+".key", `must be "ip" or "header:NAME", got %s`, quote(rl.Key))
			}
			header = name
		}
		// The limiter's own rule (the proxy applies it when it builds a
		// generation).
		for _, p := range limits.CheckRateLimit(header, rl.Rate.PerSecond(), rl.Burst, rl.MaxKeys) {
			d.errorf(lf+"."+p.Key, "%s", p.Msg)
		}
	}

	d.cidrs(f+".allow_cidrs", r.AllowCIDRs)
	d.cidrs(f+".deny_cidrs", r.DenyCIDRs)

	if od := r.OnDegraded; od != nil {
		of := f + ".on_degraded"
		if od.Action == "" {
			d.errorf(of+".action", "required: one of stale, static, shed, capture")
		} else {
			d.enum(of+".action", string(od.Action), "stale", "static", "shed", "capture")
		}
		if od.Action == ActionShed {
			// The answer's own rule (degrade.NewShed applies it).
			for _, p := range degrade.CheckShed(od.Status, od.RetryAfter) {
				d.errorf(of+"."+p.Key, "%s", p.Msg)
			}
		} else {
			if od.Status != 0 {
				d.errorf(of+".status", "only valid with action shed")
			}
			if od.RetryAfter != 0 {
				d.errorf(of+".retry_after", "only valid with action shed")
			}
		}
		if od.Action == ActionStatic {
			d.required(of+".file", od.File)
		} else if od.File != "" {
			d.errorf(of+".file", "only valid with action static")
		}
		if od.Action == ActionCapture {
			if len(od.Methods) == 0 {
				d.errorf(of+".methods", "list at least one method, e.g. [POST]")
			}
			if d.methods(of+".methods", od.Methods) {
				for i, m := range od.Methods {
					if m == "GET" || m == "HEAD" {
						d.errorf(field(of+".methods", i), "%s cannot be captured: only requests that change state are journalled and answered 202", m)
					}
				}
			}
			d.enum(of+".when", od.When, "refused", "degraded")
			// The proxy's own rule (it applies it when it builds a generation).
			for _, p := range degrade.CheckMaxWait(od.MaxWait) {
				d.errorf(of+"."+p.Key, "%s", p.Msg)
			}
		} else {
			if od.Methods != nil {
				d.errorf(of+".methods", "only valid with action capture")
			}
			if od.When != "" {
				d.errorf(of+".when", "only valid with action capture")
			}
			if od.MaxWait != 0 {
				d.errorf(of+".max_wait", "only valid with action capture")
			}
		}
		if od.Action == ActionStale {
			switch {
			case r.Cache == nil || !r.Cache.Enabled:
				d.errorf(of+".action", "stale needs cache.enabled on this route")
			case r.Cache.MaxStale == 0:
				d.errorf(of+".action", "stale needs cache.max_stale > 0 on this route")
			}
		}
	}

	if rt := r.Timeouts; rt != nil {
		if rt.ResponseTimeout == 0 {
			d.errorf(f+".timeouts.response_timeout", "required when the route has a timeouts section")
		} else {
			d.duration(f+".timeouts.response_timeout", rt.ResponseTimeout, 1, maxTimeout)
		}
	}
}

// listenerConflicts catches two listeners on one port, which otherwise fails
// only at bind time, after the config was accepted.
func (d *decoder) listenerConflicts(c *Config) {
	type ln struct{ field, addr string }
	lns := []ln{{"listen", c.Listen}}
	if c.TLS != nil {
		lns = append(lns, ln{"tls.listen", c.TLS.Listen})
	}
	lns = append(lns, ln{"admin.listen", c.Admin.Listen})
	for i := 1; i < len(lns); i++ {
		for j := 0; j < i; j++ {
			if overlaps(lns[i].addr, lns[j].addr) {
				d.errorf(lns[i].field, "uses the same port as %s (%s)", lns[j].field, lns[j].addr)
				break
			}
		}
	}
}

func overlaps(a, b string) bool {
	ha, pa, err1 := net.SplitHostPort(a)
	hb, pb, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || pa != pb {
		return false
	}
	wild := func(h string) bool {
		ip, err := netip.ParseAddr(h)
		return h == "" || err == nil && ip.IsUnspecified()
	}
	return strings.EqualFold(ha, hb) || wild(ha) || wild(hb)
}

// Helpers below report a problem with one field and return whether the value
// was fine, so callers can skip checks that would only repeat it.

func (d *decoder) required(f, v string) bool {
	if v == "" {
		d.errorf(f, "required")
		return false
	}
	return true
}

func (d *decoder) duration(f string, v, lo, hi time.Duration) bool {
	switch {
	case v < lo && lo > 1:
		d.errorf(f, "must be at least %s, got %s", lo, v)
	case v < lo && lo == 1:
		d.errorf(f, "must be greater than 0, got %s", v)
	case v < lo:
		d.errorf(f, "must not be negative, got %s", v)
	case v > hi:
		d.errorf(f, "must be at most %s, got %s", fmtDuration(hi), v)
	default:
		return true
	}
	return false
}

func fmtDuration(v time.Duration) string {
	if v >= time.Hour && v%time.Hour == 0 {
		return strconv.FormatInt(int64(v/time.Hour), 10) + "h"
	}
	return v.String()
}

// ownLimits reports whether bs is a list of backends that each have a
// max_conns of their own.
func ownLimits(bs []Backend) bool {
	for _, b := range bs {
		if b.MaxConns <= 0 {
			return false
		}
	}
	return len(bs) > 0
}

// maxConns checks a connection limit per backend with the balancer's and the
// registry's own rule (limits.CheckMaxConns).
func (d *decoder) maxConns(f string, v int) {
	if err := limits.CheckMaxConns(int64(v)); err != nil {
		d.errorf(f, "%v", err)
	}
}

func (d *decoder) intRange(f string, v, lo, hi int) bool {
	if v < lo || v > hi {
		d.errorf(f, "must be between %d and %d, got %d", lo, hi, v)
		return false
	}
	return true
}

func (d *decoder) size(f string, v, lo, hi int64) bool {
	if v < lo || v > hi {
		d.errorf(f, "must be between %s and %s, got %s", fmtSize(lo), fmtSize(hi), fmtSize(v))
		return false
	}
	return true
}

// fmtSize writes a size the way the file would, exactly.
func fmtSize(v int64) string {
	for _, u := range []struct {
		unit string
		mult int64
	}{{"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}} {
		if v != 0 && v%u.mult == 0 {
			return strconv.FormatInt(v/u.mult, 10) + u.unit
		}
	}
	return strconv.FormatInt(v, 10) + "B"
}

func (d *decoder) ratio(f string, v float64) {
	if v < 0 || v > 1 || math.IsNaN(v) {
		d.errorf(f, "must be between 0 and 1, got %s", strconv.FormatFloat(v, 'g', -1, 64))
	}
}

func (d *decoder) rate(f string, r Rate) {
	if r.PerSecond() > maxRatePerSec {
		d.errorf(f, "must be at most %d/s, got %s/s", maxRatePerSec, strconv.FormatFloat(r.PerSecond(), 'g', -1, 64))
	}
}

func (d *decoder) enum(f, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	msg := fmt.Sprintf("must be one of %s, got %s", strings.Join(allowed, ", "), quote(v))
	if hint := suggest(v, allowed); hint != "" {
		msg += ", did you mean " + hint + "?"
	}
	d.errorf(f, "%s", msg)
}

func (d *decoder) cidrs(f string, v []netip.Prefix) {
	if len(v) > maxCIDRs {
		d.errorf(f, "at most %d entries, got %d", maxCIDRs, len(v))
	}
}

func (d *decoder) name(f, v string) bool {
	switch {
	case v == "":
		d.errorf(f, "required")
	case !ident.Valid(v):
		d.errorf(f, "must be 1 to %d characters from A-Z a-z 0-9 _ . -, got %s", ident.MaxLen, quote(v))
	default:
		return true
	}
	return false
}

// listSize checks that the list (of a kind: pool, route) has 1 to most items;
// it has n.
func (d *decoder) listSize(list, kind string, n, most int) {
	switch {
	case n == 0:
		d.errorf(list, "at least one %s is required", kind)
	case n > most:
		d.errorf(list, "at most %d %s, got %d", most, list, n)
	}
}

// uniqueName checks the name of list[i] (a kind: pool, route) and that no
// earlier item in seen has it, and records it there. It reports whether the
// name is valid and new.
func (d *decoder) uniqueName(list, kind string, i int, name string, seen map[string]int) bool {
	f := field(list, i) + ".name"
	if !d.name(f, name) {
		return false
	}
	if first, dup := seen[name]; dup {
		d.errorf(f, "duplicate %s name %s, first at line %d", kind, quote(name), d.lineOf(field(list, first)))
		return false
	}
	seen[name] = i
	return true
}

func (d *decoder) pathPrefix(f, v string) bool {
	switch {
	case v == "":
		d.errorf(f, "required, e.g. /")
	case v[0] != '/':
		d.errorf(f, "must start with /, got %s", quote(v))
	case len(v) > httpwire.CanonicalPathMax:
		// The router's bound (proxy refuses a longer prefix).
		d.errorf(f, "must be at most %d characters", httpwire.CanonicalPathMax)
	case strings.ContainsAny(v, " ?#"):
		d.errorf(f, "must be a URL path without spaces, ? or #, got %s", quote(v))
	default:
		return true
	}
	return false
}

// methods checks a list of HTTP methods: upper-case tokens, each once.
func (d *decoder) methods(f string, ms []string) bool {
	ok := true
	if len(ms) > maxMethods {
		d.errorf(f, "at most %d methods, got %d", maxMethods, len(ms))
		return false
	}
	for i, m := range ms {
		mf := field(f, i)
		switch {
		case !isToken(m):
			d.errorf(mf, "invalid method %s", quote(m))
			ok = false
		case strings.ToUpper(m) != m:
			d.errorf(mf, "methods are case-sensitive and upper-case, did you mean %s?", strings.ToUpper(m))
			ok = false
		case slices.Contains(ms[:i], m):
			d.errorf(mf, "duplicate method %s", m)
			ok = false
		}
	}
	return ok
}

// isToken reports whether s is an RFC 9110 token (httpwire.IsToken), the
// syntax of methods and header names, of at most 64 characters.
func isToken(s string) bool {
	return len(s) <= maxTokenLen && httpwire.IsToken(s)
}

// hostPort checks a listen address "host:port". needHost is for addresses we
// dial, where an empty host means nothing; backend addresses go through
// hostport.Backend instead.
func (d *decoder) hostPort(f, v string, needHost bool) bool {
	if v == "" {
		d.errorf(f, "required, e.g. 10.0.0.1:8080")
		return false
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		d.errorf(f, "must be host:port, e.g. 10.0.0.1:8080 or :8080, got %s", quote(v))
		return false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '+' {
		d.errorf(f, "port must be a number between 1 and 65535, got %s", quote(port))
		return false
	}
	switch {
	case host == "" && needHost:
		d.errorf(f, "needs a host, e.g. 10.0.0.1:8080, got %s", quote(v))
		return false
	case host == "":
		return true
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if !isHostname(host) {
		d.errorf(f, "invalid host %s", quote(host))
		return false
	}
	return true
}

func isHostname(h string) bool { return hostport.IsHostname(h) }

func isLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// checkRouteHost checks an already lower-cased route host: a name, a
// "*.name" wildcard, an IPv4 address or a bracketed IPv6 address, no port.
func checkRouteHost(h string) string {
	if strings.HasPrefix(h, "[") {
		if ip, err := netip.ParseAddr(strings.TrimSuffix(h[1:], "]")); err == nil && ip.Is6() && strings.HasSuffix(h, "]") && ip.Zone() == "" {
			return ""
		}
		return fmt.Sprintf("invalid IPv6 host %s, want e.g. [2001:db8::1] without a port", quote(h))
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		if ip.Is4() {
			return ""
		}
		return "IPv6 hosts are written in brackets, e.g. [2001:db8::1]"
	}
	if strings.Contains(h, ":") {
		return fmt.Sprintf("must not include a port, got %s", quote(h))
	}
	name := strings.TrimPrefix(h, "*.")
	if strings.Contains(name, "*") {
		return fmt.Sprintf("a wildcard is only allowed as a leading *. label, e.g. *.example.com, got %s", quote(h))
	}
	if !isHostname(name) || strings.HasSuffix(name, ".") {
		return fmt.Sprintf("invalid host %s", quote(h))
	}
	return ""
}
