package proxy

import (
	"bufio"
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/internal/httpwire"
)

var fuzzSeeds = []string{
	"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
	"POST /a?b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-A, Upgrade\r\nX-A: 1\r\nUpgrade: ws\r\nTE: trailers\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nKeep-Alive: 1\r\nProxy-Connection: x\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
	"GET / HTTP/1.1\nHost: x\nX-A: 1\n\n",
	"GET http://shop.example/p?q HTTP/1.1\r\nHost: other.example\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-F: 1\r\n", 120) + "\r\n",
	"GET /" + strings.Repeat("a", 300) + " HTTP/1.1\r\nHost: x\r\n\r\n",
}

// FuzzOutboundRequest: what floodgate writes to a backend for any request it
// accepts has no hop-by-hop field, no field named by Connection, exactly one
// X-Forwarded-For ending with the peer, one X-Forwarded-Proto and one
// X-Forwarded-Host, and parses back as a single well-formed request.
func FuzzOutboundRequest(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 8192 {
			return
		}
		var req fasthttp.Request
		req.Header.DisableNormalizing()
		br := bufio.NewReader(bytes.NewReader(raw))
		if err := req.Header.Read(br); err != nil {
			return
		}
		if httpwire.ValidateRequestLine(req.Header.Method(), req.Header.RequestURI(), req.Header.Protocol()) != nil {
			return
		}
		head, err := httpwire.ValidateHeaders(req.Header.RawHeaders(), req.Header.IsHTTP11())
		if err != nil || head.Upgrade {
			return
		}
		if err := req.ContinueReadBody(br, 1<<16); err != nil {
			return
		}
		var named []string
		forEachLine(req.Header.RawHeaders(), func(k, v []byte) {
			if httpwire.EqualFold(k, "connection") {
				for _, tok := range strings.Split(string(v), ",") {
					if tok = strings.TrimSpace(tok); tok != "" {
						named = append(named, strings.ToLower(tok))
					}
				}
			}
		})
		var out bytes.Buffer
		bw := bufio.NewWriter(&out)
		o := outbound{fr: framing{RequestHead: head}, peer: fuzzPeer, host: []byte("backend:80"), copyBuf: make([]byte, 512)}
		if err := writeRequest(bw, &req, &o); err != nil {
			return
		}
		bw.Flush()
		var back fasthttp.Request
		back.Header.DisableNormalizing()
		obr := bufio.NewReader(bytes.NewReader(out.Bytes()))
		if err := back.Read(obr); err != nil {
			t.Fatalf("outbound request does not parse: %v\n%q", err, out.Bytes())
		}
		if _, err := httpwire.ValidateHeaders(back.Header.RawHeaders(), true); err != nil {
			t.Fatalf("outbound request fails our own validation: %v\n%q", err, out.Bytes())
		}
		if obr.Buffered() != 0 {
			t.Fatalf("outbound request framing leaves %d bytes over:\n%q", obr.Buffered(), out.Bytes())
		}
		counts := map[string]int{}
		forEachLine(back.Header.RawHeaders(), func(k, v []byte) {
			lk := strings.ToLower(string(k))
			counts[lk]++
			if httpwire.IsHopByHop(k) && lk != "transfer-encoding" {
				t.Fatalf("hop-by-hop header %q forwarded:\n%q", k, out.Bytes())
			}
			for _, n := range named {
				if lk == n && !strings.HasPrefix(lk, "x-forwarded-") && lk != "content-length" && lk != "transfer-encoding" && lk != "host" {
					t.Fatalf("header %q named by Connection forwarded:\n%q", k, out.Bytes())
				}
			}
		})
		for _, k := range []string{"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"} {
			if counts[k] != 1 {
				t.Fatalf("%d %s fields, want 1:\n%q", counts[k], k, out.Bytes())
			}
		}
		if xff := string(back.Header.Peek("X-Forwarded-For")); !strings.HasSuffix(xff, "192.0.2.1") {
			t.Fatalf("X-Forwarded-For %q does not end with the peer", xff)
		}
		if !bytes.Equal(back.Body(), req.Body()) {
			t.Fatalf("body changed: %q -> %q", req.Body(), back.Body())
		}
	})
}

var fuzzPeer = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1234}

// forEachLine calls f with the name and value of each field line of raw.
func forEachLine(raw []byte, f func(name, value []byte)) {
	for it := httpwire.Fields(raw); ; {
		name, value, ok := it.Next()
		if !ok {
			return
		}
		f(name, value)
	}
}
