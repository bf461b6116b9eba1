// Command floodgate is the edge reverse proxy: it loads the config, serves the public
// listener and the admin API, reloads when the config file changes, on SIGHUP and on
// POST /api/v1/reload, and drains on SIGTERM or SIGINT. `floodgate demo` runs a
// self-contained example with three backends.
//
// This package is the only one that imports everything: it turns the config file
// (conf) into the runtime packages' options (wire.go) and runs them (serve.go).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/floodgate/floodgate/conf"
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
		case "status":
			return runStatus(args[1:], stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("floodgate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "path of the YAML config file")
	check := fs.Bool("check", false, "validate the config and exit: 0 when valid, 1 with one PATH:LINE: message per problem")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	ignoreState := fs.Bool("ignore-state", false, "start even if admin.state_file is corrupt: move it aside and start without the backends it holds")
	if !parseFlags(fs, args, "usage:\n  floodgate -config PATH\n  floodgate -check -config PATH\n  floodgate demo\n  floodgate status [-admin URL] [-token-file F] [-json]\n  floodgate version\n\nflags:\n") {
		return 2
	}
	if *configPath == "" {
		if *check {
			fmt.Fprintln(stderr, "floodgate: -check needs -config PATH")
		} else {
			fs.Usage()
		}
		return 2
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "floodgate: %v\n", err)
		return 2
	}
	data, err := readConfig(*configPath)
	if err != nil {
		fmt.Fprintln(stderr, fmt.Errorf("conf: %w", err))
		return 1
	}
	cfg, err := conf.Parse(*configPath, data)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *check {
		// What a start does short of opening sockets (prepare.go), so that
		// -check refuses what a start would refuse.
		pre, err := prepare(ctx, log, cfg, *ignoreState)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if pre.corrupt != nil {
			log.Warn("state file is corrupt; a start with -ignore-state moves it aside and starts without it", "path", pre.corrupt.Path, "error", pre.corrupt.Err.Error())
		}
		for _, s := range pre.skipped {
			log.Warn("state file entry would not be restored", "path", cfg.Admin.StateFile, "entry", s)
		}
		fmt.Fprintf(stdout, "%s: ok\n", *configPath)
		return 0
	}
	if err := serve(ctx, log, serveOptions{path: *configPath, data: data, cfg: cfg, ignoreState: *ignoreState}); err != nil {
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

// parseFlags makes usage, then the flag defaults, fs's usage text, and parses
// args into fs. It reports false, having said why on fs's output, for a flag
// it does not know or for any argument left over: the caller exits 2.
func parseFlags(fs *flag.FlagSet, args []string, usage string) bool {
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return false
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return false
	}
	return true
}
