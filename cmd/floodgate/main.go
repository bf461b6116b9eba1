// Command floodgate is the edge reverse proxy: it loads the config, serves the public
// listener and the admin API, reloads when the config file changes, on SIGHUP and on
// POST /api/v1/reload, and drains on SIGTERM or SIGINT. `floodgate demo` runs a
// self-contained example with three backends.
//
// This package is the only one that imports everything: it turns the config file
// (conf) into the runtime packages' options (wire.go) and runs them (serve.go).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/floodgate/floodgate/conf"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the exit, so tests can drive it.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "version":
			fmt.Fprintln(stdout, build)
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
	logFormat := fs.String("log-format", "text", "process log format: text (key=value) or json (one object a line, for log shippers)")
	ignoreState := fs.Bool("ignore-state", false, "start even if admin.state_file is corrupt: move it aside and start without the backends it holds")
	if code, ok := parseFlags(fs, args, "usage:\n  floodgate -config PATH\n  floodgate -check -config PATH\n  floodgate demo [-listen ADDR] [-admin ADDR]\n  floodgate status [-admin URL] [-token-file F] [-json]\n  floodgate version\n\nflags:\n", stdout); !ok {
		return code
	}
	if *configPath == "" {
		if *check {
			fmt.Fprintln(stderr, "floodgate: -check needs -config PATH")
		} else {
			fs.Usage()
		}
		return 2
	}
	log, err := newLogger(stderr, *logLevel, *logFormat)
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

// newLogger makes the process log: slog's text handler (key=value) or JSON
// handler (one object a line, with time, level and msg), at level and above.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format %q: want text or json", format)
}

// parseFlags makes usage, then the flag defaults, fs's usage text, and parses
// args into fs. When it reports false the caller exits with code: 0 for -h or
// -help, having printed the usage on stdout; 2, having said why and printed
// the usage on fs's output, for a flag it does not know or any argument left
// over.
func parseFlags(fs *flag.FlagSet, args []string, usage string, stdout io.Writer) (code int, ok bool) {
	// The flag package prints the usage itself, to fs's output, before it
	// returns ErrHelp; it goes to out, and out to stdout or fs's output once
	// the outcome is known.
	var out bytes.Buffer
	fs.Usage = func() {
		fmt.Fprint(&out, usage)
		w := fs.Output()
		fs.SetOutput(&out)
		fs.PrintDefaults()
		fs.SetOutput(w)
	}
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		_, _ = out.WriteTo(stdout)
		return 0, false
	}
	if err == nil && fs.NArg() > 0 {
		fs.Usage()
		err = errors.New("arguments left over")
	}
	_, _ = out.WriteTo(fs.Output())
	if err != nil {
		return 2, false
	}
	return 0, true
}
