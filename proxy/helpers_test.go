package proxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/floodgate/floodgate/balancer"
)

// rawBackend is a loopback HTTP/1.1 server that records each request exactly as it
// arrived on the wire (head and body) and answers with the response its reply
// function returns. It understands Content-Length and chunked bodies only as far as
// it needs to find where a request ends.
type rawBackend struct {
	t      testing.TB
	ln     net.Listener
	reply  func(head string, body []byte) string
	mu     sync.Mutex
	heads  []string
	bodies [][]byte
	conns  int
	got    chan string // each request head, as it completes
	wg     sync.WaitGroup
}

func okReply(string, []byte) string {
	return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Backend: raw\r\n\r\nok"
}

func newRawBackend(t testing.TB, reply func(head string, body []byte) string) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if reply == nil {
		reply = okReply
	}
	b := &rawBackend{t: t, ln: ln, reply: reply, got: make(chan string, 1024)}
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(b.close)
	return b
}

func (b *rawBackend) addr() string { return b.ln.Addr().String() }

func (b *rawBackend) close() {
	b.ln.Close()
	b.wg.Wait()
}

func (b *rawBackend) accept() {
	defer b.wg.Done()
	var cw sync.WaitGroup
	defer cw.Wait()
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.conns++
		b.mu.Unlock()
		open = append(open, c)
		cw.Add(1)
		go func() {
			defer cw.Done()
			defer c.Close()
			br := bufio.NewReader(c)
			for {
				head, body, err := readRawRequest(br)
				if err != nil {
					return
				}
				b.mu.Lock()
				b.heads = append(b.heads, head)
				b.bodies = append(b.bodies, body)
				b.mu.Unlock()
				resp := b.reply(head, body)
				if resp == "" { // close without answering
					b.got <- head
					return
				}
				if _, err := io.WriteString(c, resp); err != nil {
					return
				}
				b.got <- head
			}
		}()
	}
}

func (b *rawBackend) requests() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.heads...)
}

func (b *rawBackend) connCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.conns
}

// readRawRequest reads one request head and its body.
func readRawRequest(br *bufio.Reader) (string, []byte, error) {
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", nil, err
		}
		head.WriteString(line)
		if line == "\r\n" {
			break
		}
	}
	h := head.String()
	lower := strings.ToLower(h)
	var body []byte
	switch {
	case strings.Contains(lower, "\r\ntransfer-encoding: chunked\r\n"):
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return "", nil, err
			}
			n, err := strconv.ParseInt(strings.TrimSpace(line), 16, 64)
			if err != nil {
				return "", nil, err
			}
			if n == 0 {
				if _, err := br.ReadString('\n'); err != nil {
					return "", nil, err
				}
				break
			}
			chunk := make([]byte, n+2)
			if _, err := io.ReadFull(br, chunk); err != nil {
				return "", nil, err
			}
			body = append(body, chunk[:n]...)
		}
	case strings.Contains(lower, "\r\ncontent-length: "):
		i := strings.Index(lower, "\r\ncontent-length: ") + len("\r\ncontent-length: ")
		j := strings.Index(lower[i:], "\r\n")
		n, err := strconv.ParseInt(lower[i:i+j], 10, 64)
		if err != nil {
			return "", nil, err
		}
		body = make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			return "", nil, err
		}
	}
	return h, body, nil
}

// testProxy is a proxy.Server on loopback in front of the given backend addresses,
// one pool "p" with equal weights and one route "/" named "r".
type testProxy struct {
	s    *Server
	addr string
}

func newTestProxy(t testing.TB, opts Options, ps PoolSpec, backends ...string) *testProxy {
	t.Helper()
	weights := make([]int, len(backends))
	for i := range weights {
		weights[i] = 1
	}
	px, _ := weightedProxyOpts(t, opts, ps, balancer.PoolOptions{}, backends, weights)
	return px
}

// exchange writes raw bytes to the proxy and returns everything it answers until it
// closes the connection or stays quiet for quiet.
func exchange(t testing.TB, addr, raw string, quiet time.Duration) (resp string, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return readUntilQuiet(c, quiet)
}

// readUntilQuiet reads until EOF (closed=true) or until nothing arrives for quiet.
func readUntilQuiet(c net.Conn, quiet time.Duration) (string, bool) {
	var buf bytes.Buffer
	p := make([]byte, 64<<10)
	for {
		_ = c.SetReadDeadline(time.Now().Add(quiet))
		n, err := c.Read(p)
		buf.Write(p[:n])
		if err != nil {
			var ne net.Error
			if ok := asNetError(err, &ne); ok && ne.Timeout() {
				return buf.String(), false
			}
			return buf.String(), true
		}
	}
}

func asNetError(err error, target *net.Error) bool {
	ne, ok := err.(net.Error)
	if ok {
		*target = ne
	}
	return ok
}

func contextWithTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// statusOfRaw returns the status code of the first response in raw.
func statusOfRaw(raw string) int {
	if len(raw) < 12 || !strings.HasPrefix(raw, "HTTP/1.") {
		return 0
	}
	n, _ := strconv.Atoi(raw[9:12])
	return n
}

func contextCancel(t testing.TB) (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

func (b *rawBackend) body(i int) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bodies[i]
}
