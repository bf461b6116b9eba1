package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestProxyProtocolThroughTheBinary: proxy_protocol from the config file reaches
// the listener. A load balancer on 127.0.0.1 (trusted) sends PROXY headers; the
// client address in them is what the backend sees in X-Forwarded-For, what
// allow_cidrs decides on and what the log names; a PROXY header from 127.0.0.2
// is refused and logged with that peer's address. Before, the PROXY line got a
// 400.
func TestProxyProtocolThroughTheBinary(t *testing.T) {
	dir := t.TempDir()
	be := backend(t, "b", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Header.Get("X-Forwarded-For")) })
	addr := freePort(t)
	cfg := writeFile(t, dir, "f.yaml", fmt.Sprintf(`listen: %q
%s
trusted_proxies: [127.0.0.1/32]
proxy_protocol: true
pools:
  - name: shop
    backends: [{address: %q}]
routes:
  - {name: site, path_prefix: /, pool: shop, allow_cidrs: [192.0.2.0/24]}
`, addr, adminLine(t), be))
	p := start(t, "-config", cfg)
	p.waitLog(t, "floodgate listening")

	send := func(src, raw string) string {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, raw)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c)
		return string(b)
	}
	const get = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	if resp := send("127.0.0.1", "PROXY TCP4 192.0.2.9 127.0.0.1 5555 80\r\n"+get); !strings.HasPrefix(resp, "HTTP/1.1 200") || !strings.HasSuffix(resp, "\r\n\r\n192.0.2.9") {
		t.Fatalf("v1 from the balancer: %q", resp)
	}
	if resp := send("127.0.0.1", "PROXY TCP4 203.0.113.1 127.0.0.1 5555 80\r\n"+get); !strings.HasPrefix(resp, "HTTP/1.1 403") {
		t.Fatalf("client outside allow_cidrs: %q", resp)
	}
	if resp := send("127.0.0.2", "PROXY TCP4 192.0.2.9 127.0.0.1 5555 80\r\n"+get); resp != "" {
		t.Fatalf("PROXY from an untrusted peer: %q, want closed without an answer", resp)
	}
	p.waitLog(t, "peer=127.0.0.2:")
}
