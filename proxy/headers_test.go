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
