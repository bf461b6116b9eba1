package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"golang.org/x/time/rate"

	"github.com/floodgate/floodgate/admin"
	"github.com/floodgate/floodgate/conf"
	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/degrade/capture"
	"github.com/floodgate/floodgate/generation"
	"github.com/floodgate/floodgate/health"
	"github.com/floodgate/floodgate/metrics"
	"github.com/floodgate/floodgate/proxy"
	"github.com/floodgate/floodgate/proxy/cache"
	"github.com/floodgate/floodgate/registry"
)

// The registry and its generations are what the admin API drives.
var (
	_ admin.Registry     = (*generation.Manager)(nil)
	_ admin.HealthStatus = (*health.Checker)(nil)
)

// adminShutdownGrace bounds how long admin requests in progress (a DELETE
// waiting for a drain) may run once the proxy has drained.
const adminShutdownGrace = 5 * time.Second

// serveOptions is what serve runs.
type serveOptions struct {
	// path is the config file, re-read on reload; "" when there is none (demo).
	path string
	// data is the file's contents as cfg was parsed from, for the reload hash.
	data []byte
	cfg  *conf.Config
	// ignoreState starts even when the state file is corrupt, moving it aside.
	ignoreState bool
	// monitor, when set (by tests), stands between the commit step and the
	// degraded-mode monitor: a test makes the monitor's part of a reload fail.
	monitor func(*degrade.Monitor) generation.Monitor
}

// serve runs floodgate for o.cfg until ctx ends, then drains and returns nil. An
// error means it could not start (or a listener failed).
func serve(ctx context.Context, log *slog.Logger, o serveOptions) error {
	cfg := o.cfg
	// Taken over first: SIGHUP's default action would end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// Everything that reads files and checks the config against the
	// runtime, before any socket: the same function as -check.
	pre, err := prepare(ctx, log, cfg, o.ignoreState)
	if err != nil {
		return err
	}
	token, saved, certs := pre.token, pre.saved, pre.certs
	if pre.corrupt != nil {
		if err := moveStateAside(log, pre.corrupt); err != nil {
			return err
		}
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	defer ln.Close()
	adminLn, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		return fmt.Errorf("admin.listen %s: %w", cfg.Admin.Listen, err)
	}
	defer adminLn.Close()
	// conf refuses this already; the check is repeated on the socket actually
	// bound (a name could resolve anywhere), because an admin API open to the
	// network without a token gives anyone control of the traffic.
	if len(token) == 0 && !isLoopback(adminLn.Addr()) {
		return fmt.Errorf("admin.listen %s (%s) is not a loopback address and admin.token_file is not set: refusing to serve the admin API without authentication", cfg.Admin.Listen, adminLn.Addr())
	}

	// The access log and the capture journal are opened before anything
	// serves: an unwritable journal stops the start.
	var tlsLn net.Listener
	if t := cfg.TLS; t != nil {
		if tlsLn, err = net.Listen("tcp", t.Listen); err != nil {
			return fmt.Errorf("tls.listen %s: %w", t.Listen, err)
		}
		defer tlsLn.Close()
	}
	var accessLog *proxy.AccessLog
	if a := cfg.AccessLog; a != nil {
		if accessLog, err = proxy.NewAccessLog(a.Path); err != nil {
			return err
		}
		defer accessLog.Close()
	}

	prom := prometheus.NewRegistry()
	prom.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var respCache *cache.Cache
	if cfg.Cache.MaxBytes > 0 {
		respCache, err = cache.New(cache.Options{
			MaxBytes: cfg.Cache.MaxBytes, Logger: log,
			ErrorHandler: proxy.CacheError, Forwarded: proxy.CacheForwarded,
		})
		if err != nil {
			return err
		}
		defer respCache.Close()
	}
	var journal *capture.Journal
	var capt *proxy.Capture
	if c := cfg.Capture; c != nil {
		if journal, err = capture.Open(capture.Options{Dir: c.Dir, Logger: log}); err != nil {
			return fmt.Errorf("capture.dir: %w", err)
		}
		defer journal.Close()
		if capt, err = proxy.NewCapture(proxy.CaptureOptions{Journal: journal}); err != nil {
			return err
		}
	}
	popts := proxyOptions(cfg, log, respCache)
	popts.AccessLog, popts.Capture = accessLog, capt
	px := proxy.New(popts)
	mon := degrade.NewMonitor(degrade.MonitorOptions{Logger: log})
	defer mon.Close()
	checker := health.NewChecker(health.Options{Logger: log})
	defer checker.Close()
	var persist func(registry.State) error
	if path := cfg.Admin.StateFile; path != "" {
		persist = func(st registry.State) error { return registry.SaveState(path, st) }
	}
	var monitor generation.Monitor = mon
	if o.monitor != nil {
		monitor = o.monitor(mon)
	}
	reg, err := generation.New(generation.Options{Dataplane: px, Health: checker, Monitor: monitor, Logger: log, Persist: persist})
	if err != nil {
		return err
	}
	// Each package exports the figures it owns (metrics/doc.go).
	owned := []prometheus.Collector{px.Collector(), mon.Collector()}
	if respCache != nil {
		owned = append(owned, respCache.Collector())
	}
	if journal != nil {
		owned = append(owned, journal.Collector())
	}
	m, err := metrics.New(prom, metrics.Sources{View: reg.View, Collectors: owned})
	if err != nil {
		return err
	}

	// The watcher outlives the listeners: it stops after the drain.
	regCtx, regCancel := context.WithCancel(context.Background())
	regDone := make(chan error, 1)
	go func() { regDone <- reg.Run(regCtx) }()
	defer func() { regCancel(); <-regDone }()

	// One commit step puts the first generation in service: pools, routes,
	// health checks and degraded mode, all of it or (an error) none.
	initRes, err := reg.Init(ctx, pre.rcfg, saved)
	if err != nil {
		return fmt.Errorf("apply config: %w", err)
	}
	for _, s := range initRes.Skipped {
		log.Warn("state file entry not restored", "path", cfg.Admin.StateFile, "entry", s)
	}
	if cfg.Admin.StateFile != "" {
		// Rewrite it now: the restored state as it applies, and proof that the
		// file can be written before any API call needs it.
		if err := registry.SaveState(cfg.Admin.StateFile, reg.State()); err != nil {
			return fmt.Errorf("admin.state_file: %w", err)
		}
		if initRes.Restored > 0 {
			log.Info("state restored", "path", cfg.Admin.StateFile, "entries", initRes.Restored)
		}
	}

	rl := newReloader(o.path, o.data, cfg, log, reg, m)
	var reloader admin.Reloader
	if o.path != "" {
		reloader = rl
	}
	aopts := admin.Options{
		Registry:     reg,
		Reloader:     reloader,
		Health:       checker,
		Metrics:      promhttp.HandlerFor(prom, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError)}),
		Token:        token,
		DrainTimeout: rl.DrainTimeout,
		Logger:       log,
		Degrade:      mon,
		Routes:       px.RouteStats,
	}
	if journal != nil {
		aopts.Captures = journal
	}
	if respCache != nil {
		aopts.Cache, aopts.CacheMaxBytes = respCache, cfg.Cache.MaxBytes
	}
	api, err := admin.New(aopts)
	if err != nil {
		return err
	}
	adminSrv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return px.Serve(ln) })
	g.Go(func() error { return mon.Run(gctx) })
	g.Go(func() error { return api.Run(gctx) }) // the status page's once-a-second sampler
	if certs != nil {
		g.Go(func() error { return px.ServeTLS(tlsLn, certs) })
		if err := certs.Watch(gctx); err != nil {
			log.Warn("not watching the certificate files; restart to load new ones", "error", err.Error())
		}
	}
	if journal != nil {
		rate := rate.Limit(cfg.Capture.ReplayRate.PerSecond())
		stopReplay := journal.StartReplay(gctx, px.Sender(), capture.ReplayOptions{Rate: rate, Concurrency: cfg.Capture.ReplayConcurrency, Ready: px.PoolReady})
		defer stopReplay()
	}
	if accessLog != nil {
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		defer signal.Stop(usr1)
		g.Go(func() error {
			for {
				select {
				case <-gctx.Done():
					return nil
				case <-usr1:
					if err := accessLog.Reopen(); err != nil {
						log.Error("access log reopen failed, still writing to the old file", "error", err.Error())
					} else {
						log.Info("access log reopened")
					}
				}
			}
		})
	}
	g.Go(func() error {
		if err := adminSrv.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("admin: %w", err)
		}
		return nil
	})
	if o.path != "" {
		w, err := conf.NewWatcher(o.path, conf.DefaultDebounce)
		if err != nil {
			log.Warn("not watching the config file; reload with SIGHUP or POST /api/v1/reload", "error", err.Error())
		} else {
			g.Go(func() error {
				return w.Run(gctx,
					func() { _, _ = rl.reload(gctx, "file", false) },
					func(err error) { log.Warn("config file watch", "error", err.Error()) })
			})
		}
	}
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-hup:
				if o.path == "" {
					log.Warn("SIGHUP: floodgate runs without a config file, nothing to reload")
					continue
				}
				_, _ = rl.reload(gctx, "SIGHUP", true)
			}
		}
	})
	log.Info("floodgate listening", "addr", ln.Addr().String(), "admin", adminLn.Addr().String(), "version", version)

	g.Go(func() error {
		<-gctx.Done()
		// Readiness first, so a load balancer in front stops sending, then the
		// drain, then the admin API.
		api.SetDraining()
		grace := rl.ShutdownGrace()
		log.Info("draining", "grace", grace.String())
		sctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		if err := px.Shutdown(sctx); errors.Is(err, context.DeadlineExceeded) {
			log.Warn("grace period over, closing remaining connections", "grace", grace.String())
		} else if err != nil {
			return err
		}
		actx, acancel := context.WithTimeout(context.Background(), adminShutdownGrace)
		defer acancel()
		if err := adminSrv.Shutdown(actx); err != nil {
			adminSrv.Close()
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// isLoopback reports whether a bound listener address is a loopback one.
func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// loadToken reads the admin token file, if one is set: the token is its
// contents without the trailing newline. The token is never logged.
func loadToken(log *slog.Logger, path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("admin.token_file: %w", err)
	}
	if fi.Size() > 4096 {
		return nil, fmt.Errorf("admin.token_file %s: larger than 4096 bytes; it should hold one token", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("admin.token_file: %w", err)
	}
	token := bytes.TrimRight(data, "\r\n")
	switch {
	case len(token) == 0:
		return nil, fmt.Errorf("admin.token_file %s is empty", path)
	case bytes.ContainsAny(token, "\r\n"):
		return nil, fmt.Errorf("admin.token_file %s: the token must be one line", path)
	case len(bytes.TrimSpace(token)) != len(token):
		return nil, fmt.Errorf("admin.token_file %s: the token must not start or end with spaces", path)
	}
	if len(token) < 16 {
		log.Warn("the admin token is short; use at least 32 random characters", "path", path, "length", len(token))
	}
	if fi.Mode().Perm()&0o077 != 0 {
		log.Warn("the admin token file is readable by other users; chmod 600 it", "path", path, "mode", fi.Mode().Perm().String())
	}
	return token, nil
}

// moveStateAside moves a corrupt state file aside (kept for inspection), for
// a start with -ignore-state.
func moveStateAside(log *slog.Logger, corrupt *registry.CorruptStateError) error {
	aside := fmt.Sprintf("%s.corrupt-%s", corrupt.Path, time.Now().UTC().Format("20060102T150405Z"))
	if err := os.Rename(corrupt.Path, aside); err != nil {
		return fmt.Errorf("%v; and moving it aside failed: %w", corrupt, err)
	}
	log.Warn("state file is corrupt; starting without it (-ignore-state), the file was moved aside",
		"path", corrupt.Path, "moved_to", aside, "error", corrupt.Err.Error())
	return nil
}
