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
	"time"
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

// TestCheckAndStartAgreeOnAddresses (issue 13, item 22): -check accepted a
// backend address that the start then refused ("[fe80::1%lo]:8080"): both now
// run one check, so -check refuses what the start would, naming the field.
func TestCheckAndStartAgreeOnAddresses(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ addr, why string }{
		{"[fe80::1%lo]:8080", "zones"},
		{"0.0.0.0:8080", "unspecified"},
		{"127.0.0.1:0", "port 0"},
		{"127.0.0.01:8080", "invalid IPv4"},
	} {
		cfg := writeFile(t, dir, "f.yaml", fmt.Sprintf("listen: %q\n%spools:\n  - name: p\n    backends: [{address: %q}]\nroutes:\n  - {name: r, path_prefix: /, pool: p}\n",
			freePort(t), adminLine(t), c.addr))
		chk := start(t, "-check", "-config", cfg)
		code := chk.exitCode(t)
		srv := start(t, "-config", cfg)
		srvCode := srv.exitCode(t)
		if code != 1 || srvCode != 1 {
			t.Errorf("backend %s: -check exits %d, start exits %d; want both to refuse it (1)\n-check: %s\nstart: %s", c.addr, code, srvCode, chk.logText(), srv.logText())
			continue
		}
		if out := chk.logText(); !strings.Contains(out, "pools[0].backends[0].address") || !strings.Contains(out, c.why) {
			t.Errorf("backend %s: -check says %q, want the field and %q", c.addr, out, c.why)
		}
	}
}

// TestAdminAPICanonicalAddresses (issue 13, item 23): the admin API
// registered "127.0.0.1:0P", "[::ffff:127.0.0.1]:P" and "LOCALHOST:P" beside
// "127.0.0.1:P" as other backends (each with its own health checks and
// connection limits), and accepted the unspecified address as a backend.
func TestAdminAPICanonicalAddresses(t *testing.T) {
	a := backend(t, "a", nil)
	host, port, _ := net.SplitHostPort(a)
	dir := t.TempDir()
	cfg, addr, adminAddr := config(t, dir, "pools:\n  - {name: p}\nroutes:\n  - {name: r, path_prefix: /, pool: p}\n")
	in := startInstance(t, cfg, addr, adminAddr, "")

	m := in.mustAPI(t, "POST", "/api/v1/pools/p/backends", fmt.Sprintf(`{"address": "%s:0%s"}`, host, port), 201)
	if m["address"] != a {
		t.Fatalf("registered as %v, want %s", m["address"], a)
	}
	for _, same := range []string{a, "[::ffff:" + host + "]:" + port, host + ":00" + port} {
		m := in.mustAPI(t, "POST", "/api/v1/pools/p/backends", fmt.Sprintf(`{"address": %q}`, same), 200)
		if m["address"] != a {
			t.Fatalf("%s: answered as %v, want the backend %s", same, m["address"], a)
		}
	}
	in.mustAPI(t, "POST", "/api/v1/pools/p/backends", `{"address": "LocalHost:`+port+`"}`, 201)
	if b := in.backendOf(t, "p", "localhost:"+port); b == nil {
		t.Fatal("a host name is not stored in lower case")
	}
	ps := in.mustAPI(t, "GET", "/api/v1/pools", "", 200)["pools"].([]any)
	if bs := ps[0].(map[string]any)["backends"].([]any); len(bs) != 2 {
		t.Fatalf("pool holds %d backends, want 2 (%s and localhost:%s): %v", len(bs), a, port, bs)
	}
	for _, bad := range []string{"0.0.0.0:" + port, "[::]:" + port, host + ":0", "[fe80::1%lo]:" + port} {
		code, m := in.api(t, "POST", "/api/v1/pools/p/backends", fmt.Sprintf(`{"address": %q}`, bad))
		if code != 400 {
			t.Errorf("registering %s: %d %v, want 400", bad, code, m)
		}
	}
	// PATCH and DELETE find the backend however it is spelt.
	in.mustAPI(t, "PATCH", "/api/v1/pools/p/backends/"+host+":0"+port, `{"weight": 3}`, 200)
	if b := in.backendOf(t, "p", a); b == nil || b["weight"].(float64) != 3 {
		t.Fatalf("after PATCH by another spelling: %v", b)
	}
	m = in.mustAPI(t, "DELETE", "/api/v1/pools/p/backends/"+host+":0"+port, "", 200)
	if m["address"] != a || in.backendOf(t, "p", a) != nil {
		t.Fatalf("DELETE by another spelling: %v", m)
	}
}

// rawGet sends raw bytes to addr and returns what comes back until the
// connection closes (bounded by a deadline).
func rawGet(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

// TestEmptyPoolHostlessRequest: an HTTP/1.0 request without Host to a route
// whose pool has no backend yet (a pool filled over the admin API) indexed its
// first backend and took the whole process down. It is a 503, and
// floodgate_panics_total is exported and stays 0.
func TestEmptyPoolHostlessRequest(t *testing.T) {
	dir := t.TempDir()
	cfg, addr, adminAddr := config(t, dir, "pools:\n  - {name: p}\nroutes:\n  - {name: r, path_prefix: /, pool: p}\n")
	in := startInstance(t, cfg, addr, adminAddr, "")
	if resp := rawGet(t, addr, "GET / HTTP/1.0\r\n\r\n"); !strings.HasPrefix(resp, "HTTP/1.1 503 ") && !strings.HasPrefix(resp, "HTTP/1.0 503 ") {
		t.Fatalf("HTTP/1.0 without Host to an empty pool: %q, want 503", resp)
	}
	if code, _ := get(t, "http://"+addr+"/"); code != 503 {
		t.Fatalf("the next request: %d, want 503 (no backend)", code)
	}
	if v := in.metric(t, "floodgate_panics_total"); v != 0 {
		t.Fatalf("floodgate_panics_total = %v, want 0 (exported, nothing contained)", v)
	}
}
