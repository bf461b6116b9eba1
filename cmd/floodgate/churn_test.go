package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a backend that records when each proxied request (any path but the
// health probe's) arrived and when its handler finished, by the test process's
// monotonic clock. Proxied requests take a millisecond, so that some are in
// flight whenever a DELETE starts.
type recorder struct {
	addr string
	srv  *http.Server

	mu       sync.Mutex
	arrivals []time.Time
	finishes []time.Time
	probes   []time.Time
	warm     chan struct{} // closed at the warmAfter-th proxied request
}

// warmAfter is how many proxied requests make a recorder warm.
const warmAfter = 3

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{addr: ln.Addr().String(), warm: make(chan struct{})}
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		now := time.Now()
		r.mu.Lock()
		if req.URL.Path == "/healthz" {
			r.probes = append(r.probes, now)
			r.mu.Unlock()
			return
		}
		r.arrivals = append(r.arrivals, now)
		if len(r.arrivals) == warmAfter {
			close(r.warm)
		}
		r.mu.Unlock()
		time.Sleep(time.Millisecond) // the work of a request, not synchronisation
		io.WriteString(w, r.addr)
		r.mu.Lock()
		r.finishes = append(r.finishes, time.Now())
		r.mu.Unlock()
	})}
	go r.srv.Serve(ln)
	t.Cleanup(func() { r.srv.Close() })
	return r
}

// after counts the proxied requests that arrived, or were still being handled,
// later than t, and the probes that arrived later than t.
func (r *recorder) after(t time.Time) (proxied, probes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.arrivals {
		if a.After(t) {
			proxied++
		}
	}
	for _, f := range r.finishes {
		if f.After(t) {
			proxied++
		}
	}
	for _, a := range r.probes {
		if a.After(t) {
			probes++
		}
	}
	return proxied, probes
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.arrivals)
}

// TestChurn is the churn measure, against the real binary: steady load
// through the proxy while the config is reloaded 20 times and backends are
// registered and removed 50 times. No client request may fail, and no request
// may reach a backend after its DELETE has returned.
//
// Long test (about 5 s; skipped with -short).
func TestChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("long test: churn under load")
	}
	const (
		reloads   = 20
		churns    = 50
		churners  = 3 // goroutines registering and removing
		loaders   = 4 // client goroutines with keep-alive connections
		maxLength = 10 * time.Second
	)
	c0, c1, c2 := newRecorder(t), newRecorder(t), newRecorder(t)
	dir := t.TempDir()
	addr, adminAddr := freePort(t), freePort(t)
	cfgText := func(i int) string {
		s := fmt.Sprintf(`listen: %q
admin: {listen: %q, drain_timeout: 10s}
pools:
  - name: p
    health: {type: http, path: /healthz, interval: 50ms, timeout: 40ms, rise: 1, fall: 3}
    backends:
      - {address: %q, weight: %d}
      - {address: %q, weight: 2}
`, addr, adminAddr, c0.addr, i%3+1, c1.addr)
		if i%2 == 1 { // a config backend comes and goes too
			s += fmt.Sprintf("      - {address: %q, weight: 1}\n", c2.addr)
		}
		return s + "routes:\n  - {name: r, path_prefix: /, pool: p}\n"
	}
	cfg := writeFile(t, dir, "floodgate.yaml", cfgText(0))
	in := startInstance(t, cfg, addr, adminAddr, "")
	in.servedBy(t, c0.addr+"")
	deadline := time.Now().Add(maxLength)

	// Steady, bounded load: a few clients with keep-alive connections.
	var sent, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var lw sync.WaitGroup
	for i := 0; i < loaders; i++ {
		lw.Add(1)
		go func() {
			defer lw.Done()
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			defer client.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				sent.Add(1)
				resp, err := client.Get("http://" + addr + "/")
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}

	// Churn: register a fresh backend, let it take traffic, remove it.
	type removal struct {
		r        *recorder
		returned time.Time
	}
	var mu sync.Mutex
	var removals []removal
	var cw sync.WaitGroup
	for g := 0; g < churners; g++ {
		cw.Add(1)
		go func() {
			defer cw.Done()
			for i := g; i < churns; i += churners {
				r := newRecorder(t)
				if code, m := in.api(t, "POST", "/api/v1/pools/p/backends", fmt.Sprintf(`{"address": %q, "weight": 3}`, r.addr)); code != 201 {
					t.Errorf("register %s: %d %v", r.addr, code, m)
					return
				}
				// Health-gated: it takes traffic once a probe passed. Let
				// it take some, for a bounded time.
				select {
				case <-r.warm:
				case <-time.After(2 * time.Second):
				}
				code, m := in.api(t, "DELETE", "/api/v1/pools/p/backends/"+r.addr, "")
				returned := time.Now()
				if code != 200 || m["drained"] != true {
					t.Errorf("delete %s: %d %v", r.addr, code, m)
					return
				}
				mu.Lock()
				removals = append(removals, removal{r, returned})
				mu.Unlock()
			}
		}()
	}
	// Reloads, meanwhile: rewrite the file the way editors do, then ask for a
	// reload over the API, which answers once it is in service.
	for i := 1; i <= reloads; i++ {
		tmp := writeFile(t, dir, ".floodgate.yaml.tmp", cfgText(i))
		if err := os.Rename(tmp, filepath.Join(dir, "floodgate.yaml")); err != nil {
			t.Fatal(err)
		}
		if code, m := in.api(t, "POST", "/api/v1/reload", ""); code != 200 {
			t.Fatalf("reload %d: %d %v", i, code, m)
		}
		time.Sleep(100 * time.Millisecond) // spread the reloads over the churn
	}
	cw.Wait()
	// Keep the load on a little after the last removal, so late arrivals
	// would have a chance to show.
	time.Sleep(200 * time.Millisecond)
	close(stop)
	lw.Wait()
	if time.Now().After(deadline) {
		// On a loaded machine it may; the measure is the same.
		t.Logf("churn took %v, longer than the %v it takes on an idle 2-core machine", time.Since(deadline.Add(-maxLength)), maxLength)
	}

	late, lateProbes, churnedTraffic := 0, 0, 0
	for _, rm := range removals {
		p, pr := rm.r.after(rm.returned)
		late += p
		lateProbes += pr
		churnedTraffic += rm.r.count()
	}
	okReloads := in.metric(t, `floodgate_config_reloads_total{result="success"}`)
	t.Logf("%d requests, %d failed; %.0f reloads; %d backends registered and removed, which served %d requests; %d requests reached or were still at a backend, and %d probes reached one, after its DELETE returned",
		sent.Load(), failed.Load(), okReloads, len(removals), churnedTraffic, late, lateProbes)
	if failed.Load() != 0 {
		t.Errorf("%d of %d client requests failed, first: %v", failed.Load(), sent.Load(), firstErr.Load())
	}
	if late != 0 {
		t.Errorf("%d requests reached, or were still at, a backend after its DELETE returned", late)
	}
	if len(removals) != churns {
		t.Errorf("%d removals, want %d", len(removals), churns)
	}
	if okReloads < reloads {
		t.Errorf("%v reloads applied, want at least %d", okReloads, reloads)
	}
	if churnedTraffic == 0 {
		t.Error("the churned backends never took traffic")
	}
}
