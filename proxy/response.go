package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/internal/httpwire"
)

// Errors of a backend's response head. Each maps to 502 (errors.go's default).
var (
	errUnaskedSwitch = errors.New("proxy: backend response switched protocols unasked")
	errInterimFlood  = errors.New("proxy: backend sent too many interim responses")
	errAfterInterim  = errors.New("proxy: backend closed after an interim response")
)

// maxInterim bounds the interim (1xx) responses before the final one: a backend
// that sends them without end would hold the request (and the client) forever.
const maxInterim = 8

// readResponseHead reads the head of the backend's final response into resp and
// decides how its body is framed (httpwire.ResponseBody), from the fields as
// fasthttp parsed them (it refuses a bad or duplicate Content-Length, and lets
// chunked win over Content-Length). Interim responses are written to o.interim when it is set, 100
// Continue excepted: fasthttp's server answers Expect itself. A response that is
// not HTTP/1.x, a status outside 100-599, or a 101 (roundTrip never asks for an
// upgrade: tunnel.go does, on its own connection) is an error.
func readResponseHead(br *bufio.Reader, resp *fasthttp.Response, head bool, o *outbound) (mode httpwire.BodyMode, n int64, err error) {
	h := &resp.Header
	for interim := 0; ; interim++ {
		if err := httpwire.CheckStatusDigit(br); err != nil {
			return 0, 0, err
		}
		if err := h.Read(br); err != nil {
			if interim > 0 && (errors.Is(err, io.EOF) || isReset(err)) {
				return 0, 0, errAfterInterim
			}
			return 0, 0, err
		}
		if !httpwire.ValidVersion(h.Protocol()) {
			return 0, 0, httpwire.ErrNotHTTP1
		}
		code := h.StatusCode()
		if !httpwire.ValidStatus(code) {
			return 0, 0, httpwire.ErrBadStatus
		}
		if code >= 200 {
			break
		}
		if code == fasthttp.StatusSwitchingProtocols {
			return 0, 0, errUnaskedSwitch
		}
		if interim == maxInterim {
			return 0, 0, errInterimFlood
		}
		if code != fasthttp.StatusContinue && o != nil && o.interim != nil {
			// A failed write is the client's business: the final answer
			// will fail the same way.
			_, _ = o.interim.Write(appendInterimHead(nil, h))
		}
	}
	mode, n = httpwire.ResponseBody(head, h.StatusCode(), h.ContentLength())
	return mode, n, nil
}

// appendInterimHead appends an interim response head for the client: the
// backend's status and its end-to-end fields. Interim answers are rare; this may
// allocate.
func appendInterimHead(dst []byte, src *fasthttp.ResponseHeader) []byte {
	var connBuf [8][]byte
	connection, _ := httpwire.AppendListsTokens(connBuf[:0], src.PeekAll("Connection"))
	code := src.StatusCode()
	dst = append(dst, "HTTP/1.1 "...)
	dst = fasthttp.AppendUint(dst, code)
	dst = append(dst, ' ')
	dst = append(dst, fasthttp.StatusMessage(code)...)
	dst = append(dst, "\r\n"...)
	for k, v := range src.All() {
		if httpwire.IsHopByHop(k) || httpwire.NamedIn(connection, k) || httpwire.EqualFold(k, "content-length") || httpwire.EqualFold(k, "content-type") {
			continue
		}
		dst = append(dst, k...)
		dst = append(dst, ": "...)
		dst = append(dst, v...)
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// closeDelimited makes a streamed body of unknown length reach an HTTP/1.0 client,
// which does not know chunked coding (RFC 9112 §7.1), as a body delimited by
// closing the connection: fasthttp would write it chunked, so the connection is
// hijacked and the head and body written here. Rare; this allocates.
func closeDelimited(ctx *fasthttp.RequestCtx) {
	resp := &ctx.Response
	if !resp.IsBodyStream() || resp.Header.ContentLength() >= 0 {
		return
	}
	resp.Header.SetContentLength(-2) // and Connection: close
	resp.Header.Del("Transfer-Encoding")
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		if _, err := c.Write(resp.Header.Header()); err == nil {
			buf := make([]byte, 32<<10)
			_, _ = io.CopyBuffer(writerOnly{c}, resp.BodyStream(), buf)
		}
		_ = resp.CloseBodyStream()
	})
}

// writerOnly hides a ReaderFrom from io.CopyBuffer, which would otherwise skip buf.
type writerOnly struct{ io.Writer }

// resetForCopy resets dst for copyResponseHeader and gives it the origin's Date
// when src has one (RFC 9110 §6.6.1: a proxy forwards it; only a response
// without one gets the proxy's clock). fasthttp treats Date as its own field: it
// drops a Date set through its API and writes the current time, unless the
// header has NoDefaultDate, which only its server can set. So a header is made
// from a template that has it (noDateHeader), and the origin's Date is put in by
// parsing it, the one way a Date field reaches a fasthttp header.
//
// Parsing a head costs as much as the rest of the copy, and the origin's Date
// changes once a second: each pooled dateParser keeps the header it made for the
// last Date it saw (tmpl), and dst is a copy of it while the Date is the same.
func resetForCopy(dst, src *fasthttp.ResponseHeader) {
	date := src.Peek("Date")
	if len(date) == 0 {
		// Names keep their case (normalizing is off): "date" is a Date too.
		for k, v := range src.All() {
			if httpwire.EqualFold(k, "date") {
				date = v
				break
			}
		}
	}
	if len(date) == 0 || noDateHeader == nil {
		dst.Reset()
		return
	}
	dp := dateParsers.Get().(*dateParser)
	if !dp.made || string(dp.date) != string(date) {
		dp.make(date)
	}
	if dp.parsed {
		dp.tmpl.CopyTo(dst)
	} else {
		dst.Reset() // a Date too long for the parser's buffer: ours instead
	}
	dateParsers.Put(dp)
}

type dateParser struct {
	buf []byte
	rd  bytes.Reader
	br  *bufio.Reader

	// tmpl is the header made for date: noDateHeader with the Date field,
	// valid when parsed (made: date and parsed are set).
	tmpl   fasthttp.ResponseHeader
	date   []byte
	made   bool
	parsed bool
}

// make parses date into tmpl.
func (dp *dateParser) make(date []byte) {
	dp.date = append(dp.date[:0], date...)
	dp.made = true
	noDateHeader.CopyTo(&dp.tmpl)
	dp.buf = append(append(append(dp.buf[:0], "HTTP/1.1 200 OK\r\nDate: "...), date...), "\r\n\r\n"...)
	dp.rd.Reset(dp.buf)
	dp.br.Reset(&dp.rd)
	h := &dp.tmpl
	if dp.parsed = h.Read(dp.br) == nil; dp.parsed {
		// Undo what parsing a head without a length implies: a body read
		// until close.
		h.ResetConnectionClose()
		h.Del("Content-Length")
		h.SetStatusMessage(nil) // the standard reason of the status set next
		h.SetProtocol(nil)
	}
}

var dateParsers = sync.Pool{New: func() any {
	dp := &dateParser{buf: make([]byte, 0, 256)}
	dp.br = bufio.NewReaderSize(&dp.rd, 256)
	return dp
}}

// noDateHeader is an empty response header with fasthttp's NoDefaultDate set,
// taken from a fasthttp server (the only place that sets it) serving one request
// in memory at start-up. nil if that failed: then the proxy's Date is written.
var noDateHeader = func() *fasthttp.ResponseHeader {
	var h *fasthttp.ResponseHeader
	srv := &fasthttp.Server{NoDefaultDate: true, Handler: func(ctx *fasthttp.RequestCtx) {
		h = new(fasthttp.ResponseHeader)
		ctx.Response.Header.CopyTo(h)
	}}
	_ = srv.ServeConn(&memConn{in: strings.NewReader("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")})
	return h
}()

// memConn is a net.Conn that reads from in and discards writes.
type memConn struct{ in io.Reader }

func (m *memConn) Read(p []byte) (int, error)       { return m.in.Read(p) }
func (m *memConn) Write(p []byte) (int, error)      { return len(p), nil }
func (m *memConn) Close() error                     { return nil }
func (m *memConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (m *memConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (m *memConn) SetDeadline(time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(time.Time) error { return nil }
