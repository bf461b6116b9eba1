package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Control-plane defects of issue 13, each through the real binary, its sockets,
// its files and its admin API.

// droppingBackend is a raw TCP backend that closes each connection without an
// answer while drop is set, and answers "ok" otherwise.
type droppingBackend struct {
	ln   net.Listener
	drop atomic.Bool
	wg   sync.WaitGroup
}

func newDroppingBackend(t *testing.T) *droppingBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &droppingBackend{ln: ln}
	b.drop.Store(true)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					if b.drop.Load() {
						return // the connection closes before any answer
					}
					if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); b.wg.Wait() })
	return b
}

// TestPassiveEjectionKeepsTheLastBackend (issue 13, item 19): a pool's only
// backend drops a few connections, enough for max_fails; it must not be ejected,
// or every request gets "503 no healthy backend" for eject_for although the
// backend is serving again.
func TestPassiveEjectionKeepsTheLastBackend(t *testing.T) {
	be := newDroppingBackend(t)
	dir := t.TempDir()
	cfg, addr, adminAddr := config(t, dir, fmt.Sprintf(`pools:
  - name: p
    backends: [{address: %q}]
    passive: {max_fails: 2, eject_for: 1h}
routes:
  - {name: r, path_prefix: /, pool: p}
`, be.ln.Addr().String()))
	in := startInstance(t, cfg, addr, adminAddr, "")
	for i := range 4 {
		if code, body := get(t, "http://"+addr+"/"); code != 502 {
			t.Fatalf("request %d to a backend dropping connections: %d %q, want 502", i, code, body)
		}
	}
	be.drop.Store(false)
	if code, body := get(t, "http://"+addr+"/"); code != 200 || body != "ok" {
		t.Fatalf("the backend serves again, the pool answers %d %q: its only backend was ejected", code, body)
	}
	if b := in.backendOf(t, "p", be.ln.Addr().String()); b == nil || b["ejections"].(float64) != 0 || b["state"] != "up" {
		t.Fatalf("backend: %v, want up and never ejected", b)
	}
	if !strings.Contains(in.logText(), "backend not ejected despite consecutive failures: last backend up") {
		t.Errorf("the skipped ejection is not logged:\n%s", in.logText())
	}
}
