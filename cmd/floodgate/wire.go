package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/floodgate/floodgate/conf"
	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/generation"
	"github.com/floodgate/floodgate/health"
	"github.com/floodgate/floodgate/proxy"
	"github.com/floodgate/floodgate/proxy/cache"
	"github.com/floodgate/floodgate/registry"
)

// unsupported lists the configured features that this build does not implement
// yet. They are refused rather than ignored.
func unsupported(cfg *conf.Config) error {
	var errs []error
	for i, rt := range cfg.Routes {
		if rt.Timeouts != nil {
			// The proxy applies response timeouts per pool only.
			errs = append(errs, fmt.Errorf("routes[%d].timeouts: not supported by this version of floodgate yet; set response_timeout on the pool", i))
		}
	}
	return errors.Join(errs...)
}

// criticalShare is the part of each backend's connection limit kept for
// critical routes (the back office) in pools that serve one.
const criticalShare = 0.1

// reservedShare returns the share of each backend's connection limit kept for
// critical routes of a pool: criticalShare if one of its routes is critical,
// else 0. The generation builder turns it into slots per backend
// (degrade.Reserve of each backend's own limit).
func reservedShare(cfg *conf.Config, pc conf.Pool) float64 {
	for _, rt := range cfg.Routes {
		if rt.Pool == pc.Name && rt.Priority == conf.PriorityCritical {
			return criticalShare
		}
	}
	return 0
}

// degradeSettings translates a pool's degrade section for the monitor. A pool
// without one never degrades by itself but follows the admin override.
func degradeSettings(pc conf.Pool) generation.Degrade {
	d := pc.Degrade
	if d == nil {
		return generation.Degrade{}
	}
	th := func(t conf.Thresholds) degrade.Thresholds {
		return degrade.Thresholds{InflightRatio: t.InflightRatio, QueueWait: t.QueueWait, P95Latency: t.P95Latency, ErrorRate: t.ErrorRate}
	}
	return generation.Degrade{Enter: th(d.Enter), Exit: th(d.Exit), Hold: d.Hold, Window: d.Window, Windows: d.Windows}
}

// degradedRoute fills a route's degraded-mode fields. The static file is read
// here, so a missing one fails the reload, not a request.
func degradedRoute(rs *proxy.RouteSpec, rc conf.Route) error {
	p, err := degrade.ParsePriority(string(rc.Priority))
	if err != nil {
		return err
	}
	rs.Priority = p
	od := rc.OnDegraded
	if od == nil {
		return nil
	}
	if rs.Action, err = degrade.ParseAction(string(od.Action)); err != nil {
		return err
	}
	if od.Action == conf.ActionShed {
		if rs.Shed, err = degrade.NewShed(od.Status, od.RetryAfter); err != nil {
			return fmt.Errorf("routes %q: on_degraded: %w", rc.Name, err)
		}
	} else {
		// The busy answer of the other actions (a stale miss that is not
		// admitted, a method capture does not take): 503 with Retry-After,
		// so that clients and crawlers know to come back.
		rs.Shed, _ = degrade.NewShed(0, 30*time.Second)
	}
	switch od.Action {
	case conf.ActionStatic:
		if rs.Static, err = degrade.LoadStatic(od.File, 0, map[string]string{"Retry-After": degrade.RetryAfter(30 * time.Second)}); err != nil {
			return fmt.Errorf("routes %q: on_degraded.file: %w", rc.Name, err)
		}
	case conf.ActionCapture:
		rs.CaptureMethods = upper(od.Methods)
		rs.CaptureAlways = od.When == "degraded"
		rs.CaptureMaxWait = od.MaxWait
	}
	return nil
}

// registryConfig translates the config file into the registry's terms, with
// the settings the generation builder reads (generation.PoolSettings,
// proxy.RouteSpec): the one place where the file format meets the runtime
// packages.
func registryConfig(cfg *conf.Config) (registry.Config, error) {
	var out registry.Config
	for _, pc := range cfg.Pools {
		ps := registry.PoolSpec{Name: pc.Name, Settings: generation.PoolSettings{
			MaxConnsPerBackend: pc.MaxConnsPerBackend,
			QueueMax:           pc.Queue.Max,
			QueueTimeout:       pc.Queue.Timeout,
			SlowStart:          pc.SlowStart,
			MaxFails:           pc.Passive.MaxFails,
			EjectFor:           pc.Passive.EjectFor,
			MaxEjectionPercent: pc.Passive.MaxEjectionPercent,
			ConnectTimeout:     pc.ConnectTimeout,
			ResponseTimeout:    pc.ResponseTimeout,
			Retries:            pc.Retries,
			Health:             healthCheck(pc.Health),
			CriticalShare:      reservedShare(cfg, pc),
			Degrade:            degradeSettings(pc),
		}}
		for _, bc := range pc.Backends {
			ps.Backends = append(ps.Backends, registry.BackendSpec{Address: bc.Address, Weight: bc.Weight, MaxConns: bc.MaxConns})
		}
		out.Pools = append(out.Pools, ps)
	}
	for _, rc := range cfg.Routes {
		rs := proxy.RouteSpec{
			Name:       rc.Name,
			Host:       rc.Host,
			PathPrefix: rc.PathPrefix,
			Methods:    upper(rc.Methods),
			Pool:       rc.Pool,
			AllowCIDRs: rc.AllowCIDRs,
			DenyCIDRs:  rc.DenyCIDRs,
		}
		if rl := rc.RateLimit; rl != nil {
			spec := &proxy.RateLimitSpec{Rate: rl.Rate.PerSecond(), Burst: rl.Burst, MaxKeys: rl.MaxKeys}
			if h, ok := strings.CutPrefix(rl.Key, "header:"); ok {
				spec.Header = h
			}
			rs.RateLimit = spec
		}
		if c := rc.Cache; c != nil && c.Enabled {
			rs.Cache = &cache.PolicyOptions{
				Route:          rc.Name,
				DefaultTTL:     c.TTL,
				MaxStale:       c.MaxStale,
				MaxObjectBytes: int(min(c.MaxObjectBytes, math.MaxInt)),
				CacheSetCookie: c.CacheSetCookie,
			}
		}
		if err := degradedRoute(&rs, rc); err != nil {
			return registry.Config{}, err
		}
		out.Routes = append(out.Routes, generation.Route(rs))
	}
	return out, nil
}

// healthCheck translates a pool's health section.
func healthCheck(h conf.Health) health.Check {
	if h.Type == conf.HealthNone || h.Type == "" {
		return health.Check{Type: health.TypeNone}
	}
	return health.Check{
		Type:              string(h.Type),
		Path:              h.Path,
		ExpectStatus:      h.ExpectStatus,
		Interval:          h.Interval,
		UnhealthyInterval: h.UnhealthyInterval,
		Timeout:           h.Timeout,
		Rise:              h.Rise,
		Fall:              h.Fall,
	}
}

func upper(ms []string) []string {
	if len(ms) == 0 {
		return nil
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = strings.ToUpper(m)
	}
	return out
}

// proxyOptions are the data plane's listener-wide settings. They are fixed when
// the proxy is built: see restartRequired.
func proxyOptions(cfg *conf.Config, log *slog.Logger, c *cache.Cache) proxy.Options {
	o := proxy.Options{
		Logger:            log,
		ReadHeaderTimeout: cfg.Timeouts.ClientHeader,
		BodyIdleTimeout:   cfg.Timeouts.ClientBody,
		WriteIdleTimeout:  cfg.Timeouts.ClientBody,
		IdleTimeout:       cfg.Timeouts.ClientIdle,
		MaxRequestBody:    cfg.Limits.MaxRequestBody,
		MaxHeaderBytes:    cfg.Limits.MaxHeaderBytes,
		MaxHeaderFields:   cfg.Limits.MaxHeaderFields,
		MaxConns:          cfg.Limits.MaxConns,
		MaxConnsPerIP:     cfg.Limits.MaxConnsPerIP,
		TrustedProxies:    cfg.TrustedProxies,
		Cache:             c,
	}
	if t := cfg.TLS; t != nil && t.RedirectHTTP {
		o.RedirectHTTPS = true
		if _, port, err := net.SplitHostPort(t.Listen); err == nil {
			o.HTTPSPort, _ = strconv.Atoi(port)
		}
	}
	return o
}

// restartRequired names the settings that differ between the config in service
// (as it was at start) and next, and that only a restart applies: sockets, and
// what proxy.Options and the cache take at construction. Everything else (pools,
// backends, routes, admin.drain_timeout, timeouts.shutdown_grace) applies on
// reload.
func restartRequired(running, next *conf.Config) []string {
	var out []string
	diff := func(name string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			out = append(out, name)
		}
	}
	diff("listen", running.Listen, next.Listen)
	diff("tls", running.TLS, next.TLS)
	diff("admin.listen", running.Admin.Listen, next.Admin.Listen)
	diff("admin.token_file", running.Admin.TokenFile, next.Admin.TokenFile)
	diff("admin.state_file", running.Admin.StateFile, next.Admin.StateFile)
	diff("timeouts.client_header", running.Timeouts.ClientHeader, next.Timeouts.ClientHeader)
	diff("timeouts.client_body", running.Timeouts.ClientBody, next.Timeouts.ClientBody)
	diff("timeouts.client_idle", running.Timeouts.ClientIdle, next.Timeouts.ClientIdle)
	diff("limits.max_request_body", running.Limits.MaxRequestBody, next.Limits.MaxRequestBody)
	diff("limits.max_header_bytes", running.Limits.MaxHeaderBytes, next.Limits.MaxHeaderBytes)
	diff("limits.max_header_fields", running.Limits.MaxHeaderFields, next.Limits.MaxHeaderFields)
	diff("limits.max_conns", running.Limits.MaxConns, next.Limits.MaxConns)
	diff("limits.max_conns_per_ip", running.Limits.MaxConnsPerIP, next.Limits.MaxConnsPerIP)
	diff("trusted_proxies", running.TrustedProxies, next.TrustedProxies)
	diff("access_log", running.AccessLog, next.AccessLog)
	diff("cache.max_bytes", running.Cache.MaxBytes, next.Cache.MaxBytes)
	diff("capture", running.Capture, next.Capture)
	return out
}
