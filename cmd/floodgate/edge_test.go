package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// selfSigned writes a certificate for name into dir and returns its paths.
func selfSigned(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}

// TestTLSAccessLogAndCaptureConfig runs the binary with TLS, the access log and a
// capture journal configured: HTTPS with SNI works, X-Forwarded-Proto says https,
// every request is logged as a JSON line, and SIGUSR1 reopens the log after a
// rotation.
func TestTLSAccessLogAndCaptureConfig(t *testing.T) {
	dir := t.TempDir()
	crt, key := selfSigned(t, dir, "shop.example")
	be := backend(t, "b", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Header.Get("X-Forwarded-Proto")) })
	addr, tlsAddr := freePort(t), freePort(t)
	logPath := filepath.Join(dir, "access.log")
	cfg := writeFile(t, dir, "f.yaml", fmt.Sprintf(`listen: %q
%s
tls:
  listen: %q
  certificates: [{cert_file: %q, key_file: %q}]
access_log: {path: %q}
capture: {dir: %q}
pools:
  - name: shop
    backends: [{address: %q}]
    max_conns_per_backend: 50
    degrade:
      enter: {p95_latency: 800ms}
      exit: {p95_latency: 300ms}
routes:
  - {name: checkout, path_prefix: /checkout, pool: shop, priority: high, on_degraded: {action: capture}}
  - {name: site, path_prefix: /, pool: shop, on_degraded: {action: shed}}
`, addr, adminLine(t), tlsAddr, crt, key, logPath, filepath.Join(dir, "journal"), be))
	p := start(t, "-config", cfg)
	p.waitLog(t, "floodgate listening")

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: "shop.example", InsecureSkipVerify: true}}} //nolint:gosec // self-signed test certificate
	resp, err := client.Get("https://" + tlsAddr + "/page")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "https" || resp.TLS.PeerCertificates[0].Subject.CommonName != "shop.example" {
		t.Fatalf("HTTPS: %d %q", resp.StatusCode, body)
	}
	if code, body := get(t, "http://"+addr+"/plain"); code != 200 || body != "http" {
		t.Fatalf("HTTP: %d %q", code, body)
	}
	lines := func(path string) []map[string]any {
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		defer f.Close()
		var out []map[string]any
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				out = append(out, m)
			}
		}
		return out
	}
	waitFor(t, "two access log lines", 10*time.Second, func() bool { return len(lines(logPath)) == 2 })
	if l := lines(logPath)[0]; l["target"] != "/page" || l["route"] != "site" || l["status"] != 200.0 {
		t.Fatalf("access log line %v", l)
	}
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGUSR1)
	p.waitLog(t, "access log reopened")
	get(t, "http://"+addr+"/after")
	waitFor(t, "a line in the reopened log", 10*time.Second, func() bool { return len(lines(logPath)) == 1 })
	if !strings.Contains(p.logText(), "floodgate listening") {
		t.Fatal("no start line")
	}
}

// TestDegradedModeThroughTheBinary forces a pool degraded through the admin API:
// the low-priority route is served while a slot is free (work-conserving
// admission, issue 15) and shed with Retry-After in the pool without a
// connection limit, where no slot can be seen free; orders are captured (202), the
// critical route still reaches the backend, GET .../mode reports it, and once the
// mode is back to normal the captured order is replayed to the backend with its
// Idempotency-Key.
func TestDegradedModeThroughTheBinary(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var seen []string
	be := backend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" "+r.Header.Get("Idempotency-Key"))
		mu.Unlock()
		io.WriteString(w, "ok")
	})
	addr, adminAddr := freePort(t), freePort(t)
	cfg := writeFile(t, dir, "f.yaml", fmt.Sprintf(`listen: %q
admin: {listen: %q}
capture: {dir: %q}
pools:
  - name: shop
    backends: [{address: %q}]
    max_conns_per_backend: 20
  - name: blind
    backends: [{address: %q}]
routes:
  - {name: search, path_prefix: /search, pool: shop, priority: low, on_degraded: {action: shed, retry_after: 15s}}
  - {name: recommendations, path_prefix: /reco, pool: blind, priority: low, on_degraded: {action: shed, retry_after: 15s}}
  - {name: checkout, path_prefix: /checkout, pool: shop, priority: high, on_degraded: {action: capture, when: degraded}}
  - {name: order, path_prefix: /order, pool: shop, priority: high, on_degraded: {action: capture}}
  - {name: admin, path_prefix: /admin/, pool: shop, priority: critical}
`, addr, adminAddr, filepath.Join(dir, "journal"), be, be))
	p := start(t, "-config", cfg)
	p.waitLog(t, "floodgate listening")
	setMode := func(mode string) { setPoolMode(t, adminAddr, "blind", mode); setPoolMode(t, adminAddr, "shop", mode) }
	setMode("degraded")
	if code, _ := get(t, "http://"+addr+"/search?q=x"); code != 200 {
		t.Fatalf("search while degraded with slots free: %d, want it served", code)
	}
	resp, err := http.Get("http://" + addr + "/reco")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "15" {
		t.Fatalf("low route of a pool without a connection limit while degraded: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	resp, err = http.Post("http://"+addr+"/checkout", "application/json", strings.NewReader(`{"cart":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id := resp.Header.Get("Floodgate-Capture-Id")
	if resp.StatusCode != 202 || id == "" {
		t.Fatalf("order while degraded: %d id %q", resp.StatusCode, id)
	}
	// when: refused (the default): an admitted order with a free slot goes to
	// the backend.
	resp, err = http.Post("http://"+addr+"/order", "application/json", strings.NewReader(`{"cart":2}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Floodgate-Capture-Id") != "" {
		t.Fatalf("admitted order with when: refused while degraded: %d, want the backend's 200", resp.StatusCode)
	}
	if code, _ := get(t, "http://"+addr+"/admin/"); code != 200 {
		t.Fatalf("back office while degraded: %d", code)
	}
	if code, body := get(t, "http://"+adminAddr+"/api/v1/pools/shop/mode"); code != 200 || !strings.Contains(body, "degraded") {
		t.Fatalf("GET mode: %d %s", code, body)
	}
	setMode("normal")
	waitFor(t, "the captured order replayed", 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range seen {
			if s == "POST /checkout "+id {
				return true
			}
		}
		return false
	})
}

// TestCachePurgeThroughTheAPI: a stored page is served from the cache until
// DELETE /api/v1/cache purges it; bad purge requests are 400.
func TestCachePurgeThroughTheAPI(t *testing.T) {
	var hits atomic.Int64
	be := backend(t, "b", func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "page")
	})
	addr, adminAddr := freePort(t), freePort(t)
	cfg := writeFile(t, t.TempDir(), "f.yaml", fmt.Sprintf(`listen: %q
admin: {listen: %q}
cache: {max_bytes: 16MB}
pools:
  - name: shop
    backends: [{address: %q}]
routes:
  - {name: site, path_prefix: /, pool: shop, cache: {enabled: true}}
`, addr, adminAddr, be))
	p := start(t, "-config", cfg)
	p.waitLog(t, "floodgate listening")
	get(t, "http://"+addr+"/products/42")
	get(t, "http://"+addr+"/products/42")
	if n := hits.Load(); n != 1 {
		t.Fatalf("backend hit %d times, want 1 (cached)", n)
	}
	purge := func(q string) (int, string) {
		req, _ := http.NewRequest(http.MethodDelete, "http://"+adminAddr+"/api/v1/cache?"+q, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := purge("prefix=/products/"); code != 200 || !strings.Contains(body, `"purged": 1`) {
		t.Fatalf("purge: %d %s", code, body)
	}
	get(t, "http://"+addr+"/products/42")
	if n := hits.Load(); n != 2 {
		t.Fatalf("after the purge the backend was hit %d times in all, want 2", n)
	}
	for _, q := range []string{"", "prefix=/a&key=/b", "prefix=nope", "bogus=1"} {
		if code, _ := purge(q); code != 400 {
			t.Errorf("purge %q: %d, want 400", q, code)
		}
	}
}

// setPoolMode sets a pool's mode through the admin API.
func setPoolMode(t *testing.T, adminAddr, pool, mode string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, "http://"+adminAddr+"/api/v1/pools/"+pool+"/mode", strings.NewReader(`{"mode": "`+mode+`"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("PUT %s mode %s: %d", pool, mode, resp.StatusCode)
	}
}
