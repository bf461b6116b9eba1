package httpwire

import (
	"bytes"
	"strings"
	"testing"
)

// requestSeeds are request heads for the fuzz targets of this file (the proxy's
// FuzzOutboundRequest starts from the same ones).
var requestSeeds = []string{
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
	for _, s := range requestSeeds {
		if i := strings.Index(s, "\r\n"); i >= 0 {
			f.Add([]byte(s[i+2:]))
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 8192 {
			return
		}
		fr, err := ValidateHeaders(raw, true)
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
		if fr.Fields != lines {
			t.Fatalf("counted %d fields, the block has %d lines", fr.Fields, lines)
		}
		if fr.Upgrade && !bytes.Contains(bytes.ToLower(raw), []byte("websocket")) {
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
	for _, s := range requestSeeds {
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
		if ValidateRequestLine(method, target, proto) != nil {
			return
		}
		if target[0] != '/' && target[0] != '*' {
			host, rest, err := SplitAbsolute(target)
			if err != nil || !ValidHost(host) || (len(rest) > 0 && rest[0] != '/' && rest[0] != '?') {
				t.Fatalf("absolute-form %q split into %q %q %v", target, host, rest, err)
			}
			target = rest
			if len(target) == 0 {
				target = []byte("/")
			}
		}
		path := PathOf(target)
		if _, err := CheckPath(path); err != nil {
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
		var buf [CanonicalPathMax]byte
		c := CanonicalPath(buf[:0], path)
		if len(c) > CanonicalPathMax || bytes.Contains(c, []byte("//")) {
			t.Fatalf("canonical path %q of %q", c, path)
		}
		for _, b := range c {
			if b >= 'A' && b <= 'Z' {
				t.Fatalf("canonical path %q of %q has upper case", c, path)
			}
		}
	})
}

func BenchmarkValidateHeaders(b *testing.B) {
	raw := []byte("Host: shop.example\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\nAccept: text/html,application/xhtml+xml\r\nAccept-Language: fr-FR,fr;q=0.9\r\nCookie: session=abcdef0123456789; cart=42\r\nConnection: keep-alive\r\n\r\n")
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for i := 0; i < b.N; i++ {
		if _, err := ValidateHeaders(raw, true); err != nil {
			b.Fatal(err)
		}
	}
}
