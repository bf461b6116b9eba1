package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/valyala/fasthttp"
)

// TestCopyBackendHeaderSameAsCopy: the template copy of relay gives the header
// copyResponseHeader gives, byte for byte, through runs of the same answer and
// changes of status alone, Date, values, order, fields added and removed,
// hop-by-hop fields and cookies.
func TestCopyBackendHeaderSameAsCopy(t *testing.T) {
	heads := []string{
		nginxHead,
		strings.Replace(nginxHead, "02:40:00", "02:40:01", 1),
		strings.Replace(nginxHead, "200 OK", "404 Not Found", 1),
		strings.Replace(nginxHead, "Connection: keep-alive", "Connection: close", 1),
		strings.Replace(nginxHead, "Connection: keep-alive", "Connection: keep-alive, ETag", 1),
		strings.Replace(nginxHead, "bytes", "none", 1),
		strings.Replace(nginxHead, "Accept-Ranges: bytes\r\n", "Accept-Ranges: bytes\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n", 1),
		strings.Replace(nginxHead, "Accept-Ranges: bytes\r\n", "Accept-Ranges: bytes\r\nSet-Cookie: b=2\r\nSet-Cookie: a=1\r\n", 1),
		strings.Replace(nginxHead, "ETag: \"6934f1c0-80\"\r\nAccept-Ranges: bytes", "Accept-Ranges: bytes\r\nETag: \"6934f1c0-80\"", 1),
		strings.Replace(nginxHead, "Accept-Ranges: bytes\r\n", "Accept-Ranges: bytes\r\nKeep-Alive: timeout=5\r\nTrailer: X-T\r\n", 1),
		strings.Replace(nginxHead, "Accept-Ranges: bytes\r\n", "", 1),
		strings.Replace(nginxHead, "Accept-Ranges: bytes\r\n", "Accept-Ranges: bytes\r\nX-Extra: 1\r\n", 1),
		nginxHead, // the fields of the one before but its last
		strings.Replace(nginxHead, "200 OK", "503 Service Unavailable", 1), // only the status differs
		strings.Replace(nginxHead, "Accept-Ranges: bytes\r\n", "Accept-Ranges: bytes\r\nX-Extra: 1\r\n", 1),
		strings.Replace(nginxHead, "Date: Tue, 08 Dec 2026 02:40:00 GMT\r\n", "date: Tue, 08 Dec 2026 02:40:00 GMT\r\n", 1),
		"HTTP/1.1 204 No Content\r\nDate: Tue, 08 Dec 2026 02:40:00 GMT\r\nX-A: 1\r\n\r\n",
		"HTTP/1.0 200 OK\r\nDate: Tue, 08 Dec 2026 02:40:00 GMT\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nDate: Tue, 08 Dec 2026 02:40:00 GMT\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n",
	}
	var s Server
	s.resps.New = func() any { return &fasthttp.Response{KeepBodyBuffer: true} }
	var got, want fasthttp.ResponseHeader
	for round := 0; round < 3; round++ {
		for i, head := range heads {
			for rep := 0; rep < 3; rep++ { // a run of the same answer, then a change
				resp := s.acquireResponse()
				if err := resp.Header.Read(bufio.NewReader(strings.NewReader(head))); err != nil {
					t.Fatalf("head %d: %v", i, err)
				}
				copyBackendHeader(&got, &resp.Header)
				copyResponseHeader(&want, &resp.Header)
				if g, w := got.AppendBytes(nil), want.AppendBytes(nil); !bytes.Equal(g, w) {
					t.Fatalf("head %d, round %d, repeat %d:\ngot  %q\nwant %q", i, round, rep, g, w)
				}
				if got.ConnectionClose() != want.ConnectionClose() || got.ContentLength() != want.ContentLength() {
					t.Fatalf("head %d: connection close %v/%v, length %d/%d", i, got.ConnectionClose(), want.ConnectionClose(), got.ContentLength(), want.ContentLength())
				}
				s.releaseResponse(resp)
			}
		}
	}
}

// TestReadHeaderKnownSameAsParse: readResponseHead with known heads reused
// parses what fasthttp's parse gives, leaves the same bytes in the reader and
// fails alike, through repeated heads, changed ones, heads cut across reads,
// heads ended by bare LFs, interim answers and bodies that follow.
func TestReadHeaderKnownSameAsParse(t *testing.T) {
	streams := []string{
		nginxHead + strings.Repeat("x", 128),
		nginxHead + strings.Repeat("x", 128),
		strings.Replace(nginxHead, "02:40:00", "02:40:01", 1) + strings.Repeat("x", 128),
		strings.Replace(nginxHead, "02:40:00", "02:40:01", 1) + strings.Repeat("x", 128) + nginxHead, // and the start of another
		strings.Replace(nginxHead, "\r\n\r\n", "\r\n", 1) + "X-After: 1\r\n\r\n",                     // the known head is a prefix of this one
		strings.Replace(nginxHead, "\r\n", "\n", -1),
		"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n" + nginxHead,
		"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n" + nginxHead,
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n",
	}
	cuts := []func(io.Reader) io.Reader{
		func(r io.Reader) io.Reader { return r },
		iotest.HalfReader,
		iotest.OneByteReader,
	}
	var s Server
	s.resps.New = func() any { return &fasthttp.Response{KeepBodyBuffer: true} }
	for round := 0; round < 3; round++ {
		for ci, cut := range cuts {
			for i, stream := range streams {
				for rep := 0; rep < 3; rep++ {
					got, want := s.acquireResponse(), s.acquireResponse()
					gbr := bufio.NewReaderSize(cut(strings.NewReader(stream)), 8192)
					wbr := bufio.NewReaderSize(cut(strings.NewReader(stream)), 8192)
					gm, gn, gerr := readResponseHead(gbr, got, false, nil, true)
					wm, wn, werr := readResponseHead(wbr, want, false, nil, false)
					where := fmt.Sprintf("stream %d, cut %d, round %d, repeat %d", i, ci, round, rep)
					if (gerr == nil) != (werr == nil) || gm != wm || gn != wn {
						t.Fatalf("%s: %v %v %v, want %v %v %v", where, gm, gn, gerr, wm, wn, werr)
					}
					if gerr == nil {
						g, w := got.Header.AppendBytes(nil), want.Header.AppendBytes(nil)
						if !bytes.Equal(g, w) || got.Header.ConnectionClose() != want.Header.ConnectionClose() ||
							got.Header.ContentLength() != want.Header.ContentLength() || !bytes.Equal(got.Header.Protocol(), want.Header.Protocol()) {
							t.Fatalf("%s:\ngot  %q\nwant %q", where, g, w)
						}
					}
					gr, _ := io.ReadAll(gbr)
					wr, _ := io.ReadAll(wbr)
					if !bytes.Equal(gr, wr) {
						t.Fatalf("%s: left %q, want %q", where, gr, wr)
					}
					s.releaseResponse(got)
					s.releaseResponse(want)
				}
			}
		}
	}
}

// TestWriteHeadKnownSameAsWrite: writeRequest with the bytes of an earlier
// request reused writes what writeRequestAll writes, through repeated requests
// and changes of method, target, lines, Host, address and TLS, with and
// without X-Forwarded-For and Connection-named fields, into a writer with
// little room.
func TestWriteHeadKnownSameAsWrite(t *testing.T) {
	reqs := []string{
		benchRequest,
		benchRequest,
		strings.Replace(benchRequest, "/product/42", "/product/43", 1),
		strings.Replace(benchRequest, "GET", "HEAD", 1),
		strings.Replace(benchRequest, "Accept: */*", "Accept: text/html", 1),
		strings.Replace(benchRequest, "shop.example", "shop.example:8080", 1),
		strings.Replace(benchRequest, "X-Forwarded-For: 198.51.100.1\r\n", "", 1),
		strings.Replace(benchRequest, "Cookie: session=abc\r\n", "Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nCookie: session=abc\r\n", 1),
		strings.Replace(benchRequest, "Cookie: session=abc\r\n", "X-Forwarded-For: 203.0.113.9\r\nForwarded: for=1.2.3.4\r\nCookie: session=abc\r\n", 1),
		strings.Replace(benchRequest, "Accept: */*", "Accept:*/*", 1),
		strings.Replace(benchRequest, "HTTP/1.1", "HTTP/1.0", 1),
		"GET / HTTP/1.0\r\nUser-Agent: x\r\n\r\n",
		strings.Replace(benchRequest, "User-Agent: bench", "User-Agent: "+strings.Repeat("b", 3000), 1),
	}
	ip0, ip1, ip2 := []byte("192.0.2.1"), []byte("192.0.2.10"), []byte("2001:db8::1")
	// Repeats, then the address alone or TLS alone changing.
	peers := []struct {
		ip  []byte
		tls bool
	}{{ip0, false}, {ip0, false}, {ip0, true}, {ip0, true}, {ip1, true}, {ip1, true}, {ip1, false}, {ip2, false}, {ip2, true}}
	for round := 0; round < 2; round++ {
		for i, raw := range reqs {
			for rep, peer := range peers {
				var req fasthttp.Request
				if err := req.Header.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				o := &outbound{peerIP: peer.ip, tls: peer.tls, host: []byte("backend:80")}
				var got, want bytes.Buffer
				gw, ww := bufio.NewWriterSize(&got, 4096), bufio.NewWriterSize(&want, 4096)
				gw.WriteString(strings.Repeat("p", 1000)) // not at the start of the buffer
				ww.WriteString(strings.Repeat("p", 1000))
				if err := writeRequest(gw, &req, o); err != nil {
					t.Fatal(err)
				}
				if err := writeRequestAll(ww, &req, o); err != nil {
					t.Fatal(err)
				}
				gw.Flush()
				ww.Flush()
				if !bytes.Equal(got.Bytes(), want.Bytes()) {
					t.Fatalf("request %d, peer %d:\ngot  %q\nwant %q", i, rep, got.Bytes()[1000:], want.Bytes()[1000:])
				}
			}
		}
	}
}
