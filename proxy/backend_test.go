package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/proxy/cache"
)

// scriptBackend is a loopback backend whose every connection is handed to serve,
// which reads requests with readRawRequest and writes whatever it likes: stray
// bytes, early closes, unprompted answers. n counts connections from 0.
type scriptBackend struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func newScriptBackend(t testing.TB, serve func(n int, c net.Conn, br *bufio.Reader)) *scriptBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &scriptBackend{ln: ln}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer c.Close()
				serve(n, c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

func (b *scriptBackend) addr() string { return b.ln.Addr().String() }

// requestPathOf returns the target of a request head.
func requestPathOf(head string) string {
	f := strings.Fields(head)
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

// echoPath answers 200 with the request's path as the body.
func echoPath(head string) string {
	p := requestPathOf(head)
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(p), p)
}

// client is one keep-alive client connection to the proxy.
type client struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialClient(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

// do sends raw and reads one response (its body too unless head).
func (cl *client) do(raw string, head bool) *fasthttp.Response {
	cl.t.Helper()
	if _, err := io.WriteString(cl.c, raw); err != nil {
		cl.t.Fatal(err)
	}
	return cl.read(head)
}

func (cl *client) read(head bool) *fasthttp.Response {
	cl.t.Helper()
	_ = cl.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp := new(fasthttp.Response)
	resp.SkipBody = head
	if err := resp.Read(cl.br); err != nil {
		cl.t.Fatalf("reading response: %v", err)
	}
	return resp
}

// TestPipelinedSecondSendIsAnswered: a request that arrives while the previous one
// is being answered is served, and so are many pipelined at once (#13 item 2).
func TestPipelinedSecondSendIsAnswered(t *testing.T) {
	gotA := make(chan struct{})
	release := make(chan struct{})
	be := newRawBackend(t, func(head string, _ []byte) string {
		if requestPathOf(head) == "/a" {
			close(gotA)
			<-release
		}
		return echoPath(head)
	})
	px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
	cl := dialClient(t, px.addr)
	io.WriteString(cl.c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	<-gotA
	// /b is in the proxy's socket before /a's answer is written.
	io.WriteString(cl.c, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
	close(release)
	for _, want := range []string{"/a", "/b"} {
		if r := cl.read(false); string(r.Body()) != want {
			t.Fatalf("got %q, want %q", r.Body(), want)
		}
	}
}

func TestManyPipelinedAreAllAnswered(t *testing.T) {
	be := newRawBackend(t, func(head string, _ []byte) string { return echoPath(head) })
	px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
	cl := dialClient(t, px.addr)
	const n = 500
	var sb strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&sb, "GET /%d HTTP/1.1\r\nHost: x\r\nUser-Agent: pipelining-test/1.0 (more than the read buffer in all)\r\n\r\n", i)
	}
	io.WriteString(cl.c, sb.String()) // all of it before reading, as the red team did
	for i := 0; i < n; i++ {
		if r := cl.read(false); string(r.Body()) != fmt.Sprintf("/%d", i) {
			t.Fatalf("answer %d: %q", i, r.Body())
		}
	}
}

// TestLeftoverBytesNeverReachTheNextRequest: whatever a backend sends beyond a
// response, in the same packet or later on the idle connection, is not taken as the
// answer to the next request on that connection (#13 item 3).
func TestLeftoverBytesNeverReachTheNextRequest(t *testing.T) {
	const stray = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSTRAY!"
	tests := []struct {
		name  string
		first string // request that provokes the leftover
		reply string // its answer, leftover included
		later string // written after the answer has been delivered, on the idle connection
		close bool   // and the backend closes after later
	}{
		{"body after HEAD", "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n" + "STRAY!", "", false},
		{"response after HEAD", "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n" + stray, "", false},
		{"body on 204", "GET /204 HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 204 No Content\r\n\r\n" + stray, "", false},
		{"body on 304", "GET /304 HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 304 Not Modified\r\n\r\n" + stray, "", false},
		{"bytes after Content-Length body", "GET /cl HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n/cl" + stray, "", false},
		{"bytes after chunked body", "GET /ch HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n/ch\r\n0\r\n\r\n" + stray, "", false},
		{"unprompted answer while idle", "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", echoPath("GET /a"), stray, false},
		{"408 then close while idle", "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", echoPath("GET /a"), "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", true},
		{"408 kept open while idle", "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", echoPath("GET /a"), "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n", false},
		{"close while idle", "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", echoPath("GET /a"), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			delivered := make(chan struct{})
			written := make(chan struct{})
			be := newScriptBackend(t, func(n int, c net.Conn, br *bufio.Reader) {
				for i := 0; ; i++ {
					head, _, err := readRawRequest(br)
					if err != nil {
						return
					}
					if n == 0 && i == 0 {
						io.WriteString(c, tt.reply)
						if tt.later == "" && !tt.close {
							continue
						}
						<-delivered
						io.WriteString(c, tt.later) // in the proxy's socket when this returns (loopback)
						close(written)
						if tt.close {
							return
						}
						continue
					}
					io.WriteString(c, echoPath(head))
				}
			})
			px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
			cl := dialClient(t, px.addr)
			r := cl.do(tt.first, strings.HasPrefix(tt.first, "HEAD"))
			if r.StatusCode() >= 500 {
				t.Fatalf("first answer: %d", r.StatusCode())
			}
			if tt.later != "" || tt.close {
				close(delivered)
				if tt.later != "" {
					<-written
				}
			}
			for _, p := range []string{"/n1", "/n2", "/n3"} {
				r := cl.do("GET "+p+" HTTP/1.1\r\nHost: x\r\n\r\n", false)
				if r.StatusCode() != 200 || string(r.Body()) != p {
					t.Fatalf("GET %s got %d %q: a leftover was taken as its answer", p, r.StatusCode(), r.Body())
				}
			}
		})
	}
}

// TestTruncatedChunkedBodyIsNotPassedOffAsWhole: a backend that closes in the
// middle of a chunked body makes the proxy close the client connection without a
// last chunk, counts it, and the cache does not store it (#13 item 8).
func TestTruncatedChunkedBodyIsNotPassedOffAsWhole(t *testing.T) {
	reply := func(head string, _ []byte) string {
		// A chunk, then the backend closes: no last chunk.
		return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=60\r\n\r\n5\r\nhello\r\n"
	}
	check := func(t *testing.T, px *testProxy) {
		t.Helper()
		resp, closed := exchange(t, px.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 3*time.Second)
		if strings.Contains(resp, "\r\n0\r\n\r\n") {
			t.Fatalf("truncated body got a last chunk:\n%q", resp)
		}
		if !closed {
			t.Fatalf("client connection left open after a truncated body:\n%q", resp)
		}
	}
	t.Run("plain", func(t *testing.T) {
		be2 := newScriptBackend(t, func(n int, c net.Conn, br *bufio.Reader) {
			head, _, err := readRawRequest(br)
			if err == nil {
				io.WriteString(c, reply(head, nil))
			}
		})
		px := newTestProxy(t, Options{}, PoolSpec{}, be2.addr())
		check(t, px)
		check(t, px)
		if n := px.s.Current().routes[0].stats.Truncated(); n != 2 {
			t.Fatalf("truncated count = %d, want 2", n)
		}
	})
	t.Run("content-length", func(t *testing.T) {
		be := newScriptBackend(t, func(n int, c net.Conn, br *bufio.Reader) {
			if _, _, err := readRawRequest(br); err == nil {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"+strings.Repeat("x", 70000))
			}
		})
		px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
		resp, closed := exchange(t, px.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 3*time.Second)
		if !closed || len(resp) >= 100000 {
			t.Fatalf("closed=%v after %d bytes", closed, len(resp))
		}
		if n := px.s.Current().routes[0].stats.Truncated(); n != 1 {
			t.Fatalf("truncated count = %d, want 1", n)
		}
	})
	t.Run("cached", func(t *testing.T) {
		var mu sync.Mutex
		hits := 0
		be := newScriptBackend(t, func(n int, c net.Conn, br *bufio.Reader) {
			head, _, err := readRawRequest(br)
			if err == nil {
				mu.Lock()
				hits++
				mu.Unlock()
				io.WriteString(c, reply(head, nil))
			}
		})
		px := cachedProxyAt(t, be.addr())
		check(t, px)
		check(t, px)
		mu.Lock()
		defer mu.Unlock()
		if hits != 2 {
			t.Fatalf("backend asked %d times, want 2: the truncated body was stored", hits)
		}
	})
}

// cachedProxyAt is a proxy whose one route caches, in front of addr.
func cachedProxyAt(t *testing.T, addr string) *testProxy {
	t.Helper()
	c, err := cache.New(cache.Options{MaxBytes: 1 << 20, ErrorHandler: CacheError})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	px := newTestProxy(t, Options{Cache: c}, PoolSpec{}, addr)
	snap, err := px.s.Build(Spec{Gen: 2, Pools: []PoolSpec{{Pool: px.s.Current().Pool("p")}},
		Routes: []RouteSpec{{Name: "r", PathPrefix: "/", Pool: "p", Cache: &cache.PolicyOptions{MaxObjectBytes: 1 << 20, MaxStale: time.Hour}}}})
	if err != nil {
		t.Fatal(err)
	}
	px.s.Swap(snap)
	return px
}

// TestNonHTTP1AndUnaskedSwitchAre502 (#13 item 9).
func TestNonHTTP1AndUnaskedSwitchAre502(t *testing.T) {
	for name, reply := range map[string]string{
		"HTTP/2.0":     "HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/2":       "HTTP/2 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.2":     "HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"ICY":          "ICY 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"lower http":   "http/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/0.9":     "hello world",
		"101 unasked":  "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nraw bytes",
		"bad 1xx":      "HTTP/1.1 150 Odd\r\n\r\nHTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n",
		"status 99":    "HTTP/1.1 099 Low\r\nContent-Length: 2\r\n\r\nok",
		"status 600":   "HTTP/1.1 600 High\r\nContent-Length: 2\r\n\r\nok",
		"status 000":   "HTTP/1.1 000 Zero\r\nContent-Length: 2\r\n\r\nok",
		"status 0":     "HTTP/1.1 0 Zero\r\nContent-Length: 2\r\n\r\nok",
		"two digits":   "HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok",
		"four digits":  "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
		"no space":     "HTTP/1.1200 OK\r\nContent-Length: 2\r\n\r\nok",
		"negative CL":  "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok",
		"huge CL":      "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nok",
		"CL list":      "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
		"CL plus sign": "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
		"TE gzip":      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok",
		"huge chunk":   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nok\r\n0\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			be := newScriptBackend(t, func(n int, c net.Conn, br *bufio.Reader) {
				if _, _, err := readRawRequest(br); err == nil {
					io.WriteString(c, reply)
				}
			})
			px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
			resp, closed := exchange(t, px.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 300*time.Millisecond)
			for statusOfRaw(resp) >= 100 && statusOfRaw(resp) < 200 { // interim answers are fine
				resp = resp[strings.Index(resp, "\r\n\r\n")+4:]
			}
			if got := statusOfRaw(resp); got != 502 && !(got == 200 && closed && !strings.Contains(resp, "\r\n0\r\n\r\n")) {
				t.Fatalf("status %d, want 502:\n%q", got, resp)
			}
		})
	}
}

// TestEndlessBackendHeaderIs502: a header that never ends is cut at the buffer.
func TestEndlessBackendHeaderIs502(t *testing.T) {
	be := newScriptBackend(t, func(n int, c net.Conn, br *bufio.Reader) {
		if _, _, err := readRawRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\n")
		line := "X-A: " + strings.Repeat("a", 1000) + "\r\n"
		for i := 0; i < 1000; i++ {
			if _, err := io.WriteString(c, line); err != nil {
				return
			}
		}
	})
	px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
	resp, _ := exchange(t, px.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 3*time.Second)
	if got := statusOfRaw(resp); got != 502 {
		t.Fatalf("status %d, want 502:\n%.200q", got, resp)
	}
}

// TestHTTP10ClientGetsCloseDelimitedBody (#13 item 10).
func TestHTTP10ClientGetsCloseDelimitedBody(t *testing.T) {
	body := strings.Repeat("x", 100<<10)
	for name, reply := range map[string]string{
		"chunked":         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(body), body),
		"close-delimited": "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body,
	} {
		t.Run(name, func(t *testing.T) {
			be := newScriptBackend(t, func(n int, c net.Conn, br *bufio.Reader) {
				if _, _, err := readRawRequest(br); err == nil {
					io.WriteString(c, reply)
				}
			})
			px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
			for _, req := range []string{"GET / HTTP/1.0\r\n\r\n", "GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"} {
				resp, closed := exchange(t, px.addr, req, 3*time.Second)
				i := strings.Index(resp, "\r\n\r\n")
				if statusOfRaw(resp) != 200 || i < 0 {
					t.Fatalf("%q: %.300q", req, resp)
				}
				head := strings.ToLower(resp[:i])
				if strings.Contains(head, "transfer-encoding") {
					t.Fatalf("HTTP/1.0 client got Transfer-Encoding:\n%s", resp[:i])
				}
				if !strings.Contains(head, "connection: close") || !closed {
					t.Fatalf("no Connection: close or not closed (%v):\n%s", closed, resp[:i])
				}
				if resp[i+4:] != body {
					t.Fatalf("body of %d bytes, want %d", len(resp[i+4:]), len(body))
				}
			}
		})
	}
}

// TestOriginDateIsForwarded (#13 item 11).
func TestOriginDateIsForwarded(t *testing.T) {
	const date = "Tue, 01 Jan 2030 00:00:00 GMT"
	for name, reply := range map[string]string{
		"small":    "HTTP/1.1 200 OK\r\nDate: " + date + "\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok",
		"streamed": "HTTP/1.1 200 OK\r\nDate: " + date + "\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"lower":    "HTTP/1.1 200 OK\r\ndate: " + date + "\r\nContent-Length: 2\r\n\r\nok",
	} {
		t.Run(name, func(t *testing.T) {
			be := newRawBackend(t, func(string, []byte) string { return reply })
			px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
			resp, _ := exchange(t, px.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 500*time.Millisecond)
			lower := strings.ToLower(resp)
			if n := strings.Count(lower, "\r\ndate:"); n != 1 || !strings.Contains(resp, date) {
				t.Fatalf("%d Date fields, want the origin's only:\n%s", n, resp)
			}
			if strings.Contains(lower, "connection: close") {
				t.Fatalf("keeping the Date closed the connection:\n%s", resp)
			}
		})
	}
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
	resp, _ := exchange(t, px.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 500*time.Millisecond)
	if n := strings.Count(strings.ToLower(resp), "\r\ndate:"); n != 1 {
		t.Fatalf("origin sent no Date: %d Date fields, want 1:\n%s", n, resp)
	}
	// Bodyless answers keep their framing with a Date: no Content-Length on a
	// 304 or 204 that had none, and HEAD keeps the backend's.
	be2 := newRawBackend(t, func(head string, _ []byte) string {
		switch {
		case strings.HasPrefix(head, "HEAD"):
			return "HTTP/1.1 200 OK\r\nDate: " + date + "\r\nContent-Length: 1234\r\n\r\n"
		case requestPathOf(head) == "/304":
			return "HTTP/1.1 304 Not Modified\r\nDate: " + date + "\r\nETag: \"x\"\r\n\r\n"
		}
		return "HTTP/1.1 204 No Content\r\nDate: " + date + "\r\n\r\n"
	})
	px2 := newTestProxy(t, Options{}, PoolSpec{}, be2.addr())
	for _, tt := range []struct{ req, status, cl string }{
		{"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200 OK\r\n", "\r\nContent-Length: 1234\r\n"},
		{"GET /304 HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 304 Not Modified\r\n", ""},
		{"GET /204 HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 204 No Content\r\n", ""},
	} {
		h, closed := exchange(t, px2.addr, tt.req, 300*time.Millisecond)
		if !strings.HasPrefix(h, tt.status) || closed || strings.Contains(h, "Connection: close") || !strings.Contains(h, "\r\nDate: "+date+"\r\n") ||
			(tt.cl == "" && strings.Contains(h, "Content-Length")) || (tt.cl != "" && !strings.Contains(h, tt.cl)) {
			t.Fatalf("%q:\n%s", tt.req, h)
		}
	}
}

// TestInterimResponsesForwarded: 103 Early Hints reach HTTP/1.1 clients, not
// HTTP/1.0 ones; a flood of them is cut (#13 item 17).
func TestInterimResponsesForwarded(t *testing.T) {
	be := newRawBackend(t, func(head string, _ []byte) string {
		if requestPathOf(head) == "/flood" {
			return strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n", 1000) + echoPath(head)
		}
		return "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nKeep-Alive: x\r\n\r\n" +
			"HTTP/1.1 100 Continue\r\n\r\n" + echoPath(head)
	})
	px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
	resp, _ := exchange(t, px.addr, "GET /h HTTP/1.1\r\nHost: x\r\n\r\n", 500*time.Millisecond)
	if !strings.HasPrefix(resp, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n") {
		t.Fatalf("HTTP/1.1 client did not get the 103 first (and no 100):\n%s", resp)
	}
	resp, _ = exchange(t, px.addr, "GET /h HTTP/1.0\r\nHost: x\r\n\r\n", 500*time.Millisecond)
	if statusOfRaw(resp) != 200 || strings.Contains(resp, "103") {
		t.Fatalf("HTTP/1.0 client got an interim response:\n%s", resp)
	}
	resp, _ = exchange(t, px.addr, "GET /flood HTTP/1.1\r\nHost: x\r\n\r\n", 2*time.Second)
	if !strings.Contains(resp, "HTTP/1.1 502") {
		t.Fatalf("a flood of 1xx was not cut:\n%.300q", resp)
	}
	// A pipelined request behind one that gets an interim response: the
	// answers stay in order.
	cl := dialClient(t, px.addr)
	io.WriteString(cl.c, "GET /p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p2 HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, want := range []string{"/p1", "/p2"} {
		if r := cl.read(false); string(r.Body()) != want {
			t.Fatalf("got %d %q, want %q", r.StatusCode(), r.Body(), want)
		}
	}
}

// TestUpgradeAnswerIsChecked: the answer to an upgrade is held to the same rules
// as any other: HTTP/1.x only, interim answers before the 101 skipped.
func TestUpgradeAnswerIsChecked(t *testing.T) {
	const switched = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
	for name, tt := range map[string]struct {
		reply  string
		status int
	}{
		"not HTTP/1.x":        {"HTTP/2.0 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 502},
		"status out of range": {"HTTP/1.1 099 Low\r\n\r\n", 502},
		"103 before the 101":  {"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + switched, 101},
		"1xx flood":           {strings.Repeat("HTTP/1.1 103 Early Hints\r\n\r\n", 100) + switched, 502},
	} {
		t.Run(name, func(t *testing.T) {
			be := newScriptBackend(t, func(n int, c net.Conn, br *bufio.Reader) {
				if _, _, err := readRawRequest(br); err == nil {
					io.WriteString(c, tt.reply)
					io.Copy(io.Discard, br)
				}
			})
			px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
			resp, _ := exchange(t, px.addr, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n", 300*time.Millisecond)
			if got := statusOfRaw(resp); got != tt.status {
				t.Fatalf("status %d, want %d:\n%q", got, tt.status, resp)
			}
		})
	}
}

// TestReusedConnectionRaceIsRetried: a reused connection that the backend closes
// as our request arrives, or answers with 408 (its idle timeout crossed our
// request), did not process it: an idempotent request goes once more on a fresh
// connection, even with retries: 0. A POST gets the 408 as it is.
func TestReusedConnectionRaceIsRetried(t *testing.T) {
	for name, second := range map[string]string{
		"408":   "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
		"close": "",
	} {
		t.Run(name, func(t *testing.T) {
			be := newScriptBackend(t, func(n int, c net.Conn, br *bufio.Reader) {
				for i := 0; ; i++ {
					head, _, err := readRawRequest(br)
					if err != nil {
						return
					}
					if n == 0 && i == 1 {
						io.WriteString(c, second)
						return
					}
					io.WriteString(c, echoPath(head))
				}
			})
			px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
			cl := dialClient(t, px.addr)
			for _, p := range []string{"/1", "/2", "/3"} {
				if r := cl.do("GET "+p+" HTTP/1.1\r\nHost: x\r\n\r\n", false); r.StatusCode() != 200 || string(r.Body()) != p {
					t.Fatalf("GET %s: %d %q", p, r.StatusCode(), r.Body())
				}
			}
		})
	}
	be := newScriptBackend(t, func(n int, c net.Conn, br *bufio.Reader) {
		for i := 0; ; i++ {
			head, _, err := readRawRequest(br)
			if err != nil {
				return
			}
			if i == 1 {
				io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
				return
			}
			io.WriteString(c, echoPath(head))
		}
	})
	px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
	cl := dialClient(t, px.addr)
	cl.do("GET /1 HTTP/1.1\r\nHost: x\r\n\r\n", false)
	if r := cl.do("POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na", false); r.StatusCode() != 408 {
		t.Fatalf("POST: %d, want the backend's 408", r.StatusCode())
	}
}

// TestDrippedResponseHeadIsChecked: a head sent a byte at a time gets the same
// checks as one sent at once (a status of 000 is a 502) and the same answers.
func TestDrippedResponseHeadIsChecked(t *testing.T) {
	for reply, want := range map[string]int{
		"HTTP/1.1 000 Zero\r\nContent-Length: 2\r\n\r\nok": 502,
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":   200,
		"hello\r\n\r\n": 502,
	} {
		be := newScriptBackend(t, func(n int, c net.Conn, br *bufio.Reader) {
			if _, _, err := readRawRequest(br); err != nil {
				return
			}
			for i := range len(reply) {
				if _, err := io.WriteString(c, reply[i:i+1]); err != nil {
					return
				}
				time.Sleep(time.Millisecond) // a drip, not synchronisation: any timing must give the same answer
			}
			io.Copy(io.Discard, br)
		})
		px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
		resp, _ := exchange(t, px.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", time.Second)
		if got := statusOfRaw(resp); got != want {
			t.Fatalf("%q dripped: status %d, want %d:\n%q", reply, got, want, resp)
		}
	}
}
