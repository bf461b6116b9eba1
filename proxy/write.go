package proxy

import (
	"bufio"
	"io"
	"net"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/internal/httpwire"
)

// The request to the backend is written here, from the header lines exactly as the
// client sent them (RequestHeader.RawHeaders, already validated), rather than by
// fasthttp's serialiser: fasthttp deletes headers by swapping with the last one,
// which reorders fields, and rebuilds names and the Host. Copying validated lines
// keeps names, case, order and duplicates byte for byte, as HAProxy does, and costs
// less than a parse-modify-serialise round trip.

// framing is what validation learned about a request's head
// (httpwire.ValidateHeaders), with what handle decided on top of it.
type framing struct {
	httpwire.RequestHead
	rehost bool // absolute-form with another authority than the Host line: write the parsed header
}

// outbound is what writeRequest needs besides the request itself.
type outbound struct {
	fr      framing
	peer    net.Addr
	peerIP  []byte // peer's IP as text when already known (the client conn caches it); nil = from peer
	tls     bool
	host    []byte // Host to add when the client sent none (HTTP/1.0)
	upgrade []byte // Upgrade value to keep for a protocol switch (WebSocket)
	parsed  bool   // write from fasthttp's parsed header (edited by the cache), not the raw lines
	copyBuf []byte // body copy buffer
	// interim receives the backend's interim responses (103 Early Hints) for the
	// client; nil drops them. Set only when the client speaks HTTP/1.1 and
	// nothing of an earlier response waits in fasthttp's write buffer.
	interim io.Writer
}

// writeRequest writes the request line, the client's end-to-end header lines, the
// X-Forwarded-* fields, the framing header and the body to bw. It does not flush.
func writeRequest(bw *bufio.Writer, req *fasthttp.Request, o *outbound) error {
	h := &req.Header
	bw.Write(h.Method())
	bw.WriteByte(' ')
	bw.Write(h.RequestURI())
	bw.WriteString(" HTTP/1.1\r\n")

	raw := h.RawHeaders()
	var xff bool
	if o.parsed {
		writeParsedHeader(bw, h)
		xff = httpwire.Has(raw, "x-forwarded-for")
	} else {
		xff = writeRawHeader(bw, raw)
	}
	if len(h.Host()) == 0 {
		bw.WriteString("Host: ")
		bw.Write(o.host)
		bw.WriteString("\r\n")
	}
	bw.WriteString("X-Forwarded-For: ")
	if xff {
		// Several lines are one list (RFC 9110 §5.3): join them in order.
		for it := httpwire.Fields(raw); ; {
			name, value, ok := it.Next()
			if !ok {
				break
			}
			if httpwire.EqualFold(name, "x-forwarded-for") {
				bw.Write(value)
				bw.WriteString(", ")
			}
		}
	}
	if o.peerIP != nil {
		bw.Write(o.peerIP)
	} else {
		bw.Write(appendAddr(bw.AvailableBuffer(), o.peer))
	}
	if o.tls {
		bw.WriteString("\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: ")
	} else {
		bw.WriteString("\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: ")
	}
	bw.Write(h.Host())
	bw.WriteString("\r\n")
	if o.upgrade != nil {
		bw.WriteString("Connection: Upgrade\r\nUpgrade: ")
		bw.Write(o.upgrade)
		bw.WriteString("\r\n")
	}

	switch {
	case o.fr.Chunked:
		bw.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		return writeChunked(bw, req, o.copyBuf)
	case o.fr.ContentLength:
		bw.WriteString("Content-Length: ")
		n := h.ContentLength()
		bw.Write(fasthttp.AppendUint(bw.AvailableBuffer(), n))
		bw.WriteString("\r\n\r\n")
		return writeFixed(bw, req, int64(n), o.copyBuf)
	default:
		_, err := bw.WriteString("\r\n")
		return err
	}
}

// writeRawHeader copies the client's end-to-end header lines, as sent, and
// reports whether they have an X-Forwarded-For, found on the way rather than by
// a walk of its own (httpwire.Has).
func writeRawHeader(bw *bufio.Writer, raw []byte) (xff bool) {
	// First pass: what Connection names. A fixed array keeps this on the stack;
	// more than eight tokens is abuse, and the extra ones are still removed by
	// the slow check below.
	var connBuf [8][]byte
	connection, overflow := connBuf[:0], false
	for it := httpwire.Fields(raw); ; {
		name, value, ok := it.Next()
		if !ok {
			break
		}
		if httpwire.EqualFold(name, "connection") {
			var o bool
			connection, o = httpwire.AppendTokens(connection, value)
			overflow = overflow || o
		} else if !xff && httpwire.EqualFold(name, "x-forwarded-for") {
			xff = true
		}
	}
	// Second pass: copy what goes through.
	for it := httpwire.Fields(raw); ; {
		name, value, ok := it.Next()
		if !ok {
			break
		}
		if httpwire.IsHopByHop(name) || isFramingOrForwarded(name) || httpwire.NamedIn(connection, name) ||
			(overflow && httpwire.ConnectionNames(raw, name)) {
			continue
		}
		bw.Write(name)
		bw.WriteString(": ")
		bw.Write(value)
		bw.WriteString("\r\n")
	}
	return xff
}

// writeParsedHeader writes the end-to-end fields of fasthttp's parsed header. Used
// for requests the cache built or edited (a revalidation with If-None-Match);
// fasthttp lists Host, Content-Type, User-Agent and Cookie first.
func writeParsedHeader(bw *bufio.Writer, h *fasthttp.RequestHeader) {
	var connBuf [8][]byte
	connection, overflow := httpwire.AppendListsTokens(connBuf[:0], h.PeekAll("Connection"))
	for name, value := range h.All() {
		// Past eight tokens, the slow check: a field Connection names must
		// not reach the backend, or the cache's Vary key (CacheForwarded,
		// which reads every token) would say it was absent.
		if httpwire.IsHopByHop(name) || isFramingOrForwarded(name) || httpwire.NamedIn(connection, name) ||
			(overflow && namedInParsed(h, name)) {
			continue
		}
		bw.Write(name)
		bw.WriteString(": ")
		bw.Write(value)
		bw.WriteString("\r\n")
	}
}

// namedInParsed reports whether any Connection field of h names name.
// It does not iterate h.All, which rewrites the Cookie buffer its caller's
// iteration may be holding.
func namedInParsed(h *fasthttp.RequestHeader, name []byte) bool {
	for _, v := range h.PeekAll("Connection") {
		if httpwire.ListHas(v, name) {
			return true
		}
	}
	return false
}

// isFramingOrForwarded: fields the proxy writes itself, and the client's
// Forwarded (RFC 7239), which says what the X-Forwarded-* fields say and which
// frameworks that read it prefer to them: floodgate does not write one, so a
// client's would stand beside floodgate's own word (as net/http/httputil's
// ReverseProxy, floodgate removes it).
func isFramingOrForwarded(name []byte) bool {
	switch name[0] | 0x20 {
	case 'c':
		return httpwire.EqualFold(name, "content-length")
	case 'f':
		return httpwire.EqualFold(name, "forwarded")
	case 'x':
		return httpwire.EqualFold(name, "x-forwarded-for") || httpwire.EqualFold(name, "x-forwarded-proto") ||
			httpwire.EqualFold(name, "x-forwarded-host")
	}
	return false
}

// writeFixed copies exactly n body bytes.
func writeFixed(bw *bufio.Writer, req *fasthttp.Request, n int64, buf []byte) error {
	if !req.IsBodyStream() {
		_, err := bw.Write(req.Body())
		return err
	}
	r := req.BodyStream()
	for n > 0 {
		p := buf
		if int64(len(p)) > n {
			p = p[:n]
		}
		m, err := r.Read(p)
		if m > 0 {
			if _, werr := bw.Write(p[:m]); werr != nil {
				return werr
			}
			n -= int64(m)
		}
		if err == io.EOF && n == 0 {
			break
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return &clientBodyError{err}
		}
	}
	return nil
}

// writeChunked re-chunks the decoded body stream; chunk extensions and trailers
// are not forwarded.
func writeChunked(bw *bufio.Writer, req *fasthttp.Request, buf []byte) error {
	var r io.Reader
	if req.IsBodyStream() {
		r = req.BodyStream()
	} else {
		body := req.Body()
		if len(body) > 0 {
			writeChunk(bw, body)
		}
		_, err := bw.WriteString("0\r\n\r\n")
		return err
	}
	for {
		m, err := r.Read(buf)
		if m > 0 {
			if werr := writeChunk(bw, buf[:m]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			_, err = bw.WriteString("0\r\n\r\n")
			return err
		}
		if err != nil {
			return &clientBodyError{err}
		}
	}
}

func writeChunk(bw *bufio.Writer, p []byte) error {
	bw.Write(appendHex(bw.AvailableBuffer(), uint64(len(p))))
	bw.WriteString("\r\n")
	bw.Write(p)
	_, err := bw.WriteString("\r\n")
	return err
}

func appendHex(dst []byte, n uint64) []byte {
	const digits = "0123456789abcdef"
	if n == 0 {
		return append(dst, '0')
	}
	var b [16]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = digits[n&15]
		n >>= 4
	}
	return append(dst, b[i:]...)
}
