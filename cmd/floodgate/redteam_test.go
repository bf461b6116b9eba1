package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawStatus writes raw to the proxy and returns the status of its answer.
func rawStatus(t *testing.T, addr, raw string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, raw)
	c.(*net.TCPConn).CloseWrite()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	if len(b) < 12 || !strings.HasPrefix(string(b), "HTTP/1.1 ") {
		return 0
	}
	n, _ := strconv.Atoi(string(b[9:12]))
	return n
}

// TestRequestSideAttacksThroughTheBinary: a few of the red-team attacks on the
// request side, against the real binary with its default settings (passive
// health on): path tricks past a route's allow list, a Connection field that
// would strip Host, a client's Forwarded, and malformed request trailers that
// used to be charged to the backend until passive health ejected it.
func TestRequestSideAttacksThroughTheBinary(t *testing.T) {
	var mu sync.Mutex
	var forwarded []string
	be := backend(t, "be", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		forwarded = append(forwarded, r.Header.Get("Forwarded"))
		mu.Unlock()
		io.WriteString(w, "be")
	})
	cfg, addr, adminAddr := config(t, t.TempDir(), fmt.Sprintf(`pools:
  - name: p
    backends: [{address: %q}]
routes:
  - {name: office, path_prefix: /office/, pool: p, allow_cidrs: [192.0.2.0/24]}
  - {name: site, path_prefix: /, pool: p}
`, be))
	startInstance(t, cfg, addr, adminAddr, "")
	for _, raw := range []string{
		"GET /%256Fffice/x HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /office./x HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /%u006Fffice/x HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /x/%c0%ae%c0%ae/office/x HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nConnection: host\r\n\r\n",
		"CONNECT / HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		if got := rawStatus(t, addr, raw); got != 400 {
			t.Errorf("%q: %d, want 400", raw, got)
		}
	}
	if got := rawStatus(t, addr, "GET / HTTP/1.1\r\nHost: x\r\nForwarded: host=evil.example;proto=https\r\n\r\n"); got != 200 {
		t.Fatalf("a request with Forwarded: %d", got)
	}
	mu.Lock()
	if len(forwarded) != 1 || forwarded[0] != "" {
		t.Errorf("the backend got Forwarded %q", forwarded)
	}
	mu.Unlock()
	// max_fails is 5 by default: ten clients' bad trailers must not eject the
	// only backend.
	for i := 0; i < 10; i++ {
		raw := "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\nContent-Length: 9\r\n\r\n"
		if got := rawStatus(t, addr, raw); got != 400 {
			t.Errorf("bad trailer %d: %d, want 400", i, got)
		}
	}
	if code, body := get(t, "http://"+addr+"/"); code != 200 || body != "be" {
		t.Fatalf("after ten bad trailers: %d %q, want the backend's 200", code, body)
	}
}
