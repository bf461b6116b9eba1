package proxy

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/internal/httpwire"
)

// FuzzResponseHead: what the proxy accepts as a backend's response head is HTTP/1.x
// with a final status and exactly one body framing; the interim heads it passes on
// and the head it writes for the client parse back as what they claim, with no
// hop-by-hop field, and keep the origin's Date. Seeds: testdata/fuzz/FuzzResponseHead.
func FuzzResponseHead(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), false)
	f.Fuzz(func(t *testing.T, raw []byte, head bool) {
		if len(raw) > 1<<16 {
			return
		}
		var interim bytes.Buffer
		resp := new(fasthttp.Response)
		resp.Header.SetNoDefaultContentType(true)
		resp.Header.DisableNormalizing()
		rd := bytes.NewReader(raw)
		br := bufio.NewReaderSize(rd, 8192)
		mode, n, err := readResponseHead(br, resp, head, &outbound{interim: &interim})
		checkInterim(t, interim.Bytes())
		if err != nil {
			return
		}
		h := &resp.Header
		if p := string(h.Protocol()); p != "HTTP/1.1" && p != "HTTP/1.0" {
			t.Fatalf("accepted protocol %q", p)
		}
		code := h.StatusCode()
		if code < 200 || code > 599 {
			t.Fatalf("accepted final status %d", code)
		}
		switch {
		case head || code == 204 || code == 304:
			if mode != httpwire.BodyNone {
				t.Fatalf("status %d head=%v framed as %d", code, head, mode)
			}
		case mode == httpwire.BodyFixed:
			if n < 0 || int64(h.ContentLength()) != n {
				t.Fatalf("fixed body of %d, Content-Length %d", n, h.ContentLength())
			}
		case mode == httpwire.BodyChunked:
			if h.ContentLength() != -1 {
				t.Fatalf("chunked with Content-Length %d", h.ContentLength())
			}
		case mode == httpwire.BodyToClose:
			if h.ContentLength() != -2 {
				t.Fatalf("read-to-close with Content-Length %d", h.ContentLength())
			}
		default:
			t.Fatalf("no framing for status %d: mode %d", code, mode)
		}
		// The body decoder never reads past the body, whatever follows.
		if mode == httpwire.BodyFixed || mode == httpwire.BodyChunked {
			var r httpwire.BodyReader
			r.Reset(br, mode, n)
			before := br.Buffered() + rd.Len()
			got, err := io.ReadAll(&r)
			consumed := before - br.Buffered() - rd.Len()
			if err == nil && mode == httpwire.BodyFixed && (int64(len(got)) != n || int64(consumed) != n) {
				t.Fatalf("fixed body of %d: got %d, consumed %d", n, len(got), consumed)
			}
			if err == nil && mode == httpwire.BodyChunked {
				if body := raw[len(raw)-before : len(raw)-before+consumed]; !bytes.HasSuffix(body, []byte("\r\n\r\n")) {
					t.Fatalf("chunked body ended without CRLF CRLF: %q", body)
				}
			}
		}
		// The head written for the client.
		var out fasthttp.ResponseHeader
		out.SetNoDefaultContentType(true)
		copyResponseHeader(&out, h)
		wire := out.Header()
		var back fasthttp.ResponseHeader
		back.DisableNormalizing()
		bbr := bufio.NewReader(bytes.NewReader(wire))
		if err := back.Read(bbr); err != nil {
			t.Fatalf("head for the client does not parse: %v\n%q", err, wire)
		}
		if bbr.Buffered() != 0 {
			t.Fatalf("head for the client has %d bytes over:\n%q", bbr.Buffered(), wire)
		}
		if back.StatusCode() != code {
			t.Fatalf("status %d became %d", code, back.StatusCode())
		}
		checkNoHop(t, wire)
		// The Date as forwarded is the origin's less trailing whitespace.
		if d := bytes.TrimRight(originDate(h), " \t"); len(d) > 0 && len(d) < 200 && !bytes.Contains(wire, append([]byte("\r\nDate: "), d...)) {
			t.Fatalf("origin Date %q not forwarded:\n%q", d, wire)
		}
		if n := bytes.Count(bytes.ToLower(wire), []byte("\r\ndate:")); n != 1 {
			t.Fatalf("%d Date fields:\n%q", n, wire)
		}
	})
}

func originDate(h *fasthttp.ResponseHeader) []byte {
	for k, v := range h.All() {
		if httpwire.EqualFold(k, "date") {
			return v
		}
	}
	return nil
}

// checkInterim: the interim heads passed on parse back one by one as 1xx (not 100,
// not 101) without hop-by-hop fields, and nothing is left over.
func checkInterim(t *testing.T, b []byte) {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(b))
	for br.Buffered() > 0 || len(b) > 0 {
		if _, err := br.Peek(1); err != nil {
			return
		}
		start := len(b) - br.Buffered()
		var h fasthttp.ResponseHeader
		h.DisableNormalizing()
		if err := h.Read(br); err != nil {
			t.Fatalf("interim head does not parse: %v\n%q", err, b)
		}
		if c := h.StatusCode(); c < 102 || c > 199 {
			t.Fatalf("interim status %d passed on:\n%q", c, b)
		}
		checkNoHop(t, b[start:len(b)-br.Buffered()])
	}
}

func checkNoHop(t *testing.T, wire []byte) {
	t.Helper()
	for _, line := range strings.Split(string(wire), "\r\n")[1:] {
		name, _, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if httpwire.IsHopByHop([]byte(name)) && !httpwire.EqualFold([]byte(name), "transfer-encoding") && !(httpwire.EqualFold([]byte(name), "connection") && strings.TrimSpace(line[len(name)+1:]) == "close") {
			t.Fatalf("hop-by-hop field %q passed on:\n%q", name, wire)
		}
	}
}
