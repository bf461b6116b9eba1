package main

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/floodgate/floodgate/conf"
	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/generation"
	"github.com/floodgate/floodgate/proxy"
)

func mustParse(t *testing.T, yaml string) *conf.Config {
	t.Helper()
	cfg, err := conf.Parse("t.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const baseYAML = "pools:\n  - name: p\n    backends: [{address: \"127.0.0.1:1\"}]\nroutes:\n  - {name: r, path_prefix: /, pool: p}\n"

func TestRestartRequired(t *testing.T) {
	base := mustParse(t, baseYAML)
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"same", baseYAML, nil},
		{"pools and routes apply on reload", "pools:\n  - name: q\n    backends: [{address: \"127.0.0.1:2\", weight: 5}]\n    health: {}\nroutes:\n  - {name: s, path_prefix: /x, pool: q}\n", nil},
		{"drain timeout and grace apply on reload", "admin: {drain_timeout: 1s}\ntimeouts: {shutdown_grace: 1s}\n" + baseYAML, nil},
		{"listen", "listen: \":9999\"\n" + baseYAML, []string{"listen"}},
		{"admin", "admin: {listen: \"127.0.0.1:9998\", state_file: s.json}\n" + baseYAML, []string{"admin.listen", "admin.state_file"}},
		{"timeouts and limits", "timeouts: {client_idle: 5s}\nlimits: {max_conns: 5, max_header_bytes: 2KB}\n" + baseYAML, []string{"timeouts.client_idle", "limits.max_header_bytes", "limits.max_conns"}},
		{"trusted proxies and cache", "trusted_proxies: [10.0.0.0/8]\ncache: {max_bytes: 1MB}\n" + baseYAML, []string{"trusted_proxies", "cache.max_bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := restartRequired(base, mustParse(t, tt.yaml)); !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRegistryConfigTranslatesEveryRouteKey(t *testing.T) {
	cfg := mustParse(t, `pools:
  - name: p
    backends: [{address: "10.0.0.1:80", weight: 7}]
    health: {type: tcp, interval: 3s}
    max_conns_per_backend: 10
    queue: {max: 5, timeout: 2s}
routes:
  - name: r
    host: Example.COM
    path_prefix: /api/
    pool: p
    methods: [GET]
    allow_cidrs: [10.0.0.0/8]
    deny_cidrs: [10.9.0.0/16]
    rate_limit: {key: "header:X-Key", rate: 10/s, burst: 20}
    cache: {enabled: true, ttl: 30s}
`)
	rc, err := registryConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, ps := rc.Pools[0], rc.Pools[0].Settings.(generation.PoolSettings)
	if p.Backends[0].Weight != 7 || ps.Health.Type != "tcp" || ps.QueueMax != 5 || ps.MaxConnsPerBackend != 10 {
		t.Fatalf("pool %+v", p)
	}
	r := rc.Routes[0].Spec.(proxy.RouteSpec)
	if r.Host != "example.com" || r.Methods[0] != "GET" || len(r.AllowCIDRs) != 1 || len(r.DenyCIDRs) != 1 ||
		r.RateLimit == nil || r.RateLimit.Header != "X-Key" || r.RateLimit.Rate != 10 || r.RateLimit.Burst != 20 ||
		r.Cache == nil || r.Cache.DefaultTTL.Seconds() != 30 || r.Cache.Route != "r" {
		t.Fatalf("route %+v", r)
	}
	if err := unsupported(mustParse(t, "capture: {dir: j}\n"+baseYAML)); err != nil {
		t.Fatalf("capture refused: %v", err)
	}
	// Degraded mode: priority, action, shed answer, captured methods, and the
	// reservation for a pool that serves a critical route.
	dcfg := mustParse(t, `capture: {dir: j}
pools:
  - name: shop
    backends: [{address: "127.0.0.1:1"}]
    max_conns_per_backend: 100
    degrade:
      enter: {p95_latency: 800ms}
      exit: {p95_latency: 300ms}
routes:
  - {name: search, path_prefix: /search, pool: shop, priority: low, on_degraded: {action: shed, status: 429, retry_after: 10s}}
  - {name: checkout, path_prefix: /checkout, pool: shop, priority: high, on_degraded: {action: capture, methods: [POST, PUT]}}
  - {name: admin, path_prefix: /admin/, pool: shop, priority: critical}
`)
	drc, err := registryConfig(dcfg)
	if err != nil {
		t.Fatal(err)
	}
	dps := drc.Pools[0].Settings.(generation.PoolSettings)
	if got := degrade.Reserve(int64(dps.MaxConnsPerBackend), dps.CriticalShare); got != 10 {
		t.Errorf("reserved slots %d, want 10 (10%% of 100 for the critical route)", got)
	}
	spec := func(i int) proxy.RouteSpec { return drc.Routes[i].Spec.(proxy.RouteSpec) }
	search, checkout, admin := spec(0), spec(1), spec(2)
	if search.Priority != degrade.PriorityLow || search.Action != degrade.ActionShed || search.Shed.Status != 429 || search.Shed.RetryAfter != "10" {
		t.Errorf("search: %+v %+v", search, search.Shed)
	}
	if checkout.Action != degrade.ActionCapture || strings.Join(checkout.CaptureMethods, ",") != "POST,PUT" || checkout.CaptureAlways {
		t.Errorf("checkout: %+v", checkout)
	}
	// The busy answer of a route whose action is not shed (a GET on the
	// capture route) still says when to come back.
	if checkout.Shed == nil || checkout.Shed.Status != 503 || checkout.Shed.RetryAfter != "30" {
		t.Errorf("checkout busy answer: %+v, want 503 with Retry-After: 30", checkout.Shed)
	}
	if admin.Priority != degrade.PriorityCritical {
		t.Errorf("admin: %+v", admin)
	}
	if dc := dps.Degrade; dc.Enter.P95Latency.String() != "800ms" || dc.Exit.P95Latency.String() != "300ms" {
		t.Errorf("degrade settings %+v", dc)
	}
	if err := unsupported(mustParse(t, "pools:\n  - name: p\n    backends: [{address: \"127.0.0.1:1\"}]\nroutes:\n  - {name: r, path_prefix: /, pool: p, timeouts: {response_timeout: 1s}}\n")); err == nil {
		t.Fatal("route timeouts accepted though not applied")
	}
}

func TestLoadToken(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if tok, err := loadToken(log, write("ok", "abcdefghijklmnopqrstuvwxyz\r\n")); err != nil || string(tok) != "abcdefghijklmnopqrstuvwxyz" {
		t.Fatalf("%q %v", tok, err)
	}
	if tok, err := loadToken(log, ""); err != nil || tok != nil {
		t.Fatalf("no file: %q %v", tok, err)
	}
	for name, content := range map[string]string{"empty": "\n", "two lines": "a\nb\n", "spaces": " abc \n"} {
		if _, err := loadToken(log, write(name, content)); err == nil {
			t.Errorf("%s token accepted", name)
		}
	}
	if _, err := loadToken(log, filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:9090": true, "[::1]:9090": true, "127.0.0.2:1": true, "0.0.0.0:9090": false, "10.0.0.1:9090": false, "[::]:9090": false} {
		ta, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := isLoopback(ta); got != want {
			t.Errorf("isLoopback(%s) = %v", addr, got)
		}
	}
}

func TestReloadCannotTurnTheCacheOn(t *testing.T) {
	off := mustParse(t, "cache: {max_bytes: 0}\n"+baseYAML)
	on := mustParse(t, "pools:\n  - name: p\n    backends: [{address: \"127.0.0.1:1\"}]\nroutes:\n  - {name: r, path_prefix: /, pool: p, cache: {enabled: true}}\n")
	if err := reloadable(off, on); err == nil || !strings.Contains(err.Error(), "routes[0].cache") {
		t.Fatalf("caching enabled by a reload over a process without a cache: %v", err)
	}
	if err := reloadable(on, on); err != nil {
		t.Fatal(err)
	}
}
