package proxy

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

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
