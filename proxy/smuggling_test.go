package proxy

import (
	"strings"
	"testing"
	"time"
)

// TestMalformedRequestsRejected writes hostile requests byte for byte and checks
// that each gets 400 (or 413/431 where the size is the problem), that the proxy
// closes the connection, and that the backend never saw a request. A follow-up
// request is pipelined after each bad one: a desync would let it through.
func TestMalformedRequestsRejected(t *testing.T) {
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{MaxRequestBody: 1 << 20}, PoolSpec{}, be.addr())
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	tests := []struct {
		name string
		raw  string
		want int
	}{
		{"CL and TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE and CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", 400},
		{"two CL differing", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
		{"two CL equal", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab", 400},
		{"CL list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\n\r\nab", 400},
		{"CL plus sign", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\nab", 400},
		{"CL negative", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400},
		{"CL hex", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x2\r\n\r\nab", 400},
		{"CL empty", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n", 400},
		{"CL huge", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
		{"TE gzip", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nab", 400},
		{"TE gzip chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE chunked twice", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE xchunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400},
		{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"bad chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n", 400},
		{"chunk size overflow", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nab\r\n0\r\n\r\n", 400},
		{"chunk ext with bare LF", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2;a\nb\r\nab\r\n0\r\n\r\n", 400},
		{"chunk data too long", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n", 400},
		{"obs-fold tab", "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\t2\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n", 400},
		{"space before colon CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 2\r\n\r\nab", 400},
		{"space in name", "GET / HTTP/1.1\r\nHost: x\r\nX A: 1\r\n\r\n", 400},
		{"no colon", "GET / HTTP/1.1\r\nHost: x\r\nX-A\r\n\r\n", 400},
		{"empty name", "GET / HTTP/1.1\r\nHost: x\r\n: 1\r\n\r\n", 400},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400},
		{"CR in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400},
		{"bare LF line end", "GET / HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n", 400},
		{"control in name", "GET / HTTP/1.1\r\nHost: x\r\nX\x01A: 1\r\n\r\n", 400},
		{"absolute-form, not http", "GET ftp://evil.example/ HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"absolute-form with userinfo", "GET http://a@evil.example/ HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"absolute-form without authority", "GET http:/x HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"bare LF header block", "GET / HTTP/1.1\r\nHost: x\n\n", 400},
		{"backslash in path", "GET /a\\b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"dot segment", "GET /a/../b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"authority-form", "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n", 400},
		{"asterisk on GET", "GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"relative target", "GET foo HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"fragment", "GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"raw UTF-8 target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 400},
		{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: x\r\n\r\n", 400},
		{"lower-case version", "GET / http/1.1\r\nHost: x\r\n\r\n", 400},
		{"no version", "GET /\r\nHost: x\r\n\r\n", 400},
		{"missing Host", "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", 400},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"Host with userinfo", "GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", 400},
		{"Host with path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
		{"Host with bad port", "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400},
		{"method with slash", "G/ET / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"body over the limit", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n" + strings.Repeat("a", 16<<10), 413},
		{"chunked body over the limit", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n200000\r\n" + strings.Repeat("a", 0x200000) + "\r\n0\r\n\r\n", 413},
		{"headers over the limit", "GET / HTTP/1.1\r\nHost: x\r\nX-A: " + strings.Repeat("a", 64<<10) + "\r\n\r\n", 431},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(be.requests())
			resp, closed := exchange(t, px.addr, tt.raw+smuggled, 2*time.Second)
			if got := statusOfRaw(resp); got != tt.want {
				t.Errorf("status = %d, want %d; response:\n%.300q", got, tt.want, resp)
			}
			if n := strings.Count(resp, "HTTP/1.1 "); n != 1 {
				t.Errorf("got %d responses, want exactly 1 (a pipelined request went through):\n%.500q", n, resp)
			}
			if !closed {
				t.Errorf("connection left open after a malformed request")
			}
			if got := be.requests()[before:]; len(got) > 0 {
				t.Errorf("backend received %d request(s), want none: %q", len(got), got)
			}
		})
	}
}

// TestValidRequestsAccepted is the other half of the table above: the strict checks
// must not refuse what RFC 9112 allows.
func TestValidRequestsAccepted(t *testing.T) {
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
	tests := []struct{ name, raw string }{
		{"plain GET", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n"},
		{"OPTIONS asterisk", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"chunked with extension", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2;name=value\r\nab\r\n0\r\n\r\n"},
		{"TE mixed case", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n"},
		{"value with tab and obs-text", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\tb\xe9\r\n\r\n"},
		{"IPv6 host", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"},
		{"empty value", "GET / HTTP/1.1\r\nHost: x\r\nX-A:\r\n\r\n"},
		// RFC 9112 §2.2 lets a recipient accept a bare LF after the request line;
		// fasthttp does, and the line is regenerated with CRLF for the backend,
		// so no two parsers can disagree about it.
		{"bare LF after request line", "GET / HTTP/1.1\nHost: x\r\n\r\n"},
		{"percent-encoded target", "GET /a%20b?q=%C3%A9 HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"absolute-form", "GET http://x/a?b HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"h2c upgrade, forwarded without it", "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"},
		{"100 header fields", "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-F: 1\r\n", 99) + "\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := exchange(t, px.addr, tt.raw, 500*time.Millisecond)
			if got := statusOfRaw(resp); got != 200 {
				t.Fatalf("status = %d, want 200; response:\n%.300q", got, resp)
			}
		})
	}
}

// TestChunkedRequestEndsTheConnection: fasthttp ends a chunked body's trailer
// section at a bare-LF blank line when a CRLFCRLF follows later in its buffer,
// so behind a front proxy that reads only CRLF as a line end, the bytes after
// "0\r\n\n" are one request to the front proxy and two to floodgate. floodgate
// cannot re-check trailer bytes that fasthttp has already buffered, so a
// chunked request is the last one on its connection: nothing after it is
// parsed as a request.
func TestChunkedRequestEndsTheConnection(t *testing.T) {
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, end := range []string{"0\r\n\n", "0\r\nX-T: 1\n\n", "0\r\n\r\n"} {
		before := len(be.requests())
		raw := "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n" + end + smuggled
		resp, closed := exchange(t, px.addr, raw, 2*time.Second)
		if n := strings.Count(resp, "HTTP/1.1 "); n != 1 {
			t.Errorf("%q: got %d responses, want exactly 1:\n%.500q", end, n, resp)
		}
		if !closed {
			t.Errorf("%q: connection left open after a chunked request", end)
		}
		for _, head := range be.requests()[before:] {
			if strings.Contains(head, "/smuggled") {
				t.Errorf("%q: the bytes after the chunked body reached the backend as a request: %q", end, head)
			}
		}
	}
}
