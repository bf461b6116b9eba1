package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os/signal"
	"syscall"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/conf"
)

// demoWeights are the weights of the three in-process demo backends.
var demoWeights = [3]int{3, 2, 1}

// runDemo starts three in-process backends (weights 3/2/1) on loopback, the
// proxy in front of them and the admin API, so that `curl localhost:8080/` shows
// weighted round-robin at once and `curl localhost:9090/api/v1/pools` the pool.
func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("floodgate demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", ":8080", "public listen address")
	adminListen := fs.String("admin", "127.0.0.1:9090", "admin API listen address (loopback: the demo has no token)")
	if code, ok := parseFlags(fs, args, "usage: floodgate demo [-listen ADDR] [-admin ADDR]\n\nflags:\n", stdout); !ok {
		return code
	}
	log, _ := newLogger(stderr, "info", "text")

	var addrs [3]string
	var servers []*fasthttp.Server
	for i := range demoWeights {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintf(stderr, "floodgate demo: %v\n", err)
			return 1
		}
		addrs[i] = ln.Addr().String()
		name := fmt.Sprintf("backend-%d", i+1)
		body := fmt.Sprintf("hello from %s (%s, weight %d)\n", name, addrs[i], demoWeights[i])
		srv := &fasthttp.Server{
			Name: name,
			Handler: func(ctx *fasthttp.RequestCtx) {
				ctx.Response.Header.Set("X-Backend", name)
				ctx.SetContentType("text/plain; charset=utf-8")
				ctx.SetBodyString(body)
			},
		}
		servers = append(servers, srv)
		go srv.Serve(ln) //nolint:errcheck // ends with Shutdown below
	}
	defer func() {
		for _, s := range servers {
			_ = s.Shutdown()
		}
	}()

	yaml := fmt.Sprintf(`listen: %q
admin: {listen: %q}
timeouts: {shutdown_grace: 5s}
pools:
  - name: demo
    backends:
      - {address: %q, weight: %d}
      - {address: %q, weight: %d}
      - {address: %q, weight: %d}
    health: {type: http, path: /, interval: 2s, timeout: 1s}
routes:
  - {name: all, path_prefix: /, pool: demo}
`, *listen, *adminListen, addrs[0], demoWeights[0], addrs[1], demoWeights[1], addrs[2], demoWeights[2])
	cfg, err := conf.Parse("demo.yaml", []byte(yaml))
	if err != nil {
		fmt.Fprintf(stderr, "floodgate demo: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "floodgate demo: proxy on %s, backends %s (weight 3), %s (2), %s (1)\n", *listen, addrs[0], addrs[1], addrs[2])
	fmt.Fprintf(stdout, "try: for i in 1 2 3 4 5 6; do curl -s localhost%s/; done\n", portOf(*listen))
	fmt.Fprintf(stdout, "admin API on %s: curl -s %s/api/v1/pools; status page: http://%s/\n", *adminListen, *adminListen, *adminListen)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, log, serveOptions{cfg: cfg}); err != nil {
		fmt.Fprintf(stderr, "floodgate demo: %v\n", err)
		return 1
	}
	return 0
}

func portOf(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return ":" + port
}
