// Command floodgate is the edge reverse proxy: it loads the config, serves the public
// listener, reloads on SIGHUP and drains on SIGTERM or SIGINT. `floodgate demo`
// runs a self-contained example with three backends.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/floodgate/floodgate/conf"
	"github.com/floodgate/floodgate/proxy"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the exit, so tests can drive it.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "version":
			fmt.Fprintf(stdout, "floodgate %s\n", version)
			return 0
		case "demo":
			return runDemo(args[1:], stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("floodgate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "path of the YAML config file")
	check := fs.Bool("check", false, "validate the config and exit: 0 when valid, 1 with one PATH:LINE: message per problem")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage:\n  floodgate -config PATH\n  floodgate -check -config PATH\n  floodgate demo\n  floodgate version\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *configPath == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "floodgate: %v\n", err)
		return 2
	}
	cfg, err := conf.Load(*configPath)
	if err == nil {
		err = unsupported(cfg)
	}
	if *check {
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: ok\n", *configPath)
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, log, *configPath, cfg); err != nil {
		fmt.Fprintf(stderr, "floodgate: %v\n", err)
		return 1
	}
	return 0
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// serve runs the proxy for cfg until ctx ends, then drains. path is re-read on
// SIGHUP.
func serve(ctx context.Context, log *slog.Logger, path string, cfg *conf.Config) error {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	px := proxy.New(proxyOptions(cfg, log))
	rt := newRuntime(log, px)
	defer rt.checker.Close()
	if err := rt.apply(cfg); err != nil {
		ln.Close()
		return err
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				rt.reload(path)
			}
		}
	}()

	errc := make(chan error, 1)
	go func() { errc <- px.Serve(ln) }()
	log.Info("floodgate listening", "addr", ln.Addr().String(), "version", version)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	grace := cfg.Timeouts.ShutdownGrace
	log.Info("draining", "grace", grace.String())
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := px.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	} else if err != nil {
		log.Warn("grace period over, closing remaining connections", "grace", grace.String())
	}
	<-errc
	log.Info("stopped")
	return nil
}

// reload re-reads the config file and applies it; a bad file keeps the old config
// serving, and each problem is logged as PATH:LINE: message.
func (r *runtime) reload(path string) {
	cfg, err := conf.Load(path)
	if err == nil {
		err = r.apply(cfg)
	}
	if err != nil {
		r.log.Error("reload failed, keeping the previous config", "path", path, "error", err.Error())
		return
	}
	r.log.Info("reloaded", "path", path)
}

func proxyOptions(cfg *conf.Config, log *slog.Logger) proxy.Options {
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
	}
}
