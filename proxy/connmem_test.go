package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// Buffers belong to requests in flight, not to connections (issue 16): these
// tests hold keep-alive connections open through real sockets and read the
// bytes of connection buffers the proxy holds (BufferBytes, exported as
// floodgate_connection_buffer_bytes).

// keepAliveClient is one client connection that sends a request and reads its
// whole answer (Content-Length framing), then stays open.
type keepAliveClient struct {
	c   net.Conn
	buf []byte
}

func dialKeepAlive(t testing.TB, addr string) *keepAliveClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &keepAliveClient{c: c, buf: make([]byte, 0, 4096)}
}

// do sends raw and returns the status and body of the answer.
func (k *keepAliveClient) do(t testing.TB, raw string) (int, []byte) {
	t.Helper()
	_ = k.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(k.c, raw); err != nil {
		t.Fatal(err)
	}
	k.buf = k.buf[:0]
	for {
		if end := bytes.Index(k.buf, []byte("\r\n\r\n")); end >= 0 {
			head := string(k.buf[:end])
			i := bytes.Index(bytes.ToLower(k.buf[:end]), []byte("\r\ncontent-length: "))
			if i < 0 {
				t.Fatalf("answer without Content-Length: %q", head)
			}
			line := k.buf[i+len("\r\ncontent-length: "):]
			n, err := strconv.Atoi(string(line[:bytes.IndexByte(line, '\r')]))
			if err != nil {
				t.Fatalf("Content-Length in %q: %v", head, err)
			}
			if len(k.buf) >= end+4+n {
				status, _ := strconv.Atoi(head[9:12])
				return status, k.buf[end+4 : end+4+n]
			}
		}
		if len(k.buf) == cap(k.buf) {
			k.buf = append(k.buf, 0)[:len(k.buf)]
		}
		n, err := k.c.Read(k.buf[len(k.buf):cap(k.buf)])
		if err != nil {
			t.Fatalf("reading the answer: %v (got %q)", err, k.buf)
		}
		k.buf = k.buf[:len(k.buf)+n]
	}
}

// awaitIdleBuffers waits until s's connection buffers hold only fasthttp's
// reader of each open client connection (fasthttp keeps it for the
// connection's life under StreamRequestBody): the proxy gives the others back
// right after the write of an answer, which the client may see first.
func awaitIdleBuffers(t testing.TB, s *Server) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		open := s.ConnStats().Open
		want := int64(open) * int64(s.opts.MaxHeaderBytes)
		got := s.BufferBytes()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection buffers hold %d bytes with %d idle client connections open, want %d (their readers)",
				got, open, want)
		}
		time.Sleep(time.Millisecond) // polling a condition, bounded by deadline
	}
}

// TestIdleConnectionsHoldNoBuffers: keep-alive client connections waiting for
// their next request hold no write buffer, no held write and no chunk, only
// fasthttp's reader, and the backend connections on the idle stack hold no
// buffer at all, after GETs, after requests with bodies (fixed and chunked,
// which fasthttp streams) and after an answer bigger than a chunk; nor does a
// request waiting for its backend's answer.
func TestIdleConnectionsHoldNoBuffers(t *testing.T) {
	release, waiting := make(chan struct{}), make(chan struct{})
	be := newRawBackend(t, func(head string, body []byte) string {
		if bytes.Contains([]byte(head), []byte("/slow")) {
			close(waiting)
			<-release
		}
		if bytes.Contains([]byte(head), []byte("/big")) {
			big := bytes.Repeat([]byte("b"), 40<<10)
			return "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(big)) + "\r\n\r\n" + string(big)
		}
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", 2+len(body), "ok"+string(body))
	})
	px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())

	const n = 40
	clients := make([]*keepAliveClient, n)
	for i := range clients {
		clients[i] = dialKeepAlive(t, px.addr)
		if st, body := clients[i].do(t, "GET /a HTTP/1.1\r\nHost: shop.example\r\n\r\n"); st != 200 || string(body) != "ok" {
			t.Fatalf("GET: %d %q", st, body)
		}
	}
	if open := px.s.ConnStats().Open; open != n {
		t.Fatalf("%d client connections open, want %d", open, n)
	}
	awaitIdleBuffers(t, px.s)

	for i, k := range clients {
		var raw string
		switch i % 3 {
		case 0:
			raw = "POST /a HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 5\r\n\r\nhello"
		case 1:
			raw = "POST /a HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
		default:
			raw = "GET /big HTTP/1.1\r\nHost: shop.example\r\n\r\n"
		}
		st, body := k.do(t, raw)
		if st != 200 || (i%3 != 2 && string(body) != "okhello") || (i%3 == 2 && len(body) != 40<<10) {
			t.Fatalf("request %d: %d, %d bytes", i, st, len(body))
		}
	}
	awaitIdleBuffers(t, px.s)

	// A request waiting for its backend's answer holds no buffer but its
	// connection's reader: its request was written, and the answer's first
	// bytes are read into a chunk taken once they have come.
	done := make(chan int, 1)
	go func() {
		c, err := net.Dial("tcp", px.addr)
		if err != nil {
			done <- 0
			return
		}
		defer c.Close()
		_, _ = io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: shop.example\r\n\r\n")
		resp, _ := readUntilQuiet(c, 2*time.Second)
		done <- statusOfRaw(resp)
	}()
	<-waiting
	if b, readers := px.s.BufferBytes(), int64(px.s.ConnStats().Open)*int64(px.s.opts.MaxHeaderBytes); b != readers {
		t.Errorf("%d buffer bytes held while a request waits for its backend, want the %d of the client connections' readers", b, readers)
	}
	close(release)
	if st := <-done; st != 200 {
		t.Fatalf("slow request: %d", st)
	}
	awaitIdleBuffers(t, px.s)

	// The connections still serve requests (but those of the chunked
	// requests, which the proxy closes after its answer, as it did before).
	for i, k := range clients {
		if i%3 == 1 {
			continue
		}
		if st, _ := k.do(t, "GET /a HTTP/1.1\r\nHost: shop.example\r\n\r\n"); st != 200 {
			t.Fatalf("GET after idle: %d", st)
		}
	}
	awaitIdleBuffers(t, px.s)
}

// TestIdleConnectionHeap: what a keep-alive client connection costs the
// proxy's heap once it waits for its next request, measured with real
// sockets: fasthttp's reader (max_header_bytes) and the connection's own
// structures, no writer, no backend buffer. Before issue 16 each such
// connection held fasthttp's 32 KB writer too, about 52 KB in all.
func TestIdleConnectionHeap(t *testing.T) {
	if raceEnabled {
		t.Skip("heap sizes are meaningless under the race detector")
	}
	px := newTestProxy(t, Options{}, PoolSpec{}, fastBackend(t))
	const n = 300
	clients := make([]*keepAliveClient, 0, n)
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC() // twice: sync.Pool keeps objects through one
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	// One connection first, so that the pools and the backend connection
	// exist before the reading.
	k := dialKeepAlive(t, px.addr)
	k.do(t, "GET /a HTTP/1.1\r\nHost: shop.example\r\n\r\n")
	awaitIdleBuffers(t, px.s)
	before := heap()
	for i := 0; i < n; i++ {
		k := dialKeepAlive(t, px.addr)
		k.buf = make([]byte, 0, 512)
		if st, _ := k.do(t, "GET /a HTTP/1.1\r\nHost: shop.example\r\n\r\n"); st != 200 {
			t.Fatalf("GET: %d", st)
		}
		clients = append(clients, k)
	}
	awaitIdleBuffers(t, px.s)
	per := float64(heap()-before) / n
	t.Logf("%.0f bytes of heap per idle keep-alive connection (both ends of the socket)", per)
	// The reader is 16 KB; the rest is the conn, fasthttp's RequestCtx,
	// the client end's net.Conn and its 512-byte buffer: 21 KB in all when
	// measured. The bound leaves room for other tests' leftovers.
	if max := float64(px.s.opts.MaxHeaderBytes + 16<<10); per > max {
		t.Errorf("%.0f bytes of heap per idle connection, want at most %.0f", per, max)
	}
	runtime.KeepAlive(clients)
}
