package proxy

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestConnectionLimits(t *testing.T) {
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{MaxConns: 3, MaxConnsPerIP: 2}, PoolSpec{}, be.addr())
	const get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	keep := func(src string) {
		c := dialFrom(t, src, px.addr)
		io.WriteString(c, get)
		if resp, _ := readUntilQuiet(c, 300*time.Millisecond); statusOfRaw(resp) != 200 {
			t.Fatalf("connection from %s within the limits: %q", src, resp)
		}
		open = append(open, c)
	}
	refused := func(src, why string) {
		c := dialFrom(t, src, px.addr)
		defer c.Close()
		resp, closed := readUntilQuiet(c, 2*time.Second)
		if statusOfRaw(resp) != 503 || !strings.Contains(resp, "too many connections") || !closed {
			t.Fatalf("%s: want a 503 and a closed connection, got closed=%v %q", why, closed, resp)
		}
	}
	keep("127.0.0.1")
	keep("127.0.0.1")
	refused("127.0.0.1", "third connection from one address (per-IP limit 2)")
	keep("127.0.0.2")
	refused("127.0.0.3", "fourth connection overall (limit 3)")
	if st := px.s.ConnStats(); st.Open != 3 || st.Refused != 2 {
		t.Fatalf("conn stats %+v, want 3 open and 2 refused", st)
	}
	open[0].Close()
	open = open[1:]
	waitUntil(t, "the closed connection to be released", func() bool { return px.s.ConnStats().Open == 2 })
	keep("127.0.0.1")
}

func TestStalledBodyGets408(t *testing.T) {
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{BodyIdleTimeout: 300 * time.Millisecond}, PoolSpec{}, be.addr())
	c, err := net.Dial("tcp", px.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"+strings.Repeat("a", 20000))
	start := time.Now()
	resp, closed := readUntilQuiet(c, 5*time.Second)
	if statusOfRaw(resp) != 408 || !closed {
		t.Fatalf("stalled upload: want 408 and a closed connection, got closed=%v %q", closed, resp)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v for a 300ms body idle timeout", d)
	}
	if n := len(be.requests()); n != 0 {
		t.Fatalf("backend received %d complete requests from a stalled upload", n)
	}
}
