package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// orderBackend is a shop backend that honours Idempotency-Key: it records each key
// once (a repeat is answered 200 and not recorded again), and counts repeats.
// orders counts arrivals by Floodgate-Capture-Id, the id floodgate confirmed;
// replay sends the client's own key as Idempotency-Key (issue 15).
type orderBackend struct {
	mu      sync.Mutex
	orders  map[string]int // by capture id
	keys    map[string]int // by Idempotency-Key
	delay   time.Duration
	arrived atomic.Int64
}

func (b *orderBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if b.delay > 0 {
		time.Sleep(b.delay) // a slow checkout, so that replay is still running when killed
	}
	b.mu.Lock()
	b.orders[r.Header.Get("Floodgate-Capture-Id")]++
	b.keys[r.Header.Get("Idempotency-Key")]++
	b.mu.Unlock()
	b.arrived.Add(1)
	io.WriteString(w, "ok")
}

func (b *orderBackend) distinct() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]int, len(b.orders))
	for k, v := range b.orders {
		out[k] = v
	}
	return out
}

// crashConfig is a floodgate config whose checkout route captures orders, with the
// pool's one backend at backendAddr, probed by TCP so that a dead backend is seen
// down within a few hundred milliseconds.
func crashConfig(t *testing.T, dir, listen, backendAddr string) string {
	return writeFile(t, dir, "f.yaml", fmt.Sprintf(`listen: %q
%s
capture: {dir: %q, replay_rate: 200/s}
pools:
  - name: shop
    backends: [{address: %q}]
    health: {type: tcp, interval: 100ms, timeout: 50ms, rise: 1, fall: 1}
routes:
  - {name: checkout, path_prefix: /checkout, pool: shop, priority: high, on_degraded: {action: capture}}
`, listen, adminLine(t), filepath.Join(dir, "journal"), backendAddr))
}

// TestCrashKeepsEveryConfirmedOrder: orders are captured while the checkout backend
// is down; floodgate is killed with SIGKILL in the middle of the burst; after a
// restart with the backend back, every order that was answered 202 reaches the
// backend, and a backend that honours Idempotency-Key records each exactly once.
// Then the same again with the kill during replay. Bounded: a few hundred orders.
func TestCrashKeepsEveryConfirmedOrder(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test")
	}
	dir := t.TempDir()
	// The backend's address, not listening yet: the pool starts with it down.
	backendAddr := freePort(t)
	listen := freePort(t)
	cfg := crashConfig(t, dir, listen, backendAddr)

	p := start(t, "-config", cfg)
	p.waitLog(t, "floodgate listening")
	post := func(key string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+listen+"/checkout", strings.NewReader(`{"order":"`+key+`"}`))
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, ""
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Floodgate-Capture-Id")
	}
	waitFor(t, "the dead backend seen down and orders captured", 10*time.Second, func() bool {
		code, _ := post("probe")
		return code == 202
	})

	// A burst from 8 clients, killed in the middle.
	var mu sync.Mutex
	confirmed := map[string]bool{} // capture ids answered 202
	var wg sync.WaitGroup
	var sent atomic.Int64
	stop := make(chan struct{})
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				code, id := post(fmt.Sprintf("c%d-%d", c, i))
				sent.Add(1)
				if code == 202 && id != "" {
					mu.Lock()
					confirmed[id] = true
					mu.Unlock()
				}
				if code == 0 {
					return // floodgate is gone
				}
			}
		}(c)
	}
	waitFor(t, "a burst under way", 10*time.Second, func() bool { return sent.Load() > 150 })
	p.cmd.Process.Signal(syscall.SIGKILL)
	close(stop)
	wg.Wait()
	<-p.done
	if len(confirmed) < 100 {
		t.Fatalf("only %d orders confirmed before the kill; the test proves little", len(confirmed))
	}

	// Restart with the backend alive: a slow one, so that replay is under way
	// when floodgate is killed again.
	be := &orderBackend{orders: map[string]int{}, keys: map[string]int{}, delay: 5 * time.Millisecond}
	ln, err := net.Listen("tcp", backendAddr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: be}
	go srv.Serve(ln)
	defer srv.Close()
	p2 := start(t, "-config", cfg)
	p2.waitLog(t, "floodgate listening")
	waitFor(t, "replay under way", 20*time.Second, func() bool { return be.arrived.Load() > 20 })
	p2.cmd.Process.Signal(syscall.SIGKILL)
	<-p2.done

	p3 := start(t, "-config", cfg)
	p3.waitLog(t, "floodgate listening")
	waitFor(t, "every confirmed order delivered", 60*time.Second, func() bool {
		got := be.distinct()
		for id := range confirmed {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
	got := be.distinct()
	repeats := 0
	for _, n := range got {
		if n > 1 {
			repeats += n - 1
		}
	}
	t.Logf("%d orders confirmed before the first kill; after a kill during replay and a restart, all %d reached the backend "+
		"(%d distinct keys, %d repeats absorbed by Idempotency-Key)", len(confirmed), len(confirmed), len(got), repeats)
	for id := range confirmed {
		if got[id] == 0 {
			t.Errorf("confirmed order %s never reached the backend", id)
		}
	}
	be.mu.Lock()
	if len(be.keys) != len(got) {
		t.Errorf("%d capture ids arrived under %d Idempotency-Keys: want each under its client's own key", len(got), len(be.keys))
	}
	be.mu.Unlock()
	p3.cmd.Process.Signal(syscall.SIGTERM)
	p3.exitCode(t)
}
