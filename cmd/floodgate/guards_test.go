package main

import (
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
)

// TestRouteGuardsAndCacheThroughTheBinary checks the wiring of the per-route
// features of the config file into the proxy: allow/deny lists, rate limits and
// caching, each counted in /metrics.
func TestRouteGuardsAndCacheThroughTheBinary(t *testing.T) {
	var hits atomic.Int64
	be := backend(t, "be", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "be")
	})
	cfg, addr, adminAddr := config(t, t.TempDir(), fmt.Sprintf(`pools:
  - name: p
    backends: [{address: %q}]
routes:
  - {name: closed, path_prefix: /office/, pool: p, allow_cidrs: [192.0.2.0/24]}
  - {name: limited, path_prefix: /search, pool: p, rate_limit: {rate: 1/m, burst: 1}}
  - {name: cached, path_prefix: /img/, pool: p, cache: {enabled: true}}
  - {name: site, path_prefix: /, pool: p}
`, be))
	in := startInstance(t, cfg, addr, adminAddr, "")
	status := func(path string) int {
		t.Helper()
		code, _ := get(t, "http://"+addr+path)
		return code
	}
	if c := status("/office/"); c != 403 {
		t.Errorf("allow_cidrs: %d, want 403", c)
	}
	if c1, c2 := status("/search?q=1"), status("/search?q=2"); c1 != 200 || c2 != 429 {
		t.Errorf("rate limit: %d then %d, want 200 then 429", c1, c2)
	}
	before := hits.Load()
	if c1, c2 := status("/img/a.png"), status("/img/a.png"); c1 != 200 || c2 != 200 {
		t.Errorf("cache: %d, %d", c1, c2)
	}
	if n := hits.Load() - before; n != 1 {
		t.Errorf("the backend served the cached route %d times, want 1", n)
	}
	for sample, want := range map[string]float64{
		`floodgate_denied_total{route="closed"}`:                       1,
		`floodgate_ratelimited_total{route="limited"}`:                 1,
		`floodgate_requests_total{code="403",pool="p",route="closed"}`: 1,
	} {
		if got := in.metric(t, sample); got != want {
			t.Errorf("%s = %v, want %v", sample, got, want)
		}
	}
	if got := in.metric(t, `floodgate_cache_requests_total{result="hit",route="cached"}`); got < 1 {
		t.Errorf("cache hits %v", got)
	}
}
