package proxy

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestForwardIsByteFaithful(t *testing.T) {
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
	raw := "GET /a/b/%2e%2Ex/c//d?x=1&y=%20&&z=%zz HTTP/1.1\r\n" +
		"Host: Example.COM:8080\r\n" +
		"x-lower: 1\r\n" +
		"x-forwarded-proto: https\r\n" +
		"CONNECTION: X-Case\r\n" +
		"x-case: 1\r\n" +
		"X-Dup: first\r\n" +
		"X-Other: o\r\n" +
		"X-Dup: second\r\n" +
		"X-Forwarded-For: 203.0.113.7\r\n" +
		"X-Forwarded-Proto: https\r\n" +
		"Connection: keep-alive, X-Hop\r\n" +
		"X-Hop: secret\r\n" +
		"Keep-Alive: timeout=5\r\n" +
		"TE: trailers\r\n" +
		"Trailer: X-T\r\n" +
		"Upgrade: h2c\r\n" +
		"Proxy-Connection: keep-alive\r\n" +
		"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n" +
		"\r\n"
	resp, _ := exchange(t, px.addr, raw, 500*time.Millisecond)
	if statusOfRaw(resp) != 200 {
		t.Fatalf("status %d: %q", statusOfRaw(resp), resp)
	}
	reqs := be.requests()
	if len(reqs) != 1 {
		t.Fatalf("backend got %d requests", len(reqs))
	}
	got := reqs[0]
	if line := got[:strings.Index(got, "\r\n")]; line != "GET /a/b/%2e%2Ex/c//d?x=1&y=%20&&z=%zz HTTP/1.1" {
		t.Errorf("request line = %q", line)
	}
	// fasthttp lower-cases the Host value it writes; host names are
	// case-insensitive (RFC 3986 §3.2.2), so nothing is lost.
	if !strings.Contains(strings.ToLower(got), "\r\nhost: example.com:8080\r\n") {
		t.Errorf("Host not forwarded:\n%s", got)
	}
	for _, want := range []string{"\r\nx-lower: 1\r\n", "\r\nHost: Example.COM:8080\r\n", "\r\nX-Forwarded-Proto: http\r\n", "\r\nX-Forwarded-Host: Example.COM:8080\r\n", "\r\nX-Forwarded-For: 203.0.113.7, 127.0.0.1\r\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("backend request lacks %q:\n%s", want, got)
		}
	}
	if n := strings.Count(strings.ToLower(got), "x-forwarded-proto:"); n != 1 {
		t.Errorf("%d X-Forwarded-Proto fields, want exactly ours:\n%s", n, got)
	}
	// Same-name fields keep their order, and the others theirs.
	if i, j, k := strings.Index(got, "X-Dup: first"), strings.Index(got, "X-Other: o"), strings.Index(got, "X-Dup: second"); !(i >= 0 && i < j && j < k) {
		t.Errorf("header order changed:\n%s", got)
	}
	lower := strings.ToLower(got)
	for _, hop := range []string{"\r\nconnection:", "\r\nx-hop:", "\r\nkeep-alive:", "\r\nte:", "\r\ntrailer:", "\r\nupgrade:", "\r\nproxy-connection:", "\r\nproxy-authorization:", "\r\nx-case:"} {
		if strings.Contains(lower, hop) {
			t.Errorf("hop-by-hop header %q was forwarded:\n%s", hop, got)
		}
	}
}

func TestResponseHopByHopStripped(t *testing.T) {
	be := newRawBackend(t, func(string, []byte) string {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\n" +
			"Proxy-Connection: x\r\nUpgrade: foo\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nServer: backend\r\n\r\nok"
	})
	px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
	resp, closed := exchange(t, px.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 500*time.Millisecond)
	if statusOfRaw(resp) != 200 || closed {
		t.Fatalf("status %d closed %v: %q", statusOfRaw(resp), closed, resp)
	}
	lower := strings.ToLower(resp)
	for _, hop := range []string{"x-secret", "keep-alive", "proxy-connection", "upgrade:", "connection:"} {
		if strings.Contains(lower, hop) {
			t.Errorf("response kept hop-by-hop %q:\n%s", hop, resp)
		}
	}
	if n := strings.Count(resp, "\r\nDate: "); n != 1 {
		t.Errorf("%d Date fields, want 1 (RFC 9110 §6.6.1):\n%s", n, resp)
	}
	for _, want := range []string{"Set-Cookie: a=1\r\n", "Set-Cookie: b=2\r\n", "Server: backend\r\n"} {
		if !strings.Contains(resp, want) {
			t.Errorf("response lacks %q:\n%s", want, resp)
		}
	}
}

func TestMalformedBackendResponses(t *testing.T) {
	tests := []struct{ name, resp string }{
		{"two CL", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"},
		{"bad status line", "HTTP/1.1 OK\r\n\r\n"},
		{"garbage", "hello\r\n\r\n"},
		{"NUL in header", "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := newRawBackend(t, func(string, []byte) string { return tt.resp })
			px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
			resp, _ := exchange(t, px.addr, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", time.Second)
			if got := statusOfRaw(resp); got != 502 {
				t.Fatalf("status = %d, want 502:\n%q", got, resp)
			}
			if !strings.Contains(resp, "route r") {
				t.Errorf("error body does not name the route: %q", resp)
			}
		})
	}
}

func TestDeadBackendIs502AndSlowIs504(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	px := newTestProxy(t, Options{}, PoolSpec{ConnectTimeout: time.Second}, dead)
	resp, _ := exchange(t, px.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", time.Second)
	if statusOfRaw(resp) != 502 || !strings.Contains(resp, "route r: backend unreachable") {
		t.Fatalf("dead backend: %q", resp)
	}

	release := make(chan struct{})
	slow := newRawBackend(t, func(string, []byte) string { <-release; return "" })
	t.Cleanup(func() { close(release) })
	px2 := newTestProxy(t, Options{}, PoolSpec{ResponseTimeout: 200 * time.Millisecond}, slow.addr())
	resp, _ = exchange(t, px2.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 3*time.Second)
	if statusOfRaw(resp) != 504 || !strings.Contains(resp, "route r: backend timed out") {
		t.Fatalf("slow backend: %q", resp)
	}
}

func TestRetryIdempotentOnAnotherBackend(t *testing.T) {
	// "closer" accepts and closes without a byte of response.
	closer := newRawBackend(t, func(string, []byte) string { return "" })
	good := newRawBackend(t, nil)
	px := newTestProxy(t, Options{}, PoolSpec{Retries: 1}, closer.addr(), good.addr())
	for i := 0; i < 4; i++ {
		resp, _ := exchange(t, px.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 500*time.Millisecond)
		if statusOfRaw(resp) != 200 {
			t.Fatalf("GET %d: %q", i, resp)
		}
	}
	if len(closer.requests()) == 0 {
		t.Fatal("the closing backend was never tried; the test proves nothing")
	}
	// POST is never retried: with round-robin, one of two POSTs hits the closer.
	var failed int
	for i := 0; i < 2; i++ {
		resp, _ := exchange(t, px.addr, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na", 500*time.Millisecond)
		if statusOfRaw(resp) == 502 {
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("%d of 2 POSTs failed, want exactly 1 (no retry of POST)", failed)
	}
}

func TestKeepAliveBothSides(t *testing.T) {
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
	c, err := net.Dial("tcp", px.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i := 0; i < 20; i++ {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		var resp fasthttp.Response
		if err := resp.Read(br); err != nil || resp.StatusCode() != 200 {
			t.Fatalf("request %d: %v %d", i, err, resp.StatusCode())
		}
	}
	if n := be.connCount(); n != 1 {
		t.Fatalf("backend saw %d connections for 20 sequential requests, want 1 (pooled)", n)
	}
}

func TestHeadAndBodylessStatuses(t *testing.T) {
	be := newRawBackend(t, func(head string, _ []byte) string {
		switch {
		case strings.HasPrefix(head, "HEAD"):
			return "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
		case strings.Contains(head, "/204"):
			return "HTTP/1.1 204 No Content\r\n\r\n"
		case strings.Contains(head, "/304"):
			return "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"
		case strings.Contains(head, "/103"):
			return "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
		}
		return okReply(head, nil)
	})
	px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
	c, err := net.Dial("tcp", px.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	check := func(req, wantStatus string, wantCL string) {
		t.Helper()
		io.WriteString(c, req)
		var resp fasthttp.Response
		resp.SkipBody = strings.HasPrefix(req, "HEAD")
		if err := resp.Read(br); err != nil {
			t.Fatalf("%q: %v", req, err)
		}
		if got := resp.Header.StatusCode(); string(rune('0'+got/100))+string(rune('0'+got/10%10))+string(rune('0'+got%10)) != wantStatus {
			t.Fatalf("%q: status %d, want %s", req, got, wantStatus)
		}
		if wantCL != "" && string(resp.Header.Peek("Content-Length")) != wantCL {
			t.Errorf("%q: Content-Length %q, want %s", req, resp.Header.Peek("Content-Length"), wantCL)
		}
		if len(resp.Body()) != 0 && wantStatus != "200" {
			t.Errorf("%q: body %q on a bodyless answer", req, resp.Body())
		}
	}
	check("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", "200", "1234")
	check("GET /204 HTTP/1.1\r\nHost: x\r\n\r\n", "204", "")
	check("GET /304 HTTP/1.1\r\nHost: x\r\n\r\n", "304", "")
	check("GET /103 HTTP/1.1\r\nHost: x\r\n\r\n", "200", "2")
	// The connection is still in sync: a last request works.
	check("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "200", "2")
}

func TestExpectContinue(t *testing.T) {
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
	c, err := net.Dial("tcp", px.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("want 100 Continue first, got %q %v", line, err)
	}
	br.ReadString('\n')
	io.WriteString(c, "hello")
	var resp fasthttp.Response
	if err := resp.Read(br); err != nil || resp.StatusCode() != 200 {
		t.Fatalf("final response: %v %d", err, resp.StatusCode())
	}
	if b := be.requests(); len(b) != 1 || string(be.body(0)) != "hello" {
		t.Fatalf("backend body %q", b)
	}
}

func TestWebSocketTunnel(t *testing.T) {
	// A raw backend that accepts the upgrade and then echoes upper-cased bytes.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	gotHead := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		head, _, err := readRawRequest(br)
		if err != nil {
			return
		}
		gotHead <- head
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: abc\r\n\r\n")
		buf := make([]byte, 1024)
		for {
			n, err := br.Read(buf)
			if err != nil {
				return
			}
			c.Write([]byte(strings.ToUpper(string(buf[:n]))))
		}
	}()
	px := newTestProxy(t, Options{}, PoolSpec{}, ln.Addr().String())
	c, err := net.Dial("tcp", px.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	var resp fasthttp.Response
	resp.SkipBody = true
	if err := resp.Header.Read(br); err != nil || resp.StatusCode() != 101 {
		t.Fatalf("handshake: %v %d", err, resp.StatusCode())
	}
	if string(resp.Header.Peek("Upgrade")) != "websocket" || string(resp.Header.Peek("Sec-WebSocket-Accept")) != "abc" {
		t.Fatalf("101 headers not relayed: %s", resp.Header.Header())
	}
	head := <-gotHead
	if !strings.Contains(head, "Upgrade: websocket") || !strings.Contains(head, "Connection: Upgrade") || !strings.Contains(strings.ToLower(head), "sec-websocket-key: k") {
		t.Fatalf("backend handshake lacks upgrade headers:\n%s", head)
	}
	for _, msg := range []string{"hello", "floodgate"} {
		io.WriteString(c, msg)
		buf := make([]byte, len(msg))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(br, buf); err != nil || string(buf) != strings.ToUpper(msg) {
			t.Fatalf("echo of %q: %q %v", msg, buf, err)
		}
	}
}

func TestSlowlorisHeadersClosed(t *testing.T) {
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{ReadHeaderTimeout: 200 * time.Millisecond}, PoolSpec{}, be.addr())
	c, err := net.Dial("tcp", px.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
	start := time.Now()
	_, closed := readUntilQuiet(c, 5*time.Second)
	if !closed {
		t.Fatal("a client that never finished its headers was not disconnected")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("disconnected after %v, want about the 200ms header timeout", d)
	}
	if len(be.requests()) != 0 {
		t.Fatal("incomplete request reached the backend")
	}
}

func TestIdleKeepAliveClosed(t *testing.T) {
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{IdleTimeout: 200 * time.Millisecond}, PoolSpec{}, be.addr())
	c, err := net.Dial("tcp", px.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, closed := readUntilQuiet(c, 5*time.Second)
	if statusOfRaw(resp) != 200 || !closed {
		t.Fatalf("want a 200 then the idle connection closed, got closed=%v %q", closed, resp)
	}
}

func TestNoRouteAnd405(t *testing.T) {
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
	snap, err := px.s.Build(Spec{Gen: 2, Pools: []PoolSpec{{Pool: px.s.Current().Pool("p")}}, Routes: []RouteSpec{
		{Name: "api", PathPrefix: "/api/", Pool: "p", Methods: []string{"GET"}},
		{Name: "shop", Host: "shop.example", PathPrefix: "/", Pool: "p"},
		{Name: "wild", Host: "*.example", PathPrefix: "/w", Pool: "p"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	px.s.Swap(snap)
	tests := []struct {
		raw  string
		want int
	}{
		{"GET /api/x HTTP/1.1\r\nHost: a\r\n\r\n", 200},
		{"POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", 405},
		{"GET /other HTTP/1.1\r\nHost: a\r\n\r\n", 404},
		{"GET /other HTTP/1.1\r\nHost: SHOP.example:80\r\n\r\n", 200},
		{"GET /w HTTP/1.1\r\nHost: a.example\r\n\r\n", 200},
		{"GET /w HTTP/1.1\r\nHost: example\r\n\r\n", 404},
		// Matching uses the path as forwarded; one that a backend could read
		// as another route's (decoded, dot segments) is refused.
		{"GET /%61pi/x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"GET /x/../api/x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"GET /API/x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
	}
	for _, tt := range tests {
		resp, _ := exchange(t, px.addr, tt.raw, 300*time.Millisecond)
		if got := statusOfRaw(resp); got != tt.want {
			t.Errorf("%q: status %d, want %d", tt.raw, got, tt.want)
		}
	}
}

// TestAmbiguousBackendResponsesReframed covers response forms that fasthttp's client
// reads leniently (it prefers chunked over Content-Length, and trims space before a
// colon). What matters for the client is that the response it gets is framed one
// way only and the connection stays in sync.
func TestAmbiguousBackendResponsesReframed(t *testing.T) {
	tests := []struct{ name, resp string }{
		{"CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"},
		{"space before colon", "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := newRawBackend(t, func(string, []byte) string { return tt.resp })
			px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
			c, err := net.Dial("tcp", px.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			for i := 0; i < 2; i++ {
				io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
				var resp fasthttp.Response
				if err := resp.Read(br); err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				raw := resp.Header.String()
				if strings.Contains(raw, "Content-Length") && strings.Contains(raw, "Transfer-Encoding") {
					t.Fatalf("response framed twice:\n%s", raw)
				}
				if resp.StatusCode() == 200 && string(resp.Body()) != "ok" {
					t.Fatalf("body %q", resp.Body())
				}
			}
		})
	}
}
