package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// gated is a loopback backend whose requests block until the test releases
// them, counting how many it serves at once (and the most ever), and the
// connections it accepted.
type gated struct {
	name, addr string
	cur, peak  atomic.Int64
	conns      atomic.Int64
	release    chan struct{}
}

func newGated(t *testing.T, name string) *gated {
	t.Helper()
	g := &gated{name: name, release: make(chan struct{}, 64)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g.addr = ln.Addr().String()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := g.cur.Add(1)
			for p := g.peak.Load(); n > p && !g.peak.CompareAndSwap(p, n); p = g.peak.Load() {
			}
			select {
			case <-g.release:
			case <-r.Context().Done():
			}
			g.cur.Add(-1)
			io.WriteString(w, g.name)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				g.conns.Add(1)
			}
		},
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		close(g.release) // frees every handler still waiting
		srv.Close()
	})
	return g
}

// free lets n requests held by the backend answer.
func (g *gated) free(n int) {
	for range n {
		g.release <- struct{}{}
	}
}

// drain takes back the releases no request used, once none is held.
func (g *gated) drain() {
	for len(g.release) > 0 {
		<-g.release
	}
}

// flight is a batch of concurrent GETs through the proxy.
type flight struct {
	codes chan string
	n     int
}

func sendMany(t *testing.T, addr string, n int) *flight {
	t.Helper()
	f := &flight{codes: make(chan string, n), n: n}
	c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	for range n {
		go func() {
			resp, err := c.Get("http://" + addr + "/")
			if err != nil {
				f.codes <- err.Error()
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			f.codes <- fmt.Sprintf("%d %s", resp.StatusCode, body)
		}()
	}
	return f
}

// wait returns every answer of the batch, in arrival order.
func (f *flight) wait(t *testing.T) []string {
	t.Helper()
	var out []string
	for range f.n {
		select {
		case c := <-f.codes:
			out = append(out, c)
		case <-time.After(60 * time.Second):
			t.Fatalf("answers so far %q: the rest never came", out)
		}
	}
	return out
}

// allOK fails unless every answer is a 200 from one of the backends.
func allOK(t *testing.T, what string, answers []string) {
	t.Helper()
	for _, a := range answers {
		if !strings.HasPrefix(a, "200 ") {
			t.Fatalf("%s: answers %q, want every one 200", what, answers)
		}
	}
}

// queueDepth reads the pool's queue depth from GET /api/v1/pools.
func (in *instance) queueDepth(t *testing.T, pool string) int {
	t.Helper()
	m := in.mustAPI(t, "GET", "/api/v1/pools", "", 200)
	for _, p := range m["pools"].([]any) {
		if pm := p.(map[string]any); pm["name"] == pool {
			return int(pm["queue"].(map[string]any)["depth"].(float64))
		}
	}
	t.Fatalf("no pool %s", pool)
	return 0
}

// TestMaxConnsPerBackendThroughTheBinary: a pool of two unequal backends on
// loopback (max_conns 1 and 3, the pool's max_conns_per_backend 5), whose
// answers the test holds. Each backend gets exactly its own limit
// concurrently, never more, and the fifth request queues; inflight_ratio's
// capacity is 4; a PATCH of max_conns applies at once, an invalid one changes
// nothing; a reload that changes max_conns applies without failing a request
// in flight or dropping pooled connections.
func TestMaxConnsPerBackendThroughTheBinary(t *testing.T) {
	small, large := newGated(t, "small"), newGated(t, "large")
	dir := t.TempDir()
	body := func(largeMax int) string {
		return fmt.Sprintf(`pools:
  - name: p
    max_conns_per_backend: 5
    queue: {max: 10, timeout: 50s}
    backends:
      - {address: %q, max_conns: 1}
      - {address: %q, max_conns: %d}
    degrade:
      enter: {p95_latency: 50s}
      exit: {p95_latency: 40s}
      window: 100ms
routes:
  - {name: r, path_prefix: /, pool: p}
`, small.addr, large.addr, largeMax)
	}
	cfg, addr, adminAddr := config(t, dir, body(3))
	in := startInstance(t, cfg, addr, adminAddr, "")
	if sm := in.backendOf(t, "p", small.addr); sm["max_conns"] != 1.0 || sm["limit"] != 1.0 {
		t.Fatalf("GET of the small backend: %v", sm)
	}

	// Four slots: 1 + 3. The fifth request queues.
	f := sendMany(t, addr, 5)
	waitFor(t, "1 + 3 requests at the backends and 1 queued", 20*time.Second, func() bool {
		return small.cur.Load() == 1 && large.cur.Load() == 3 && in.queueDepth(t, "p") == 1
	})
	// What the monitor reads: 4 in flight over a capacity of 4.
	waitFor(t, "inflight_ratio over a capacity of 4", 20*time.Second, func() bool {
		sig := in.mustAPI(t, "GET", "/api/v1/pools/p/mode", "", 200)["signals"].(map[string]any)
		return sig["capacity"] == 4.0 && sig["inflight"] == 4.0 && sig["inflight_ratio"] == 1.0
	})
	st := in.mustAPI(t, "GET", "/api/v1/status", "", 200)["pools"].([]any)[0].(map[string]any)
	if st["capacity"] != 4.0 {
		t.Errorf("status page capacity %v, want 4", st["capacity"])
	}
	for _, b := range st["backends"].([]any) {
		bm := b.(map[string]any)
		if want := map[string]float64{small.addr: 1, large.addr: 3}[bm["address"].(string)]; bm["limit"] != want {
			t.Errorf("status page: %s limit %v, want %v", bm["address"], bm["limit"], want)
		}
	}
	// The small backend's one slot goes to the queued request.
	small.free(1)
	waitFor(t, "the queued request at the small backend", 20*time.Second, func() bool {
		return small.cur.Load() == 1 && in.queueDepth(t, "p") == 0
	})
	small.free(1)
	large.free(3)
	allOK(t, "first batch", f.wait(t))
	if s, l := small.peak.Load(), large.peak.Load(); s != 1 || l != 3 {
		t.Fatalf("most at once: small %d, large %d; want their limits 1 and 3", s, l)
	}

	// PATCH the small backend to 2: 2 + 3 at once, the sixth queues.
	if m := in.mustAPI(t, "PATCH", "/api/v1/pools/p/backends/"+small.addr, `{"max_conns": 2}`, 200); m["max_conns"] != 2.0 || m["limit"] != 2.0 || m["overridden"] != true {
		t.Fatalf("PATCH answer %v", m)
	}
	// Invalid: refused whole, naming the field; nothing changes.
	code, m := in.api(t, "PATCH", "/api/v1/pools/p/backends/"+small.addr, `{"weight": 9, "max_conns": -1}`)
	if code != 400 || !strings.Contains(fmt.Sprint(m["error"]), "max_conns") {
		t.Fatalf("invalid PATCH: %d %v, want 400 naming max_conns", code, m)
	}
	in.mustAPI(t, "PATCH", "/api/v1/pools/p/backends/"+small.addr, `{"max_conns": "2"}`, 400)
	code, m = in.api(t, "POST", "/api/v1/pools/p/backends", `{"address": "127.0.0.1:9", "max_conns": 1000001}`)
	if code != 400 || !strings.Contains(fmt.Sprint(m["error"]), "max_conns") || in.backendOf(t, "p", "127.0.0.1:9") != nil {
		t.Fatalf("invalid register: %d %v, want 400 naming max_conns and no backend", code, m)
	}
	if sm := in.backendOf(t, "p", small.addr); sm["weight"] != 1.0 || sm["max_conns"] != 2.0 {
		t.Fatalf("after the invalid PATCH: %v, want weight 1 and max_conns 2", sm)
	}
	small.peak.Store(0)
	large.peak.Store(0)
	f = sendMany(t, addr, 6)
	waitFor(t, "2 + 3 requests at the backends and 1 queued", 20*time.Second, func() bool {
		return small.cur.Load() == 2 && large.cur.Load() == 3 && in.queueDepth(t, "p") == 1
	})
	// The queued request takes whichever slot frees first: free enough on
	// both, and take back what was not used.
	small.free(6)
	large.free(6)
	allOK(t, "after the PATCH", f.wait(t))
	small.drain()
	large.drain()
	if s, l := small.peak.Load(), large.peak.Load(); s != 2 || l != 3 {
		t.Fatalf("most at once after the PATCH: small %d, large %d; want 2 and 3", s, l)
	}

	// Reload raising the large backend to 4 while 5 requests are in flight:
	// they all answer, the sixth request takes the new slot at once.
	f = sendMany(t, addr, 5)
	waitFor(t, "2 + 3 requests at the backends", 20*time.Second, func() bool {
		return small.cur.Load() == 2 && large.cur.Load() == 3
	})
	writeFile(t, dir, "floodgate.yaml", strings.Replace(mustRead(t, cfg), "max_conns: 3", "max_conns: 4", 1))
	in.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "the reload applied", 20*time.Second, func() bool { return in.backendOf(t, "p", large.addr)["limit"] == 4.0 })
	if sm := in.backendOf(t, "p", small.addr); sm["max_conns"] != 2.0 {
		t.Fatalf("the reload dropped the API's max_conns of the small backend: %v", sm)
	}
	g := sendMany(t, addr, 1)
	waitFor(t, "the sixth request at the large backend's new slot", 20*time.Second, func() bool {
		return large.cur.Load() == 4 && in.queueDepth(t, "p") == 0
	})
	small.free(2)
	large.free(4)
	allOK(t, "requests in flight across the reload", append(f.wait(t), g.wait(t)...))
	if s, l := small.peak.Load(), large.peak.Load(); s != 2 || l != 4 {
		t.Fatalf("most at once across the reload: small %d, large %d; want 2 and 4", s, l)
	}
	// The connections pooled before the reload serve after it: sequential
	// requests open none.
	conns := small.conns.Load() + large.conns.Load()
	for range 6 {
		h := sendMany(t, addr, 1)
		small.free(1)
		large.free(1)
		allOK(t, "sequential", h.wait(t))
	}
	// Each free above let one request answer and left one unused.
	small.drain()
	large.drain()
	if got := small.conns.Load() + large.conns.Load(); got != conns {
		t.Errorf("backend connections %d after the reload's sequential requests, %d before: pooled connections were dropped", got, conns)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestMaxConnsStateFileThroughTheBinary: a backend's own max_conns, set over
// the API, survives a restart; a state file of the format before max_conns
// existed still loads.
func TestMaxConnsStateFileThroughTheBinary(t *testing.T) {
	a := backend(t, "a", nil)
	b := backend(t, "b", nil)
	dir := t.TempDir()
	state := filepath.Join(dir, "state.json")
	cfg, addr, adminAddr := config(t, dir, fmt.Sprintf("pools:\n  - name: p\n    max_conns_per_backend: 10\n    backends: [{address: %q}]\nroutes:\n  - {name: r, path_prefix: /, pool: p}\n", a),
		fmt.Sprintf("state_file: %q", state))
	in := startInstance(t, cfg, addr, adminAddr, "")
	if m := in.mustAPI(t, "POST", "/api/v1/pools/p/backends", fmt.Sprintf(`{"address": %q, "max_conns": 7}`, b), 201); m["max_conns"] != 7.0 || m["limit"] != 7.0 {
		t.Fatalf("register answer %v", m)
	}
	in.mustAPI(t, "PATCH", "/api/v1/pools/p/backends/"+a, `{"max_conns": 3}`, 200)
	in.cmd.Process.Signal(syscall.SIGTERM)
	if code := in.exitCode(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	in = startInstance(t, cfg, addr, adminAddr, "")
	if bm := in.backendOf(t, "p", b); bm["max_conns"] != 7.0 || bm["limit"] != 7.0 || bm["source"] != "api" {
		t.Fatalf("after restart, API backend %v", bm)
	}
	if am := in.backendOf(t, "p", a); am["max_conns"] != 3.0 || am["limit"] != 3.0 || am["overridden"] != true {
		t.Fatalf("after restart, overridden config backend %v", am)
	}
	in.cmd.Process.Signal(syscall.SIGTERM)
	if code := in.exitCode(t); code != 0 {
		t.Fatalf("exit %d", code)
	}

	// The format before max_conns: the backends get the pool's limit.
	writeFile(t, dir, "state.json", fmt.Sprintf(`{
  "version": 1,
  "backends": [
    {"pool": "p", "address": %q, "weight": 4, "source": "api"},
    {"pool": "p", "address": %q, "weight": 2, "source": "config", "file_weight": 1}
  ]
}
`, b, a))
	in = startInstance(t, cfg, addr, adminAddr, "")
	if bm := in.backendOf(t, "p", b); bm["weight"] != 4.0 || bm["max_conns"] != 0.0 || bm["limit"] != 10.0 {
		t.Fatalf("from an old state file, API backend %v", bm)
	}
	if am := in.backendOf(t, "p", a); am["weight"] != 2.0 || am["max_conns"] != 0.0 || am["limit"] != 10.0 || am["overridden"] != true {
		t.Fatalf("from an old state file, override %v", am)
	}
}
