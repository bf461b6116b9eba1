package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/floodgate/floodgate/balancer"
	"github.com/floodgate/floodgate/conf"
	"github.com/floodgate/floodgate/health"
	"github.com/floodgate/floodgate/proxy"
)

// runtime holds the state that outlives config generations: per-backend live state
// (in-flight counts, health, ejections) and per-pool queues, keyed by name, so that
// a reload that keeps a backend keeps its health and its pooled connections.
type runtime struct {
	log     *slog.Logger
	px      *proxy.Server
	checker *health.Checker

	mu       sync.Mutex // serialises apply
	gen      uint64
	backends map[string]*balancer.BackendState // by backend ID "pool/address"
	pools    map[string]*balancer.PoolState
}

func newRuntime(log *slog.Logger, px *proxy.Server) *runtime {
	r := &runtime{
		log:      log,
		px:       px,
		backends: make(map[string]*balancer.BackendState),
		pools:    make(map[string]*balancer.PoolState),
	}
	// The checker sets each backend's state itself (BackendState is its Target)
	// and logs transitions.
	r.checker = health.NewChecker(health.Options{Logger: log})
	return r
}

// backendID names a backend across generations.
func backendID(pool, address string) string { return pool + "/" + address }

// unsupported lists the configured features that this build does not implement
// yet. They are refused rather than ignored: silently dropping allow_cidrs, for
// example, would expose a back office that the operator meant to protect.
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
		f := fmt.Sprintf("routes[%d].", i)
		if rt.Cache != nil && rt.Cache.Enabled {
			add(f + "cache")
		}
		if rt.RateLimit != nil {
			add(f + "rate_limit")
		}
		if len(rt.AllowCIDRs) > 0 {
			add(f + "allow_cidrs")
		}
		if len(rt.DenyCIDRs) > 0 {
			add(f + "deny_cidrs")
		}
		if rt.OnDegraded != nil {
			add(f + "on_degraded")
		}
	}
	return errors.Join(errs...)
}

// apply builds a new generation from cfg and swaps it in. On any error nothing
// changes: the previous generation keeps serving.
func (r *runtime) apply(cfg *conf.Config) error {
	if err := unsupported(cfg); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()

	// Build everything first, against copies of the state maps, so that a failure
	// part-way leaves the current state untouched.
	backends := make(map[string]*balancer.BackendState, len(r.backends))
	pools := make(map[string]*balancer.PoolState, len(cfg.Pools))
	spec := proxy.Spec{Gen: r.gen + 1}
	var probes []health.Probe
	for _, pc := range cfg.Pools {
		ps := r.pools[pc.Name]
		if ps == nil {
			ps = balancer.NewPoolState(pc.Name)
		}
		pools[pc.Name] = ps
		opts := balancer.PoolOptions{
			Name:               pc.Name,
			State:              ps,
			MaxConnsPerBackend: int64(pc.MaxConnsPerBackend),
			QueueMax:           pc.Queue.Max,
			QueueTimeout:       pc.Queue.Timeout,
			SlowStart:          pc.SlowStart,
			MaxFails:           pc.Passive.MaxFails,
			EjectFor:           pc.Passive.EjectFor,
		}
		for _, bc := range pc.Backends {
			id := backendID(pc.Name, bc.Address)
			st := r.backends[id]
			if st == nil {
				st = balancer.NewBackendState(id)
			}
			backends[id] = st
			opts.Backends = append(opts.Backends, balancer.BackendSpec{Address: bc.Address, Weight: bc.Weight, State: st})
			if pc.Health.Type != conf.HealthNone {
				probes = append(probes, health.Probe{
					Pool:    pc.Name,
					Address: bc.Address,
					Target:  st,
					StartUp: true,
					Check: health.Check{
						Type:              string(pc.Health.Type),
						Path:              pc.Health.Path,
						ExpectStatus:      pc.Health.ExpectStatus,
						Interval:          pc.Health.Interval,
						UnhealthyInterval: pc.Health.UnhealthyInterval,
						Timeout:           pc.Health.Timeout,
						Rise:              pc.Health.Rise,
						Fall:              pc.Health.Fall,
					},
				})
			} else {
				st.SetProbeUp(true)
			}
		}
		bp, err := balancer.NewPool(opts)
		if err != nil {
			return fmt.Errorf("pool %q: %w", pc.Name, err)
		}
		spec.Pools = append(spec.Pools, proxy.PoolSpec{
			Pool:               bp,
			ConnectTimeout:     pc.ConnectTimeout,
			ResponseTimeout:    pc.ResponseTimeout,
			Retries:            pc.Retries,
			MaxConnsPerBackend: pc.MaxConnsPerBackend,
		})
	}
	for _, rc := range cfg.Routes {
		spec.Routes = append(spec.Routes, proxy.RouteSpec{
			Name:       rc.Name,
			Host:       rc.Host,
			PathPrefix: rc.PathPrefix,
			Methods:    upper(rc.Methods),
			Pool:       rc.Pool,
		})
	}
	snap, err := r.px.Build(spec)
	if err != nil {
		return err
	}

	// Commit: nothing below can fail.
	r.gen++
	r.backends, r.pools = backends, pools
	r.px.Swap(snap)
	for _, ps := range pools {
		ps.Kick()
	}
	r.checker.Sync(probes)
	r.log.Info("config applied", "generation", r.gen, "pools", len(cfg.Pools), "routes", len(cfg.Routes))
	return nil
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
