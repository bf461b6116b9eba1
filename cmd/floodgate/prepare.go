package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/floodgate/floodgate/conf"
	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/generation"
	"github.com/floodgate/floodgate/proxy"
	"github.com/floodgate/floodgate/proxy/cache"
	"github.com/floodgate/floodgate/registry"
)

// prepared is what a start reads, loads and checks before it opens a socket.
type prepared struct {
	token []byte
	saved registry.State
	// corrupt is set when the state file is corrupt and -ignore-state was
	// given: the start moves the file aside, -check only says so.
	corrupt *registry.CorruptStateError
	certs   *proxy.CertStore // nil without a tls section
	rcfg    registry.Config
	// skipped are the state file entries the first generation would not
	// restore, as Init reports them.
	skipped []string
}

// prepare is everything a start does before it binds a socket, and all that
// -check does: `floodgate -check` and a start run this one function, so they
// accept and refuse the same configs. It reads the token and state files, loads
// the certificates and the static answers, checks that the files the start
// will write (access log, capture journal, state file) can be written without
// creating or changing any, checks that each listen address is one this
// machine has, and builds the first generation as the start would (pools,
// routes, health checks, degraded mode) with the pure generation builder,
// committing nothing. What it cannot know: a port that another process holds,
// permission to bind a port below 1024, and a capture journal locked by a
// running floodgate.
func prepare(ctx context.Context, log *slog.Logger, cfg *conf.Config, ignoreState bool) (*prepared, error) {
	if err := unsupported(cfg); err != nil {
		return nil, err
	}
	p := &prepared{}
	var errs []error
	var err error
	if p.token, err = loadToken(log, cfg.Admin.TokenFile); err != nil {
		errs = append(errs, err)
	}
	if err := checkListeners(ctx, cfg, p.token); err != nil {
		errs = append(errs, err)
	}
	if p.saved, p.corrupt, err = readState(cfg.Admin.StateFile, ignoreState); err != nil {
		errs = append(errs, err)
	}
	if t := cfg.TLS; t != nil {
		var files []proxy.CertFiles
		for _, c := range t.Certificates {
			files = append(files, proxy.CertFiles{CertFile: c.CertFile, KeyFile: c.KeyFile})
		}
		if p.certs, err = proxy.NewCertStore(files, log); err != nil {
			errs = append(errs, err)
		}
	}
	if a := cfg.AccessLog; a != nil && a.Path != "stdout" && a.Path != "stderr" && a.Path != "" {
		if err := writable(a.Path, false); err != nil {
			errs = append(errs, fmt.Errorf("access_log.path: %w", err))
		}
	}
	if c := cfg.Capture; c != nil {
		if err := writable(c.Dir, true); err != nil {
			errs = append(errs, fmt.Errorf("capture.dir: %w", err))
		}
	}
	if path := cfg.Admin.StateFile; path != "" {
		// Saved by writing a file beside it and renaming it over it, in a
		// directory that must exist.
		d := filepath.Dir(path)
		fi, err := os.Stat(d)
		if err == nil && !fi.IsDir() {
			err = fmt.Errorf("%s is not a directory", d)
		} else if err == nil {
			err = writable(d, true)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("admin.state_file: %w", err))
		}
	}
	if p.rcfg, err = registryConfig(cfg); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if p.skipped, err = dryBuild(cfg, p.rcfg, p.saved); err != nil {
		return nil, err
	}
	return p, nil
}

// dryBuild checks the first generation as the start builds it: Init's
// transaction (the config and the state file) run through the registry's
// checks and the pure generation builder (pools, routes, health checks,
// degraded mode), then aborted. The builder needs a data plane and a monitor
// to read from, made for the purpose; nothing is committed or swapped in,
// nothing serves, probes or runs, and they are thrown away.
func dryBuild(cfg *conf.Config, rcfg registry.Config, saved registry.State) ([]string, error) {
	quiet := slog.New(slog.DiscardHandler)
	var respCache *cache.Cache
	if cfg.Cache.MaxBytes > 0 {
		var err error
		respCache, err = cache.New(cache.Options{MaxBytes: cfg.Cache.MaxBytes, Logger: quiet,
			ErrorHandler: proxy.CacheError, Forwarded: proxy.CacheForwarded})
		if err != nil {
			return nil, err
		}
		defer respCache.Close()
	}
	px := proxy.New(proxyOptions(cfg, quiet, respCache))
	defer func() {
		// Never served: this only stops its clock.
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = px.Shutdown(sctx)
	}()
	mon := degrade.NewMonitor(degrade.MonitorOptions{Logger: quiet})
	defer mon.Close()
	gen, err := generation.New(generation.Options{Dataplane: px, Monitor: mon, Logger: quiet})
	if err != nil {
		return nil, err
	}
	res, err := gen.CheckInit(rcfg, saved)
	if err != nil {
		return nil, fmt.Errorf("apply config: %w", err)
	}
	return res.Skipped, nil
}

// resolveTimeout bounds the name lookup of a listen address.
const resolveTimeout = 5 * time.Second

// checkListeners checks that each listen address names an address of this
// machine (or none: all of them), as binding it would, and repeats on the
// resolved admin address what serve checks on the bound one: no token, no
// admin API beyond loopback.
func checkListeners(ctx context.Context, cfg *conf.Config, token []byte) error {
	type ln struct{ field, addr string }
	lns := []ln{{"listen", cfg.Listen}}
	if cfg.TLS != nil {
		lns = append(lns, ln{"tls.listen", cfg.TLS.Listen})
	}
	lns = append(lns, ln{"admin.listen", cfg.Admin.Listen})
	local, err := localAddrs()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	var errs []error
	for _, l := range lns {
		ta, err := resolveListen(ctx, l.addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", l.field, l.addr, err))
			continue
		}
		if len(ta.IP) != 0 && !ta.IP.IsUnspecified() && !ta.IP.IsLoopback() && !local[ta.IP.String()] {
			errs = append(errs, fmt.Errorf("%s %s: %s is not an address of this machine", l.field, l.addr, ta.IP))
			continue
		}
		if l.field == "admin.listen" && len(token) == 0 && !isLoopback(ta) {
			errs = append(errs, fmt.Errorf("admin.listen %s (%s) is not a loopback address and admin.token_file is not set: refusing to serve the admin API without authentication", l.addr, ta))
		}
	}
	return errors.Join(errs...)
}

// resolveListen resolves a listen address as net.Listen does: the first
// address, IPv4 first.
func resolveListen(ctx context.Context, addr string) (*net.TCPAddr, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if host == "" {
		return net.ResolveTCPAddr("tcp", addr)
	}
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, err
	}
	pick := ips[0]
	for _, ip := range ips {
		if ip.IP.To4() != nil {
			pick = ip
			break
		}
	}
	return net.ResolveTCPAddr("tcp", net.JoinHostPort(pick.IP.String(), port))
}

// localAddrs are the addresses of this machine's interfaces.
func localAddrs() (map[string]bool, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("listing this machine's addresses: %w", err)
	}
	out := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			out[n.IP.String()] = true
		}
	}
	return out, nil
}

// readState reads the state file, if one is set, without changing it. A
// corrupt file is an error naming the path, unless ignore is set: then it is
// returned as corrupt and the state is empty.
func readState(path string, ignore bool) (registry.State, *registry.CorruptStateError, error) {
	if path == "" {
		return registry.State{}, nil, nil
	}
	st, err := registry.LoadState(path)
	var corrupt *registry.CorruptStateError
	switch {
	case err == nil:
		return st, nil, nil
	case !errors.As(err, &corrupt):
		return registry.State{}, nil, err
	case !ignore:
		return registry.State{}, nil, fmt.Errorf("%v; fix or remove it, or start with -ignore-state to start without the backends it holds", err)
	}
	return registry.State{}, corrupt, nil
}

// writable reports whether path could be written (created, when it does not
// exist yet) by this process, without creating or opening it for writing. dir
// says path is, or is to be, a directory (the capture journal's, created with
// its parents when missing).
func writable(path string, dir bool) error {
	fi, err := os.Stat(path)
	switch {
	case err == nil:
		if fi.IsDir() != dir {
			if dir {
				return fmt.Errorf("%s is not a directory", path)
			}
			return fmt.Errorf("%s is a directory", path)
		}
		mode := uint32(2) // W_OK
		if dir {
			mode |= 1 // X_OK
		}
		if err := syscall.Access(path, mode); err != nil {
			return &fs.PathError{Op: "write", Path: path, Err: err}
		}
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	// Missing: whoever creates it needs to write in the nearest directory
	// that exists; a plain file needs its own directory to exist.
	parent := filepath.Dir(filepath.Clean(path))
	if !dir {
		pfi, err := os.Stat(parent)
		if err != nil {
			return err
		}
		if !pfi.IsDir() {
			return fmt.Errorf("%s is not a directory", parent)
		}
		return writable(parent, true)
	}
	for {
		pfi, err := os.Stat(parent)
		if err == nil {
			if !pfi.IsDir() {
				return fmt.Errorf("%s is not a directory", parent)
			}
			return writable(parent, true)
		}
		if !errors.Is(err, fs.ErrNotExist) || parent == filepath.Dir(parent) {
			return err
		}
		parent = filepath.Dir(parent)
	}
}
