package proxy

import (
	"bufio"
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
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

// FuzzValidateHeaders: the validator never panics, and what it accepts has CRLF
// lines, token names and no control characters in values.
func FuzzValidateHeaders(f *testing.F) {
	for _, s := range fuzzSeeds {
		if i := strings.Index(s, "\r\n"); i >= 0 {
			f.Add([]byte(s[i+2:]))
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 8192 {
			return
		}
		fr, err := validateHeaders(raw, true)
		if err != nil {
			return
		}
		lines := 0
		for _, line := range bytes.Split(bytes.TrimSuffix(raw, []byte("\r\n")), []byte("\r\n")) {
			if len(line) == 0 {
				continue
			}
			lines++
			if bytes.ContainsAny(line, "\r\n\x00") {
				t.Fatalf("accepted a line with CR, LF or NUL: %q", line)
			}
			if line[0] == ' ' || line[0] == '\t' {
				t.Fatalf("accepted obs-fold: %q", line)
			}
		}
		if fr.fields != lines {
			t.Fatalf("counted %d fields, the block has %d lines", fr.fields, lines)
		}
		if fr.upgrade && !bytes.Contains(bytes.ToLower(raw), []byte("websocket")) {
			t.Fatalf("an upgrade other than WebSocket would be tunnelled: %q", raw)
		}
	})
}

// FuzzRequestTarget: for any request line, validation never panics; an accepted
// absolute-form target splits into a valid host and an origin-form rest; a path
// that checkPath accepts has no backslash and no dot segment under any common
// reading (decoded, parameters dropped, encoded separators split); and its
// canonical form has no upper-case letter, no empty segment, and fits its buffer.
func FuzzRequestTarget(f *testing.F) {
	for _, s := range fuzzSeeds {
		if i := strings.Index(s, "\r\n"); i >= 0 {
			f.Add([]byte(s[:i]))
		}
	}
	for _, s := range []string{"GET /x/..;/admin HTTP/1.1", "GET /%2e%2E/ HTTP/1.1", "GET /a%2F..%5Cb HTTP/1.1", "GET /ADMIN;x=1//y HTTP/1.1",
		"GET HTTPS://h:1?q HTTP/1.1", "GET http://u@h/ HTTP/1.1", "OPTIONS * HTTP/1.1", "GET /%252e%252e/ HTTP/1.1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		if len(line) > 4096 {
			return
		}
		parts := bytes.SplitN(line, []byte(" "), 3)
		if len(parts) != 3 {
			return
		}
		method, target, proto := parts[0], parts[1], parts[2]
		if validateRequestLine(method, target, proto) != nil {
			return
		}
		if target[0] != '/' && target[0] != '*' {
			host, rest, err := splitAbsolute(target)
			if err != nil || !validHost(host) || (len(rest) > 0 && rest[0] != '/' && rest[0] != '?') {
				t.Fatalf("absolute-form %q split into %q %q %v", target, host, rest, err)
			}
			target = rest
			if len(target) == 0 {
				target = []byte("/")
			}
		}
		path := pathOf(target)
		if _, err := checkPath(path); err != nil {
			return
		}
		if bytes.IndexByte(path, '\\') >= 0 {
			t.Fatalf("accepted a backslash: %q", path)
		}
		dec := strings.NewReplacer("%2f", "/", "%2F", "/", "%5c", "/", "%5C", "/", "%2e", ".", "%2E", ".").Replace(string(path))
		for _, seg := range strings.Split(dec, "/") {
			if i := strings.IndexByte(seg, ';'); i >= 0 {
				seg = seg[:i]
			}
			if seg == "." || seg == ".." {
				t.Fatalf("accepted a dot segment: %q", path)
			}
		}
		var buf [canonicalPathMax]byte
		c := canonicalPath(buf[:0], path)
		if len(c) > canonicalPathMax || bytes.Contains(c, []byte("//")) {
			t.Fatalf("canonical path %q of %q", c, path)
		}
		for _, b := range c {
			if b >= 'A' && b <= 'Z' {
				t.Fatalf("canonical path %q of %q has upper case", c, path)
			}
		}
	})
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
		if validateRequestLine(req.Header.Method(), req.Header.RequestURI(), req.Header.Protocol()) != nil {
			return
		}
		fr, err := validateHeaders(req.Header.RawHeaders(), req.Header.IsHTTP11())
		if err != nil || fr.upgrade {
			return
		}
		if err := req.ContinueReadBody(br, 1<<16); err != nil {
			return
		}
		var named []string
		forEachLine(req.Header.RawHeaders(), func(k, v []byte) {
			if equalFold(k, "connection") {
				for _, tok := range strings.Split(string(v), ",") {
					if tok = strings.TrimSpace(tok); tok != "" {
						named = append(named, strings.ToLower(tok))
					}
				}
			}
		})
		var out bytes.Buffer
		bw := bufio.NewWriter(&out)
		o := outbound{fr: fr, peer: fuzzPeer, host: []byte("backend:80"), copyBuf: make([]byte, 512)}
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
		if _, err := validateHeaders(back.Header.RawHeaders(), true); err != nil {
			t.Fatalf("outbound request fails our own validation: %v\n%q", err, out.Bytes())
		}
		if obr.Buffered() != 0 {
			t.Fatalf("outbound request framing leaves %d bytes over:\n%q", obr.Buffered(), out.Bytes())
		}
		counts := map[string]int{}
		forEachLine(back.Header.RawHeaders(), func(k, v []byte) {
			lk := strings.ToLower(string(k))
			counts[lk]++
			if isHopHeader(k) && lk != "transfer-encoding" {
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
