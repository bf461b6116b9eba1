package proxy

import (
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/floodgate/floodgate/balancer"
	"github.com/floodgate/floodgate/degrade"
)

// Tests from a red-team pass over the client request side (issue #13): each is
// an attack that got through, or a client fault that was blamed on a backend.

// A client that fails its own request body (closes mid-upload, sends a forbidden
// or malformed trailer, a broken chunk) gets 4xx, and the backend is not charged
// with a failure: otherwise any anonymous client could eject every backend of a
// pool (passive health) with a few aborted uploads.
func TestClientBodyFailureIsNotTheBackends(t *testing.T) {
	be := newRawBackend(t, nil)
	px, pool := weightedProxyOpts(t, Options{BodyIdleTimeout: 3 * time.Second}, PoolSpec{}, balancer.PoolOptions{}, []string{be.addr()}, []int{1})
	state := pool.Backends()[0].State
	tests := []struct {
		name, raw string
		want      int
	}{
		{"upload cut short", "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789", 400},
		{"chunked upload cut short", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123", 400},
		{"forbidden trailer", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\nContent-Length: 5\r\n\r\n", 400},
		{"malformed trailer", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\nbogus\r\n\r\n", 400},
		{"broken chunk", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcdef\r\n0\r\n\r\n", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", px.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, tt.raw)
			c.(*net.TCPConn).CloseWrite() // the client is done sending, cut short or not
			resp, _ := readUntilQuiet(c, 2*time.Second)
			if got := statusOfRaw(resp); got != tt.want {
				t.Errorf("status %d, want %d: %.120q", got, tt.want, resp)
			}
			if st := state.Stats(); st.Failures != 0 {
				t.Errorf("the backend was charged with %d failure(s) for the client's fault", st.Failures)
			}
		})
	}
	// The backend still counts its own failures.
	resp, _ := exchange(t, px.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 300*time.Millisecond)
	if statusOfRaw(resp) != 200 || !strings.Contains(resp, "ok") {
		t.Fatalf("a plain request after: %q", resp)
	}
}

// Paths that a common backend reads as another route's path, by an encoding the
// router does not decode, are refused: IIS's %uXXXX and other malformed
// percent-encodings, overlong UTF-8 (old IIS, Tomcat CVE-2008-2938: %c0%ae is
// a dot, %c0%af a slash), letters encoded twice for a backend that decodes
// twice, and the trailing dots and spaces that Windows drops from a file or
// directory name. What keeps to its route still passes, byte for byte.
func TestPathEncodingTricksRefused(t *testing.T) {
	px, be := routedProxy(t, Options{},
		RouteSpec{Name: "admin", PathPrefix: "/admin/", AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}},
		RouteSpec{Name: "www", PathPrefix: "/"},
	)
	tests := []struct {
		target string
		want   int
	}{
		{"/admin%u002fx", 400},
		{"/%u0061dmin/x", 400},
		{"/x/%u002e%u002e/admin/x", 400},
		{"/x%zz", 400},
		{"/x%", 400},
		{"/x%4", 400},
		{"/x/..%c0%afadmin/x", 400},
		{"/x/%c0%ae%c0%ae/admin/x", 400},
		{"/x/%C1%9C", 400},
		{"/x/%e0%80%ae%e0%80%ae/admin/x", 400},
		{"/x/%f0%80%80%af", 400},
		{"/%2561dmin/x", 400},
		{"/adm%2569n/x", 400},
		{"/admin./x", 400},
		{"/admin%20/x", 400},
		{"/admin%2e/x", 400},
		{"/admin.%20./x", 400},
		{"/(S(abc))/admin/x", 400},         // ASP.NET cookieless session segment
		{"/(A(a)F(f))/admin/x", 400},       // ... several of them
		{"/x/..%2f(S(a))/admin/x", 400},    // (a dot segment anyway)
		{"/%28S%28abc%29%29/admin/x", 400}, // encoded
		{"/(S(abc))/x", 200},               // the same route either way
		{"/a(b)/x", 200},
		// Still valid.
		{"/files/r%C3%A9sum%C3%A9.pdf", 200},
		{"/x/%e0%a4%85", 200}, // a 3-byte character, not overlong
		{"/%C0-propos", 200},  // Latin-1, not UTF-8: no overlong sequence
		{"/x/%f0%9f%98%80", 200},
		{"/a%2541b", 200}, // a double-encoded letter that changes no route
		{"/x./y", 200},
		{"/x%20/y", 200},
		{"/v1/items:batchGet", 200},
		{"/admin", 200},
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
				if !closed {
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

// Requests refused before any backend sees them: a Connection field naming Host
// (the backend would get a request without Host, and answer from its default
// virtual host, past the host route that floodgate matched); CONNECT, whose
// target is never a path; a WebSocket upgrade that offers another protocol
// beside it (h2c above all: a backend that switched to it would take requests
// straight from the client, past routing); a Host with an empty label, which
// backends trim or split differently.
func TestHostlessAndTunnelTricksRefused(t *testing.T) {
	px, be := routedProxy(t, Options{},
		RouteSpec{Name: "admin", Host: "admin.example", PathPrefix: "/", AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}},
		RouteSpec{Name: "www", PathPrefix: "/"},
	)
	for _, raw := range []string{
		"GET / HTTP/1.1\r\nHost: www.example\r\nConnection: Host\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: www.example\r\nConnection: keep-alive, host\r\n\r\n",
		"GET / HTTP/1.1\r\nConnection: close\r\nHost: www.example\r\nConnection: HOST\r\n\r\n",
		"CONNECT / HTTP/1.1\r\nHost: www.example\r\n\r\n",
		"CONNECT /x HTTP/1.1\r\nHost: www.example\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: admin.example..\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: .admin.example\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: admin..example\r\n\r\n",
		"GET http://admin.example../ HTTP/1.1\r\nHost: www.example\r\n\r\n",
	} {
		resp, closed := exchange(t, px.addr, raw, 300*time.Millisecond)
		if got := statusOfRaw(resp); got != 400 || !closed {
			t.Errorf("%q: %d closed %v, want 400 closed", raw, got, closed)
		}
	}
	if n := len(be.requests()); n != 0 {
		t.Fatalf("%d requests reached the backend: %q", n, be.requests())
	}
	// A WebSocket offer beside another protocol is not a WebSocket upgrade:
	// it goes as a plain request, without its Upgrade.
	resp, _ := exchange(t, px.addr, "GET / HTTP/1.1\r\nHost: www.example\r\nConnection: Upgrade\r\nUpgrade: websocket, h2c\r\n\r\n", 300*time.Millisecond)
	if got := statusOfRaw(resp); got != 200 {
		t.Fatalf("websocket, h2c: %d", got)
	}
	if reqs := be.requests(); len(reqs) != 1 || strings.Contains(strings.ToLower(reqs[0]), "upgrade") || strings.Contains(reqs[0], "h2c") {
		t.Fatalf("the backend got %q", reqs)
	}
	// A trailing dot is still one host (TestHostTrailingDotRoutes), and a
	// WebSocket upgrade alone is still one.
	if got := statusOfRaw(mustExchange(t, px.addr, "GET / HTTP/1.1\r\nHost: www.example.\r\n\r\n")); got != 200 {
		t.Fatalf("Host with one trailing dot: %d", got)
	}
}

func mustExchange(t *testing.T, addr, raw string) string {
	t.Helper()
	resp, _ := exchange(t, addr, raw, 300*time.Millisecond)
	return resp
}

// Forwarded (RFC 7239) says what X-Forwarded-For, -Proto and -Host say, and
// frameworks that read it prefer it to them (Spring's ForwardedHeaderFilter
// takes its first element's host and proto for every link and redirect it
// builds). A client's Forwarded must not reach the backend beside floodgate's
// own X-Forwarded-* fields, or the client picks the host and scheme the backend
// believes it was reached by.
func TestClientForwardedNotPassedOn(t *testing.T) {
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
	for _, f := range []string{"Forwarded: for=192.0.2.1;proto=https;host=evil.example", "forwarded: host=evil.example", "FORWARDED: for=\"[2001:db8::1]\""} {
		resp, _ := exchange(t, px.addr, "GET / HTTP/1.1\r\nHost: shop.example\r\n"+f+"\r\nX-Other: 1\r\n\r\n", 300*time.Millisecond)
		if got := statusOfRaw(resp); got != 200 {
			t.Fatalf("%q: %d", f, got)
		}
		reqs := be.requests()
		head := reqs[len(reqs)-1]
		if strings.Contains(strings.ToLower(head), "\r\nforwarded:") || !strings.Contains(head, "\r\nX-Other: 1\r\n") || !strings.Contains(head, "\r\nX-Forwarded-Host: shop.example\r\n") {
			t.Fatalf("%q: the backend got %q", f, head)
		}
	}
}

// dripExchange writes raw one byte per write and returns the answer and how
// long it took from the last byte.
func dripExchange(t *testing.T, addr, raw string, quiet time.Duration) (string, bool, time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < len(raw); i++ {
		if _, err := c.Write([]byte{raw[i]}); err != nil {
			break // answered and closed before the end: the refusal came at once
		}
		// Pacing, not synchronisation: a slow link, so that the proxy's
		// reads see the head in pieces.
		time.Sleep(2 * time.Millisecond)
	}
	start := time.Now()
	resp, closed := readUntilQuiet(c, quiet)
	return resp, closed, time.Since(start)
}

// A head sent one byte per write (a slow link, or a client that means to
// split the request line where the watch cannot see it) with bare LF line
// endings is answered 400 as soon as it is complete, like one sent whole;
// legitimate heads and bodies with LFs sent the same way are not refused.
func TestBareLFHeadDrippedAnsweredAtOnce(t *testing.T) {
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{ReadHeaderTimeout: 3 * time.Second}, PoolSpec{}, be.addr())
	for _, raw := range []string{
		"GET / HTTP/1.1\nHost: x\n\n",
		"GET / HTTP/1.1\r\nHost: x\n\n",
		"GET /a/long/path?q=1 HTTP/1.0\nHost: x\nX-A: 1\n\n",
	} {
		resp, closed, d := dripExchange(t, px.addr, raw, 2500*time.Millisecond)
		if statusOfRaw(resp) != 400 || !closed || d > time.Second {
			t.Errorf("%q dripped: status %d, closed %v after %v; want 400 at once and closed", raw, statusOfRaw(resp), closed, d)
		}
	}
	for _, raw := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET / HTTP/1.1\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\na\nb\nc\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		resp, _, _ := dripExchange(t, px.addr, raw, 500*time.Millisecond)
		if n := strings.Count(resp, "HTTP/1.1 200 OK\r\n"); n != strings.Count(raw, " HTTP/1.1\r")+strings.Count(raw, " HTTP/1.1\n") {
			t.Errorf("%q dripped: %d answers: %q", raw, n, resp)
		}
	}
	if n := len(be.requests()); n != 4 {
		t.Fatalf("%d requests reached the backend, want 4", n)
	}
}

// X-Original-URL and X-Rewrite-URL replace the request line's path in backends
// that read them from any client (Symfony before 3.4.14 and Zend, CVE-2018-14773;
// IIS URL Rewrite sets them itself): "GET / " with "X-Original-URL: /admin/x"
// is routed as "/" and served as "/admin/x". floodgate routes on the request
// line alone, so these are refused, in any spelling a CGI backend reads alike.
func TestPathOverrideFieldsRefused(t *testing.T) {
	px, be := routedProxy(t, Options{},
		RouteSpec{Name: "admin", PathPrefix: "/admin/", AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}},
		RouteSpec{Name: "www", PathPrefix: "/"},
	)
	for _, f := range []string{"X-Original-URL: /admin/x", "x-rewrite-url: /admin/x", "X_Original_Url: /admin/x", "X-REWRITE_URL: /admin/x"} {
		resp, closed := exchange(t, px.addr, "GET / HTTP/1.1\r\nHost: x\r\n"+f+"\r\n\r\n", 300*time.Millisecond)
		if got := statusOfRaw(resp); got != 400 || !closed {
			t.Errorf("%q: %d closed %v, want 400 closed", f, got, closed)
		}
	}
	if n := len(be.requests()); n != 0 {
		t.Fatalf("%d requests reached the backend", n)
	}
	if got := statusOfRaw(mustExchange(t, px.addr, "GET / HTTP/1.1\r\nHost: x\r\nX-Original-Host: y\r\n\r\n")); got != 200 {
		t.Fatalf("another X-Original field: %d", got)
	}
}

// The degraded-mode recorder hears only of the backend's failures: requests
// whose client broke its own body are not counted as failed (nor as forwarded),
// or a client could push a pool into degraded mode by error rate alone.
func TestClientBodyFailureNotRecordedAsDegradeFailure(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	mon := degrade.NewMonitor(degrade.MonitorOptions{Now: func() time.Time { return now }})
	t.Cleanup(mon.Close)
	if err := mon.Configure([]degrade.PoolConfig{{Name: "p"}}); err != nil {
		t.Fatal(err)
	}
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
	snap, err := px.s.Build(Spec{Gen: 2, Pools: []PoolSpec{{Pool: px.s.Current().Pool("p"), Gate: mon.Gate("p"), Recorder: mon.Recorder("p")}},
		Routes: []RouteSpec{{Name: "r", PathPrefix: "/", Pool: "p"}}})
	if err != nil {
		t.Fatal(err)
	}
	px.s.Swap(snap)
	for i := 0; i < 5; i++ {
		exchange(t, px.addr, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\nContent-Length: 9\r\n\r\n", 300*time.Millisecond)
		exchange(t, px.addr, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n", 300*time.Millisecond)
	}
	if got := statusOfRaw(mustExchange(t, px.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")); got != 200 {
		t.Fatalf("a good request: %d", got)
	}
	now = now.Add(time.Hour)
	mon.Step(now)
	st, _ := mon.Status("p")
	if st.Signals.Failed != 0 || st.Signals.Forwarded != 1 {
		t.Fatalf("the recorder counted %d forwarded, %d failed; want 1 and 0", st.Signals.Forwarded, st.Signals.Failed)
	}
}

// A rate limit keyed by a header counts the value the backend reads: a client
// that names the header in Connection (so that it is removed on the way) would
// get a fresh bucket per made-up value while the backend sees no key at all,
// and answers it as the keyless client that the shared bucket was to limit.
func TestRateLimitKeyNamedInConnectionRefused(t *testing.T) {
	px, be := guardedProxy(t, Options{}, RouteSpec{RateLimit: &RateLimitSpec{Header: "X-Api-Key", Rate: 0.01, Burst: 1}})
	if got := statusFrom(t, "127.0.0.1", px.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); got != 200 {
		t.Fatal(got)
	}
	for i, extra := range []string{
		"X-Api-Key: fresh1\r\nConnection: X-Api-Key\r\n",
		"Connection: keep-alive, x-api-key\r\nX-Api-Key: fresh2\r\n",
		"X-Api-Key: fresh3\r\nConnection: X_Api_Key\r\n",
	} {
		before := len(be.requests())
		if got := statusFrom(t, "127.0.0.1", px.addr, "GET / HTTP/1.1\r\nHost: x\r\n"+extra+"\r\n"); got != 400 {
			t.Errorf("%d %q: %d, want 400", i, extra, got)
		}
		if len(be.requests()) != before {
			t.Errorf("%q reached the backend", extra)
		}
	}
	if got := statusFrom(t, "127.0.0.1", px.addr, "GET / HTTP/1.1\r\nHost: x\r\nX-Api-Key: k9\r\nConnection: keep-alive\r\n\r\n"); got != 200 {
		t.Fatalf("a key with an unrelated Connection: %d", got)
	}
}
