package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floodgate/floodgate/conf"
	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/generation"
)

// refusingMonitor is the real degraded-mode monitor behind the commit step's
// interface, made to refuse every new configuration while refuse is set.
type refusingMonitor struct {
	*degrade.Monitor
	refuse *atomic.Bool
}

func (m refusingMonitor) Prepare(pools []degrade.PoolConfig) (*degrade.Plan, error) {
	if m.refuse.Load() {
		return nil, errors.New("degrade: the monitor refuses this configuration (injected)")
	}
	return m.Monitor.Prepare(pools)
}

// probedBackend is a loopback backend naming itself, which counts the health
// probes it gets.
func probedBackend(t *testing.T, name string) (addr string, probes *atomic.Int64) {
	probes = new(atomic.Int64)
	addr = backend(t, name, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			probes.Add(1)
		}
		io.WriteString(w, name)
	})
	return addr, probes
}

// TestReloadWhoseMonitorPartFailsChangesNothing (issue 14): a reload applied
// the registry (routes, pools, health probes in service), then configured the
// degraded-mode monitor separately and only logged when that failed: a reload
// could half-apply. Now the monitor's part is prepared with everything else
// before the registry commits, and the commit step that swaps the generation
// in, syncs the probes and commits the monitor cannot fail. This runs the
// real serve and reload path (a real file, POST /api/v1/reload, real sockets)
// with the monitor refusing: the same generation serves, with the same
// probes and the same monitor configuration, and the reload says it failed.
func TestReloadWhoseMonitorPartFailsChangesNothing(t *testing.T) {
	a, aProbes := probedBackend(t, "A")
	b, bProbes := probedBackend(t, "B")
	listen, adminAddr := freePort(t), freePort(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "floodgate.yaml")
	config := func(backends, enter, exit string, extra bool) []byte {
		var s strings.Builder
		fmt.Fprintf(&s, "listen: %q\nadmin: {listen: %q}\npools:\n", listen, adminAddr)
		fmt.Fprintf(&s, "  - name: shop\n    backends: [%s]\n    health: {type: http, path: /health, interval: 10ms, timeout: 10ms}\n", backends)
		fmt.Fprintf(&s, "    degrade: {enter: {p95_latency: %s}, exit: {p95_latency: %s}}\n", enter, exit)
		if extra {
			fmt.Fprintf(&s, "  - name: extra\n    backends: [{address: %q}]\n", b)
		}
		s.WriteString("routes:\n  - {name: site, path_prefix: /, pool: shop}\n")
		if extra {
			s.WriteString("  - {name: more, path_prefix: /extra/, pool: extra}\n")
		}
		return []byte(s.String())
	}
	data := config(fmt.Sprintf("{address: %q}", a), "800ms", "300ms", false)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := conf.Parse(path, data)
	if err != nil {
		t.Fatal(err)
	}

	var refuse atomic.Bool
	monitors := make(chan *degrade.Monitor, 1)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- serve(ctx, slog.New(slog.DiscardHandler), serveOptions{path: path, data: data, cfg: cfg,
			monitor: func(m *degrade.Monitor) generation.Monitor { monitors <- m; return refusingMonitor{m, &refuse} }})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not return")
		}
	})

	api := "http://" + adminAddr
	var mon *degrade.Monitor
	select {
	case mon = <-monitors:
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not start")
	}
	waitFor(t, "the first generation to serve A", 20*time.Second, func() bool {
		resp, err := http.Get("http://" + listen + "/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == 200 && string(body) == "A"
	})
	type pools struct {
		Generation uint64
		Pools      []struct {
			Name     string
			Backends []struct{ Address string }
		}
	}
	listPools := func() pools {
		t.Helper()
		code, body := get(t, api+"/api/v1/pools")
		var p pools
		if code != 200 || json.Unmarshal([]byte(body), &p) != nil {
			t.Fatalf("GET /api/v1/pools: %d %s", code, body)
		}
		return p
	}
	reload := func() (int, string) {
		t.Helper()
		resp, err := http.Post(api+"/api/v1/reload", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	statuses := func() string {
		var names []string
		for _, s := range mon.Statuses() {
			names = append(names, s.Pool)
		}
		return strings.Join(names, ",")
	}
	before := listPools()
	monBefore := statuses()
	gateBefore := mon.Gate("shop")

	// The new file adds a backend with a health check, a pool and a route, and
	// changes the degraded-mode thresholds: the monitor refuses it.
	refuse.Store(true)
	next := config(fmt.Sprintf("{address: %q}, {address: %q}", a, b), "900ms", "400ms", true)
	if err := os.WriteFile(path, next, 0o600); err != nil {
		t.Fatal(err)
	}
	code, body := reload()
	if code != http.StatusBadRequest || !strings.Contains(body, "the monitor refuses this configuration") {
		t.Fatalf("reload with the monitor refusing: %d %s, want 400 naming the monitor's error", code, body)
	}
	after := listPools()
	if after.Generation != before.Generation || len(after.Pools) != 1 || len(after.Pools[0].Backends) != 1 {
		t.Fatalf("the failed reload changed the generation in service: %+v, was %+v", after, before)
	}
	for i := 0; i < 20; i++ {
		if _, got := get(t, "http://"+listen+"/extra/x"); got != "A" {
			t.Fatalf("request %d answered by %q after the failed reload, want A", i, got)
		}
	}
	// Probes go on against A; B, which only the refused file lists, gets none.
	seen := aProbes.Load()
	waitFor(t, "A's probes to go on", 10*time.Second, func() bool { return aProbes.Load() >= seen+5 })
	if n := bProbes.Load(); n != 0 {
		t.Fatalf("B got %d health probes from a reload that failed", n)
	}
	if got := statuses(); got != monBefore || mon.Gate("shop") != gateBefore {
		t.Fatalf("the monitor's pools are %q after the failed reload, were %q", got, monBefore)
	}
	if _, body := get(t, api+"/metrics"); !strings.Contains(body, "floodgate_config_last_reload_success 0") {
		t.Fatal("the failed reload is not counted as failed")
	}

	// The same file once the monitor accepts it: all of it applies.
	refuse.Store(false)
	if code, body := reload(); code != http.StatusOK {
		t.Fatalf("reload: %d %s", code, body)
	}
	if p := listPools(); p.Generation <= before.Generation || len(p.Pools) != 2 {
		t.Fatalf("after the reload: %+v", p)
	}
	waitFor(t, "B's probes", 10*time.Second, func() bool { return bProbes.Load() > 0 })
	if got := statuses(); got != "extra,shop" {
		t.Fatalf("the monitor's pools are %q, want extra,shop", got)
	}
}
