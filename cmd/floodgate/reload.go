package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/floodgate/floodgate/admin"
	"github.com/floodgate/floodgate/conf"
	"github.com/floodgate/floodgate/generation"
	"github.com/floodgate/floodgate/internal/panics"
	"github.com/floodgate/floodgate/metrics"
	"github.com/floodgate/floodgate/registry"
)

// reloader re-reads the config file on a trigger (the file watcher, SIGHUP, or
// POST /api/v1/reload) and applies it: parse and validate the whole file, then
// one registry transaction, which commits only if the generation built from it
// (pools, routes, health checks, degraded mode) builds, and returns once that
// generation is in service. A bad file changes nothing: the previous config
// keeps serving and each problem is logged as PATH:LINE: message. Reloads are
// serialised. Safe for concurrent use.
type reloader struct {
	path    string
	log     *slog.Logger
	reg     *generation.Manager
	metrics *metrics.Metrics
	// boot is the config the process started with: settings that only a
	// restart changes keep its values, and reloads are compared with it.
	boot *conf.Config

	mu  sync.Mutex
	sum [sha256.Size]byte // of the file as last read, applied or not

	// Settings that apply on reload and are read elsewhere.
	drainTimeout  atomic.Int64 // admin.drain_timeout, nanoseconds
	shutdownGrace atomic.Int64 // timeouts.shutdown_grace, nanoseconds
}

var _ admin.Reloader = (*reloader)(nil)

func newReloader(path string, data []byte, boot *conf.Config, log *slog.Logger, reg *generation.Manager, m *metrics.Metrics) *reloader {
	r := &reloader{path: path, log: log, reg: reg, metrics: m, boot: boot, sum: sha256.Sum256(data)}
	r.setLive(boot)
	return r
}

func (r *reloader) setLive(cfg *conf.Config) {
	r.drainTimeout.Store(int64(cfg.Admin.DrainTimeout))
	r.shutdownGrace.Store(int64(cfg.Timeouts.ShutdownGrace))
}

// DrainTimeout is admin.drain_timeout as last applied.
func (r *reloader) DrainTimeout() time.Duration { return time.Duration(r.drainTimeout.Load()) }

// ShutdownGrace is timeouts.shutdown_grace as last applied.
func (r *reloader) ShutdownGrace() time.Duration { return time.Duration(r.shutdownGrace.Load()) }

// Reload is POST /api/v1/reload: always re-reads and applies the file.
func (r *reloader) Reload(ctx context.Context) (admin.ReloadResult, error) {
	if r.path == "" {
		return admin.ReloadResult{}, admin.ErrNoConfigFile
	}
	return r.reload(ctx, "api", true)
}

// reload reads the file and applies it. Unless force is set (SIGHUP, the API: an
// operator asked), a file whose hash is the one last read is skipped, and that
// hash is recorded even when the file is rejected, so that a bad file is not
// retried in a loop by the watcher. The error is an *admin.ConfigError when the
// file is at fault. A panic while reloading (a bug met on this file) is
// contained: counted, logged, and the reload fails with the previous config
// serving, as for any other failure.
func (r *reloader) reload(ctx context.Context, trigger string, force bool) (out admin.ReloadResult, rerr error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer func() {
		if v := recover(); v != nil {
			panics.Contain(r.log, "reload ("+trigger+")", v)
			out, rerr = admin.ReloadResult{}, r.fail(trigger, fmt.Errorf("internal error: %v", v))
		}
	}()
	data, err := readConfig(r.path)
	if err != nil {
		return admin.ReloadResult{}, r.fail(trigger, &admin.ConfigError{Problems: []string{err.Error()}})
	}
	sum := sha256.Sum256(data)
	if !force && sum == r.sum {
		r.log.Debug("config file unchanged, nothing to reload", "path", r.path, "trigger", trigger)
		return admin.ReloadResult{Generation: r.reg.View().Gen}, nil
	}
	r.sum = sum
	cfg, err := conf.Parse(r.path, data)
	if err == nil {
		err = unsupported(cfg)
	}
	if err == nil {
		err = reloadable(r.boot, cfg)
	}
	if err != nil {
		return admin.ReloadResult{}, r.fail(trigger, &admin.ConfigError{Problems: problems(r.path, err)})
	}
	restart := restartRequired(r.boot, cfg)
	if len(restart) > 0 {
		r.log.Warn("reload: settings changed in the file apply only after a restart; the running values stay",
			"settings", strings.Join(restart, ", "))
	}
	// Once validated, the apply runs to its end even if the caller goes away
	// (an API client hanging up, the shutdown starting): it is committed in one
	// transaction, so reporting it as failed would be wrong. The generations'
	// watcher outlives every trigger, so the wait is short.
	rc, err := registryConfig(cfg)
	if err != nil {
		return admin.ReloadResult{}, r.fail(trigger, &admin.ConfigError{Problems: []string{r.path + ": " + err.Error()}})
	}
	res, err := r.reg.ApplyConfig(context.WithoutCancel(ctx), rc)
	if err != nil {
		if errors.Is(err, registry.ErrInvalid) {
			err = &admin.ConfigError{Problems: []string{r.path + ": " + err.Error()}}
		}
		return admin.ReloadResult{}, r.fail(trigger, err)
	}
	r.setLive(cfg)
	for _, id := range res.Dropped {
		r.log.Warn("reload: backend registered over the API removed with its pool", "backend", id)
	}
	for _, id := range res.TakenOver {
		r.log.Info("reload: backend registered over the API is now listed in the config file, which owns it", "backend", id)
	}
	for _, id := range res.OverridesCleared {
		r.log.Info("reload: the config file changed a backend the API had changed; the file's weight applies", "backend", id)
	}
	r.metrics.Reload(true)
	r.log.Info("reloaded", "path", r.path, "trigger", trigger, "generation", res.Gen, "changed", res.Changed)
	if restart == nil {
		restart = []string{}
	}
	return admin.ReloadResult{Generation: res.Gen, Changed: res.Changed, RestartRequired: restart}, nil
}

// fail logs a rejected reload, one line per problem, and counts it.
func (r *reloader) fail(trigger string, err error) error {
	r.metrics.Reload(false)
	var ce *admin.ConfigError
	if errors.As(err, &ce) {
		r.log.Error("reload failed, keeping the previous config", "path", r.path, "trigger", trigger, "problems", len(ce.Problems))
		for _, p := range ce.Problems {
			r.log.Error("config problem", "problem", p)
		}
		return err
	}
	r.log.Error("reload failed, keeping the previous config", "path", r.path, "trigger", trigger, "error", err.Error())
	return err
}

// problems turns a Parse or unsupported error into one line per problem, each
// starting with the path (and the line, when the config package knows it).
func problems(path string, err error) []string {
	var es conf.Errors
	if errors.As(err, &es) {
		out := make([]string, len(es))
		for i, e := range es {
			out[i] = e.Error()
		}
		return out
	}
	var out []string
	for _, line := range strings.Split(err.Error(), "\n") {
		out = append(out, path+": "+line)
	}
	return out
}

// readConfig reads the config file, up to one byte past conf.MaxFileSize so that
// Parse can report a file that is too large.
func readConfig(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, conf.MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}

// reloadable refuses what a reload cannot apply on top of the process as it was
// started: caching on a route when the cache was off at start (cache.max_bytes: 0),
// since the cache is built once.
func reloadable(boot, next *conf.Config) error {
	if boot.Cache.MaxBytes > 0 {
		return nil
	}
	var errs []error
	for i, rt := range next.Routes {
		if rt.Cache != nil && rt.Cache.Enabled {
			errs = append(errs, fmt.Errorf("routes[%d].cache: the response cache has been off since start (cache.max_bytes: 0); caching needs a restart", i))
		}
	}
	return errors.Join(errs...)
}
