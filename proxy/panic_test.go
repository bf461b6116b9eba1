package proxy

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/internal/panics"
)

// TestPanicInARequestIsContained: a panic in the request path cost the whole
// process (fasthttp recovers nothing). Now the request gets a 500 and its
// connection is closed, the panic is counted (floodgate_panics_total) and
// logged once, and every other connection carries on.
func TestPanicInARequestIsContained(t *testing.T) {
	panics.Allow(t)
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
	px.s.requestHook = func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/panic" {
			var m map[string]int
			m["boom"]++ // a runtime panic, as a bug would cause
		}
	}

	// A keep-alive connection of another client, open across the panic.
	other, err := net.Dial("tcp", px.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	br := bufio.NewReader(other)
	ask := func(what string) {
		t.Helper()
		if _, err := io.WriteString(other, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		var resp fasthttp.Response
		if err := resp.Read(br); err != nil || resp.StatusCode() != 200 {
			t.Fatalf("%s: %d %v", what, resp.StatusCode(), err)
		}
	}
	ask("before the panic")

	before := panics.Total()
	resp, closed := exchange(t, px.addr, "GET /panic HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\n\r\n", 5*time.Second)
	if statusOfRaw(resp) != 500 || !closed || strings.Count(resp, "HTTP/1.1") != 1 {
		t.Fatalf("the panicking request: %q (closed %v), want one 500 and the connection closed", resp, closed)
	}
	if got := panics.Total() - before; got != 1 {
		t.Fatalf("panics counted: %d, want 1", got)
	}
	ask("after the panic, on a connection opened before")
	resp, _ = exchange(t, px.addr, "GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 5*time.Second)
	if statusOfRaw(resp) != 200 {
		t.Fatalf("a new connection after the panic: %q", resp)
	}
}
