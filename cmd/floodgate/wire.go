package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"strings"

	"github.com/floodgate/floodgate/conf"
	"github.com/floodgate/floodgate/health"
	"github.com/floodgate/floodgate/proxy"
	"github.com/floodgate/floodgate/proxy/cache"
	"github.com/floodgate/floodgate/registry"
)

// unsupported lists the configured features that this build does not implement
// yet. They are refused rather than ignored: silently dropping a degraded action,
// for example, would leave a checkout unprotected that the operator meant to
// protect.
func unsupported(cfg *conf.Config) error {
	var errs []error
	add := func(field string) {
		errs = append(errs, fmt.Errorf("%s: not supported by this version of floodgate yet", field))
	}
	if cfg.TLS != nil {
		add("tls")
	}
	if cfg.AccessLog != nil {
		add("access_log")
	}
	if cfg.Capture != nil {
		add("capture")
	}
	for i, p := range cfg.Pools {
		if p.Degrade != nil {
			add(fmt.Sprintf("pools[%d].degrade", i))
		}
	}
	for i, rt := range cfg.Routes {
		if rt.OnDegraded != nil {
			add(fmt.Sprintf("routes[%d].on_degraded", i))
		}
		if rt.Timeouts != nil {
			// The proxy applies response timeouts per pool only.
			add(fmt.Sprintf("routes[%d].timeouts", i))
		}
	}
	return errors.Join(errs...)
}

// registryConfig translates the config file into the registry's terms: the one
// place where the file format meets the runtime packages.
func registryConfig(cfg *conf.Config) registry.Config {
	var out registry.Config
	for _, pc := range cfg.Pools {
		ps := registry.PoolSpec{Name: pc.Name, Config: registry.PoolConfig{
			MaxConnsPerBackend: pc.MaxConnsPerBackend,
			QueueMax:           pc.Queue.Max,
			QueueTimeout:       pc.Queue.Timeout,
			SlowStart:          pc.SlowStart,
			MaxFails:           pc.Passive.MaxFails,
			EjectFor:           pc.Passive.EjectFor,
			ConnectTimeout:     pc.ConnectTimeout,
			ResponseTimeout:    pc.ResponseTimeout,
			Retries:            pc.Retries,
			Health:             healthCheck(pc.Health),
		}}
		for _, bc := range pc.Backends {
			ps.Backends = append(ps.Backends, registry.BackendSpec{Address: bc.Address, Weight: bc.Weight})
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
		out.Routes = append(out.Routes, rs)
	}
	return out
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
	return proxy.Options{
		Logger:            log,
		ReadHeaderTimeout: cfg.Timeouts.ClientHeader,
		BodyIdleTimeout:   cfg.Timeouts.ClientBody,
		WriteIdleTimeout:  cfg.Timeouts.ClientBody,
		IdleTimeout:       cfg.Timeouts.ClientIdle,
		MaxRequestBody:    cfg.Limits.MaxRequestBody,
		MaxHeaderBytes:    cfg.Limits.MaxHeaderBytes,
		MaxConns:          cfg.Limits.MaxConns,
		MaxConnsPerIP:     cfg.Limits.MaxConnsPerIP,
		TrustedProxies:    cfg.TrustedProxies,
		Cache:             c,
	}
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
	diff("limits.max_conns", running.Limits.MaxConns, next.Limits.MaxConns)
	diff("limits.max_conns_per_ip", running.Limits.MaxConnsPerIP, next.Limits.MaxConnsPerIP)
	diff("trusted_proxies", running.TrustedProxies, next.TrustedProxies)
	diff("access_log", running.AccessLog, next.AccessLog)
	diff("cache.max_bytes", running.Cache.MaxBytes, next.Cache.MaxBytes)
	diff("capture", running.Capture, next.Capture)
	return out
}
