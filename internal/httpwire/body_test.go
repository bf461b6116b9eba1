package httpwire

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http/httputil"
	"strings"
	"testing"
)

// FuzzChunkedBody: the backend body decoder never panics or reads past the body;
// a body it accepts, Go's own chunked reader accepts with the same bytes, and
// re-chunked it decodes the same. Seeds: testdata/fuzz/FuzzChunkedBody.
func FuzzChunkedBody(f *testing.F) {
	f.Add([]byte("2\r\nok\r\n0\r\n\r\nNEXT"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 1<<16 {
			return
		}
		br := bufio.NewReaderSize(bytes.NewReader(raw), 8192)
		var r BodyReader
		r.Reset(br, BodyChunked, 0)
		got, err := io.ReadAll(&r)
		if err != nil {
			if r.Complete() {
				t.Fatalf("failed (%v) but complete", err)
			}
			return
		}
		if !r.Complete() {
			t.Fatal("ended without the last chunk")
		}
		rest, _ := io.ReadAll(br)
		consumed := raw[:len(raw)-len(rest)]
		if !bytes.HasSuffix(consumed, []byte("\r\n\r\n")) && !bytes.Equal(consumed, []byte("0\r\n\r\n")) {
			t.Fatalf("body accepted without CRLF CRLF at its end: %q", consumed)
		}
		// Go's reader (which stops at the last chunk, before trailers).
		ref, rerr := io.ReadAll(httputil.NewChunkedReader(bufio.NewReaderSize(bytes.NewReader(consumed), 1<<17)))
		if rerr != nil && !strings.Contains(rerr.Error(), "too long") {
			t.Fatalf("accepted a body Go's chunked reader refuses (%v): %q", rerr, consumed)
		}
		if rerr == nil && !bytes.Equal(ref, got) {
			t.Fatalf("decoded %q, Go's reader %q", got, ref)
		}
		// Round trip.
		var enc bytes.Buffer
		if len(got) > 0 {
			fmt.Fprintf(&enc, "%x\r\n%s\r\n", len(got), got)
		}
		enc.WriteString("0\r\n\r\n")
		var r2 BodyReader
		r2.Reset(bufio.NewReader(&enc), BodyChunked, 0)
		again, err := io.ReadAll(&r2)
		if err != nil || !bytes.Equal(again, got) {
			t.Fatalf("re-chunked body decodes to %q (%v), want %q", again, err, got)
		}
	})
}
