package proxy

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/floodgate/floodgate/internal/limits"
)

// Tests of the client request side (issue #13): what a client can do to slip past
// routing and access lists or to spoof its identity, and the answers to malformed or
// oversized request heads. Each goes through real sockets.

// routedProxy is a proxy with the given routes, all on pool "p", in front of one
// recording backend.
func routedProxy(t *testing.T, opts Options, routes ...RouteSpec) (*testProxy, *rawBackend) {
	t.Helper()
	be := newRawBackend(t, nil)
	px := newTestProxy(t, opts, PoolSpec{}, be.addr())
	for i := range routes {
		routes[i].Pool = "p"
	}
	snap, err := px.s.Build(Spec{Gen: 2, Pools: []PoolSpec{{Pool: px.s.Current().Pool("p")}}, Routes: routes})
	if err != nil {
		t.Fatal(err)
	}
	px.s.Swap(snap)
	return px, be
}

// exchangeFrom is exchange from a chosen loopback source address.
func exchangeFrom(t *testing.T, src, addr, raw string, quiet time.Duration) (string, bool) {
	t.Helper()
	c := dialFrom(t, src, addr)
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return readUntilQuiet(c, quiet)
}

// Item 5: every X-Forwarded-For line is walked, not the first four.
func TestXFFEveryLineWalked(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")}
	px, be := guardedProxy(t, Options{TrustedProxies: trusted},
		RouteSpec{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	spoof := strings.Repeat("X-Forwarded-For: 192.0.2.1\r\n", 4)
	tests := []struct {
		name, xff string
		want      int
	}{
		// The front proxy (127.0.0.3) appends the real client, 203.0.113.9, as
		// a fifth line after four the attacker wrote.
		{"four spoofed lines then the real one", spoof + "X-Forwarded-For: 203.0.113.9\r\n", 403},
		{"ten spoofed lines", strings.Repeat(spoof, 2) + "x-forwarded-for: 192.0.2.9\r\nX-Forwarded-For: 192.0.2.8\r\nX-Forwarded-For: 203.0.113.9\r\n", 403},
		{"spoofed elements in the same line", "X-Forwarded-For: 192.0.2.1, 192.0.2.2, 192.0.2.3, 192.0.2.4, 203.0.113.9\r\n", 403},
		{"trusted hops skipped", spoof + "X-Forwarded-For: 203.0.113.9, 127.0.0.3\r\nX-Forwarded-For: 127.0.0.3\r\n", 403},
		{"malformed rightmost element is an unknown client", spoof + "X-Forwarded-For: 192.0.2.1, bogus\r\n", 403},
		{"empty element is an unknown client", spoof + "X-Forwarded-For: 192.0.2.1,\r\n", 403},
		{"allowed client, many lines", spoof + "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 192.0.2.77\r\n", 200},
		{"allowed client with a port", "X-Forwarded-For: 192.0.2.77:4711\r\n", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(be.requests())
			resp, _ := exchangeFrom(t, "127.0.0.3", px.addr, "GET / HTTP/1.1\r\nHost: x\r\n"+tt.xff+"\r\n", 300*time.Millisecond)
			if got := statusOfRaw(resp); got != tt.want {
				t.Fatalf("status %d, want %d", got, tt.want)
			}
			if tt.want != 200 && len(be.requests()) != before {
				t.Fatal("a refused request reached the backend")
			}
		})
	}
}

// Item 5, rate limits: spoofed lines cannot give each request a fresh bucket.
func TestXFFRateLimitNotBypassed(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")}
	px, _ := guardedProxy(t, Options{TrustedProxies: trusted}, RouteSpec{RateLimit: &RateLimitSpec{Rate: 0.01, Burst: 1}})
	for i := 0; i < 3; i++ {
		spoof := strings.Repeat("X-Forwarded-For: 198.51.100."+string(rune('1'+i))+"\r\n", 4)
		resp, _ := exchangeFrom(t, "127.0.0.3", px.addr, "GET / HTTP/1.1\r\nHost: x\r\n"+spoof+"X-Forwarded-For: 203.0.113.9\r\n\r\n", 300*time.Millisecond)
		want := 429
		if i == 0 {
			want = 200
		}
		if got := statusOfRaw(resp); got != want {
			t.Fatalf("request %d: %d, want %d", i, got, want)
		}
	}
}

// Item 6: a target that common backends read as another route's path is refused,
// and a route with an access list cannot be reached around it.
func TestPathAmbiguityRefused(t *testing.T) {
	px, be := routedProxy(t, Options{},
		RouteSpec{Name: "admin", PathPrefix: "/admin/", AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}},
		RouteSpec{Name: "www", PathPrefix: "/"},
		RouteSpec{Name: "files", PathPrefix: "/files/caf%C3%A9/"},
	)
	tests := []struct {
		target string
		want   int
	}{
		{"/admin/x", 403},
		{"/admin;/x", 400},             // Tomcat, Spring: path parameter
		{"/admin;jsessionid=1/x", 400}, // same
		{"/x/..;/admin/x", 400},        // Tomcat: ..; is ..
		{"/ADMIN/x", 400},              // IIS: case-insensitive
		{"/Admin/x", 400},
		{"/x/..\\admin/x", 400}, // IIS: backslash is a slash
		{"/admin\\x", 400},
		{"/%61dmin/x", 400},    // decoded letter
		{"/admin%2Fx", 400},    // encoded slash
		{"/admin%2fx", 400},    // lower-case hex
		{"/admin%5Cx", 400},    // encoded backslash
		{"//admin/x", 400},     // merged slashes (nginx merge_slashes)
		{"/x/../admin/x", 400}, // dot segments
		{"/x/%2e%2e/admin/x", 400},
		{"/x/.%2E/admin/x", 400},
		{"/./admin/x", 400},
		{"/x/..", 400},
		{"/x/%2E", 400},
		{"/x/%252e%252e/admin/x", 400}, // double-encoded dots
		{"/x/..%2Fadmin/x", 400},
		// Legitimate targets still pass, byte for byte.
		{"/", 200},
		{"/index.html", 200},
		{"/a/.well-known/x", 200},
		{"/a..b/c...d", 200},
		{"/shop;jsessionid=1/cart", 200}, // parameters that do not change the route
		{"/a%20b?x=/admin/../y", 200},    // the query is not a path
		{"/Static/X", 200},
		{"/files/caf%C3%A9/x", 200},
		{"/files/caf%c3%a9/x", 400},   // the route's prefix, but only once decoded
		{"/api/group%2Fproject", 200}, // an encoded slash that changes no route
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			before := len(be.requests())
			resp, closed := exchangeFrom(t, "127.0.0.1", px.addr, "GET "+tt.target+" HTTP/1.1\r\nHost: x\r\n\r\n", 300*time.Millisecond)
			if got := statusOfRaw(resp); got != tt.want {
				t.Fatalf("status %d, want %d: %.200q", got, tt.want, resp)
			}
			reqs := be.requests()
			if tt.want != 200 {
				if len(reqs) != before {
					t.Fatalf("the backend got %q", reqs[len(reqs)-1])
				}
				if tt.want == 400 && !closed {
					t.Fatal("connection left open after a 400")
				}
				return
			}
			if len(reqs) != before+1 || !strings.HasPrefix(reqs[len(reqs)-1], "GET "+tt.target+" HTTP/1.1\r\n") {
				t.Fatalf("the backend got %q, want the target as sent", reqs[len(reqs)-1])
			}
		})
	}
}

// A trailing dot in Host names the same host: it must not dodge a host route.
func TestHostTrailingDotRoutes(t *testing.T) {
	px, be := routedProxy(t, Options{},
		RouteSpec{Name: "admin", Host: "admin.example", PathPrefix: "/", AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}},
		RouteSpec{Name: "www", PathPrefix: "/"},
	)
	for _, host := range []string{"admin.example", "admin.example.", "ADMIN.example.:80"} {
		resp, _ := exchange(t, px.addr, "GET / HTTP/1.1\r\nHost: "+host+"\r\n\r\n", 300*time.Millisecond)
		if got := statusOfRaw(resp); got != 403 {
			t.Errorf("Host %q: status %d, want 403", host, got)
		}
	}
	if n := len(be.requests()); n != 0 {
		t.Fatalf("%d requests reached the backend", n)
	}
}

// Item 7: the access log's client is the address the trusted-proxies walk gives;
// the peer is logged beside it.
func TestAccessLogClientAfterTrustedProxies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	al, err := NewAccessLog(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{AccessLog: al, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")}}, PoolSpec{}, be.addr())
	exchangeFrom(t, "127.0.0.3", px.addr, "GET /a HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 198.51.100.7, 127.0.0.3\r\n\r\n", 300*time.Millisecond)
	exchangeFrom(t, "127.0.0.4", px.addr, "GET /b HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.7\r\n\r\n", 300*time.Millisecond)
	waitUntil(t, "two lines", func() bool { return len(readLines(t, path)) == 2 })
	lines := readLines(t, path)
	byTarget := map[string]map[string]any{}
	for _, l := range lines {
		byTarget[l["target"].(string)] = l
	}
	if l := byTarget["/a"]; l["client"] != "198.51.100.7" || l["peer"] != "127.0.0.3" {
		t.Errorf("behind a trusted proxy: %v", l)
	}
	if l := byTarget["/b"]; l["client"] != "127.0.0.4" || l["peer"] != "127.0.0.4" {
		t.Errorf("from an untrusted peer: %v", l)
	}
}

// Item 12: a header block ended with bare LFs is answered 400 at once.
func TestBareLFHeaderBlock(t *testing.T) {
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{ReadHeaderTimeout: 3 * time.Second}, PoolSpec{}, be.addr())
	for _, raw := range []string{
		"GET / HTTP/1.1\nHost: x\n\n",
		"GET / HTTP/1.1\r\nHost: x\n\n",
		"GET / HTTP/1.1\r\nHost: x\r\n\n",
		"GET / HTTP/1.1\r\nHost: x\nX-A: 1\n\n",
	} {
		start := time.Now()
		resp, closed := exchange(t, px.addr, raw, 2*time.Second)
		if d := time.Since(start); statusOfRaw(resp) != 400 || !closed || d > time.Second {
			t.Errorf("%q: status %d, closed %v after %v; want 400 at once and closed", raw, statusOfRaw(resp), closed, d)
		}
	}
	if n := len(be.requests()); n != 0 {
		t.Fatalf("%d requests reached the backend", n)
	}
}

// Item 13: more header fields than limits.max_header_fields get 431.
func TestMaxHeaderFields(t *testing.T) {
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
	fields := func(n int) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			b.WriteString("X-F: 1\r\n")
		}
		return b.String()
	}
	// Host plus 99 = 100 fields: the default limit.
	resp, _ := exchange(t, px.addr, "GET / HTTP/1.1\r\nHost: x\r\n"+fields(99)+"\r\n", 300*time.Millisecond)
	if got := statusOfRaw(resp); got != 200 {
		t.Fatalf("100 fields: %d, want 200", got)
	}
	resp, closed := exchange(t, px.addr, "GET / HTTP/1.1\r\nHost: x\r\n"+fields(100)+"\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", time.Second)
	if got := statusOfRaw(resp); got != 431 || !closed || strings.Count(resp, "HTTP/1.1 ") != 1 {
		t.Fatalf("101 fields: status %d closed %v, want 431 and closed: %q", got, closed, resp)
	}
	if n := len(be.requests()); n != 1 {
		t.Fatalf("%d requests reached the backend, want 1", n)
	}

	px2 := newTestProxy(t, Options{MaxHeaderFields: 5}, PoolSpec{}, be.addr())
	resp, _ = exchange(t, px2.addr, "GET / HTTP/1.1\r\nHost: x\r\n"+fields(5)+"\r\n", time.Second)
	if got := statusOfRaw(resp); got != 431 {
		t.Fatalf("6 fields over a limit of 5: %d, want 431", got)
	}
}

// Item 14: an overlong request line is 414; overlong headers stay 431.
func TestOverlongRequestLine(t *testing.T) {
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{MaxHeaderBytes: 4 << 10}, PoolSpec{}, be.addr())
	resp, closed := exchange(t, px.addr, "GET /"+strings.Repeat("a", 8<<10)+" HTTP/1.1\r\nHost: x\r\n\r\n", time.Second)
	if got := statusOfRaw(resp); got != 414 || !closed {
		t.Fatalf("overlong request line: %d closed %v, want 414 closed", got, closed)
	}
	resp, closed = exchange(t, px.addr, "GET / HTTP/1.1\r\nHost: x\r\nX-A: "+strings.Repeat("a", 8<<10)+"\r\n\r\n", time.Second)
	if got := statusOfRaw(resp); got != 431 || !closed {
		t.Fatalf("overlong header: %d closed %v, want 431 closed", got, closed)
	}
	// A keep-alive connection: the second request's line is the long one.
	c, err := net.Dial("tcp", px.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	if line, _ := br.ReadString('\n'); line != "HTTP/1.1 200 OK\r\n" {
		t.Fatalf("first request: %q", line)
	}
	for line, _ := br.ReadString('\n'); line != "\r\n"; line, _ = br.ReadString('\n') {
	}
	br.Discard(2)
	io.WriteString(c, "GET /"+strings.Repeat("a", 8<<10)+" HTTP/1.1\r\nHost: x\r\n\r\n")
	if line, _ := br.ReadString('\n'); line != "HTTP/1.1 414 Request URI Too Long\r\n" {
		t.Fatalf("second request with an overlong line: %q", line)
	}
	if n := len(be.requests()); n != 1 {
		t.Fatalf("%d requests reached the backend, want 1", n)
	}
}

// Item 15: absolute-form targets are accepted; the authority replaces Host and the
// backend gets origin-form.
func TestAbsoluteFormTarget(t *testing.T) {
	px, be := routedProxy(t, Options{},
		RouteSpec{Name: "shop", Host: "shop.example", PathPrefix: "/", AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		RouteSpec{Name: "admin", Host: "admin.example", PathPrefix: "/", AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}},
	)
	tests := []struct {
		raw, wantLine, wantHost string
		want                    int
	}{
		{"GET http://shop.example/p?q=1 HTTP/1.1\r\nHost: shop.example\r\n\r\n", "GET /p?q=1 HTTP/1.1", "shop.example", 200},
		{"GET HTTP://Shop.Example:8080/p HTTP/1.1\r\nHost: shop.example\r\n\r\n", "GET /p HTTP/1.1", "Shop.Example:8080", 200},
		{"GET http://shop.example HTTP/1.1\r\nHost: shop.example\r\n\r\n", "GET / HTTP/1.1", "shop.example", 200},
		{"GET http://shop.example?x HTTP/1.1\r\nHost: shop.example\r\n\r\n", "GET /?x HTTP/1.1", "shop.example", 200},
		{"GET https://shop.example/p HTTP/1.1\r\nHost: shop.example\r\n\r\n", "GET /p HTTP/1.1", "shop.example", 200},
		// The authority wins over Host, for routing and for the backend.
		{"GET http://shop.example/p HTTP/1.1\r\nHost: admin.example\r\n\r\n", "GET /p HTTP/1.1", "shop.example", 200},
		{"GET http://admin.example/p HTTP/1.1\r\nHost: shop.example\r\n\r\n", "", "", 403},
		{"GET http://shop.example/p HTTP/1.0\r\n\r\n", "GET /p HTTP/1.1", "shop.example", 200},
		{"GET ftp://shop.example/p HTTP/1.1\r\nHost: shop.example\r\n\r\n", "", "", 400},
		{"GET http://user@shop.example/p HTTP/1.1\r\nHost: shop.example\r\n\r\n", "", "", 400},
		{"GET http:///p HTTP/1.1\r\nHost: shop.example\r\n\r\n", "", "", 400},
		{"GET http://shop.example/a/../p HTTP/1.1\r\nHost: shop.example\r\n\r\n", "", "", 400},
		{"GET http://shop.example/p#f HTTP/1.1\r\nHost: shop.example\r\n\r\n", "", "", 400},
		{"GET //shop.example/p HTTP/1.1\r\nHost: shop.example\r\n\r\n", "GET //shop.example/p HTTP/1.1", "shop.example", 200},
	}
	for _, tt := range tests {
		t.Run(tt.raw[:strings.Index(tt.raw, "\r\n")], func(t *testing.T) {
			before := len(be.requests())
			resp, _ := exchange(t, px.addr, tt.raw, 300*time.Millisecond)
			if got := statusOfRaw(resp); got != tt.want {
				t.Fatalf("status %d, want %d: %.200q", got, tt.want, resp)
			}
			reqs := be.requests()
			if tt.want != 200 {
				if len(reqs) != before {
					t.Fatalf("the backend got %q", reqs[len(reqs)-1])
				}
				return
			}
			head := reqs[len(reqs)-1]
			if !strings.HasPrefix(head, tt.wantLine+"\r\n") {
				t.Fatalf("backend request line: %q, want %q", head, tt.wantLine)
			}
			if n := strings.Count(strings.ToLower(head), "\r\nhost: "); n != 1 || !strings.Contains(head, "\r\nHost: "+tt.wantHost+"\r\n") {
				t.Fatalf("backend Host: %q, want exactly one Host: %s", head, tt.wantHost)
			}
			if !strings.Contains(head, "\r\nX-Forwarded-Host: "+tt.wantHost+"\r\n") {
				t.Fatalf("backend X-Forwarded-Host: %q", head)
			}
		})
	}
}

// Item 16: an upgrade other than WebSocket (h2c) is not passed on: Upgrade,
// HTTP2-Settings and the Connection tokens go, the request is forwarded plainly.
func TestH2CUpgradeStripped(t *testing.T) {
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
	for _, raw := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: foo/2\r\n\r\n",
	} {
		resp, _ := exchange(t, px.addr, raw, 300*time.Millisecond)
		if got := statusOfRaw(resp); got != 200 {
			t.Fatalf("%q: status %d, want 200 (%q)", raw, got, resp)
		}
		reqs := be.requests()
		head := strings.ToLower(reqs[len(reqs)-1])
		for _, bad := range []string{"upgrade", "http2-settings", "\r\nconnection:"} {
			if strings.Contains(head, bad) {
				t.Fatalf("%q reached the backend: %q", bad, head)
			}
		}
	}
}

// Item 18: a declared Content-Length over the limit is 413 at once, never a 100.
func TestDeclaredBodyOverLimitAtOnce(t *testing.T) {
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{MaxRequestBody: 1 << 20, ReadHeaderTimeout: 3 * time.Second, BodyIdleTimeout: 3 * time.Second}, PoolSpec{}, be.addr())
	for _, raw := range []string{
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\nExpect: 100-continue\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\nabc",
	} {
		start := time.Now()
		resp, closed := exchange(t, px.addr, raw, 2*time.Second)
		d := time.Since(start)
		if statusOfRaw(resp) != 413 || !closed || d > time.Second {
			t.Errorf("%q: %.100q closed %v after %v; want 413 at once and closed", raw, resp, closed, d)
		}
		if strings.Contains(resp, "100 Continue") {
			t.Errorf("%q: a 100 Continue was sent", raw)
		}
	}
	// Within the limit, Expect still gets its 100 (TestExpectContinue), and a
	// body at the limit passes.
	c, err := net.Dial("tcp", px.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"+strings.Repeat("a", 1<<20))
	line, _ := bufio.NewReader(c).ReadString('\n')
	if line != "HTTP/1.1 200 OK\r\n" {
		t.Fatalf("body at the limit: %q", line)
	}
	if n := len(be.requests()); n != 1 {
		t.Fatalf("%d requests reached the backend, want 1", n)
	}
}

// A rate limit keyed by a header counts what the backend will read: the field
// sent twice, or under a spelling that CGI-style backends merge with it
// (underscores for dashes), is refused rather than keyed on the first value.
func TestRateLimitHeaderAmbiguityRefused(t *testing.T) {
	px, be := guardedProxy(t, Options{}, RouteSpec{RateLimit: &RateLimitSpec{Header: "X-Api-Key", Rate: 0.01, Burst: 1}})
	if got := statusFrom(t, "127.0.0.1", px.addr, "GET / HTTP/1.1\r\nHost: x\r\nX-Api-Key: k1\r\n\r\n"); got != 200 {
		t.Fatal(got)
	}
	for _, extra := range []string{
		"X-Api-Key: fresh1\r\nX-Api-Key: k1\r\n",
		"X-Api-Key: fresh2\r\nX_Api_Key: k1\r\n",
		"x_api_key: k1\r\nX-API-KEY: fresh3\r\n",
	} {
		before := len(be.requests())
		if got := statusFrom(t, "127.0.0.1", px.addr, "GET / HTTP/1.1\r\nHost: x\r\n"+extra+"\r\n"); got != 400 {
			t.Errorf("%q: %d, want 400", extra, got)
		}
		if len(be.requests()) != before {
			t.Errorf("%q reached the backend", extra)
		}
	}
}

// TestRequestSideAllocatesNothing: the trusted-proxies walk over many lines, an
// IPv6 hop, a path that needs the canonical route check, an absolute-form target
// and the access log's client all keep the request path allocation-free.
func TestRequestSideAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	al, err := NewAccessLog(filepath.Join(t.TempDir(), "a.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	px := newTestProxy(t, Options{AccessLog: al, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}, PoolSpec{}, fastBackend(t))
	snap, err := px.s.Build(Spec{Gen: 2, Pools: []PoolSpec{{Pool: px.s.Current().Pool("p")}}, Routes: []RouteSpec{
		{Name: "admin", PathPrefix: "/admin/", Pool: "p", AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		{Name: "r", PathPrefix: "/", Pool: "p", AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}, RateLimit: &RateLimitSpec{Rate: limits.MaxRate, Burst: limits.MaxBurst}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	px.s.Swap(snap)
	for _, raw := range []string{
		"GET /Product/%34%32;v=1?ref=tv HTTP/1.1\r\nHost: shop.example\r\n" + strings.Repeat("X-Forwarded-For: 198.51.100.1\r\n", 6) +
			"X-Forwarded-For: [2001:db8::7]:443, 192.0.2.9\r\n\r\n",
		"GET http://shop.example/product/42 HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: 2001:db8::7\r\n\r\n",
	} {
		h := newHandlerRun(px.s)
		h.raw = []byte(raw)
		for i := 0; i < 100; i++ {
			h.do(t)
		}
		if n := steadyAllocs(func() { h.do(t) }); n != 0 {
			t.Errorf("%q: %.2f allocations per request, want 0", raw, n)
		}
	}
}

// Items 12 and 14 over TLS: the head is watched in plain text there too.
func TestBareLFAndOverlongLineOverTLS(t *testing.T) {
	cs, err := NewCertStore([]CertFiles{writeCert(t, t.TempDir(), "shop", 1, "shop.example")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{ReadHeaderTimeout: 3 * time.Second, MaxHeaderBytes: 4 << 10}, PoolSpec{}, be.addr())
	addr := tlsProxy(t, px, cs)
	for _, tt := range []struct {
		raw  string
		want int
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 200},
		{"GET / HTTP/1.1\nHost: x\n\n", 400},
		{"GET /" + strings.Repeat("a", 8<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414},
		{"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + strings.Repeat("a", 8<<10) + "\r\n\r\n", 431},
	} {
		c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "shop.example", InsecureSkipVerify: true}) //nolint:gosec // self-signed test certificate
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		io.WriteString(c, tt.raw)
		resp, _ := readUntilQuiet(c, 2*time.Second)
		c.Close()
		if got := statusOfRaw(resp); got != tt.want || time.Since(start) > time.Second && tt.want == 400 {
			t.Errorf("%.40q: %d after %v, want %d at once", tt.raw, got, time.Since(start), tt.want)
		}
	}
}

// An IPv6 client holds a /64 at least: counting it per address would give it 2^64
// buckets. The rate limit counts IPv6 clients per /64.
func TestRateLimitIPv6PerSlash64(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")}
	px, _ := guardedProxy(t, Options{TrustedProxies: trusted}, RouteSpec{RateLimit: &RateLimitSpec{Rate: 0.01, Burst: 1}})
	for i, tt := range []struct {
		client string
		want   int
	}{
		{"2001:db8:1:2::1", 200},
		{"2001:db8:1:2::2", 429},
		{"2001:db8:1:2:ffff:ffff:ffff:ffff", 429},
		{"2001:db8:1:3::1", 200},
		{"192.0.2.1", 200},
		{"192.0.2.2", 200},
	} {
		resp, _ := exchangeFrom(t, "127.0.0.3", px.addr, "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: "+tt.client+"\r\n\r\n", 300*time.Millisecond)
		if got := statusOfRaw(resp); got != tt.want {
			t.Errorf("request %d from %s: %d, want %d", i, tt.client, got, tt.want)
		}
	}
}

// CGI-style backends (PHP, WSGI, Rack) read X_Forwarded_For as X-Forwarded-For:
// the fields floodgate itself writes cannot be smuggled in under that spelling.
func TestForwardedFieldsWithUnderscoresRefused(t *testing.T) {
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
	for _, f := range []string{"X_Forwarded_For: 127.0.0.2", "x_forwarded-for: 127.0.0.2", "X-Forwarded_Proto: https", "X_FORWARDED_HOST: admin.example"} {
		resp, closed := exchange(t, px.addr, "GET / HTTP/1.1\r\nHost: x\r\n"+f+"\r\n\r\n", 300*time.Millisecond)
		if got := statusOfRaw(resp); got != 400 || !closed {
			t.Errorf("%q: %d closed %v, want 400 closed", f, got, closed)
		}
	}
	if n := len(be.requests()); n != 0 {
		t.Fatalf("%d requests reached the backend", n)
	}
	resp, _ := exchange(t, px.addr, "GET / HTTP/1.1\r\nHost: x\r\nX_Other: 1\r\n\r\n", 300*time.Millisecond)
	if got := statusOfRaw(resp); got != 200 {
		t.Fatalf("another field with underscores: %d, want 200", got)
	}
}
