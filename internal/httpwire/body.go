package httpwire

import (
	"bufio"
	"errors"
	"io"
)

// A backend's response body is decoded here rather than by fasthttp's response
// stream, which ends a chunked body that the backend cut short as if it were
// complete (its stream reports io.EOF when the connection closes mid-chunk), and
// so relayed a truncated body with a last chunk, and let the cache store it.
// This decoder is strict in what ends a body: only the exact framing does;
// anything else is an error, and the proxy's relay then closes the client
// connection without a last chunk.

// Errors of a body read by BodyReader. The proxy answers a backend's with 502
// when nothing was sent yet.
var (
	ErrBadChunk     = errors.New("httpwire: malformed chunked body")
	ErrBodyTooShort = errors.New("httpwire: body cut short")
)

// BodyMode is the framing of a response body (RFC 9112 §6.3).
type BodyMode uint8

// Body framings of a response.
const (
	BodyNone    BodyMode = iota // HEAD, 1xx, 204, 304: no body whatever the fields say
	BodyFixed                   // Content-Length
	BodyChunked                 // Transfer-Encoding: chunked
	BodyToClose                 // neither: the body ends when the sender closes
)

// States of the chunked decoder.
const (
	chunkSize    = iota // before a chunk-size line
	chunkData           // inside chunk data
	chunkEnd            // after chunk data: CRLF expected
	chunkTrailer        // after the last chunk: trailer lines until an empty one
	chunkDone
)

// maxTrailerBytes bounds the trailer section of a chunked body, which is read and
// dropped (trailers are not forwarded).
const maxTrailerBytes = 16 << 10

// maxChunkSizeDigits bounds a chunk-size: 15 hex digits stay far below int64 overflow.
const maxChunkSizeDigits = 15

// BodyReader reads one response body from br, the connection's reader, and
// never reads past its end. Embedded in a connection's state, starting one
// (Reset) allocates nothing. The zero BodyReader is an empty body.
type BodyReader struct {
	br      *bufio.Reader
	mode    BodyMode
	state   uint8
	left    int64 // BodyFixed: bytes left in the body; BodyChunked: in the chunk
	trailer int   // trailer bytes seen
	err     error // sticky: io.EOF at the end of the body, or the failure
}

// Reset starts the body of framing mode on br; n is the Content-Length of a
// BodyFixed body.
func (r *BodyReader) Reset(br *bufio.Reader, mode BodyMode, n int64) {
	*r = BodyReader{br: br, mode: mode, left: n}
	if mode == BodyNone || (mode == BodyFixed && n == 0) {
		r.err = io.EOF
	}
}

// Complete reports whether the body was read to its exact end.
func (r *BodyReader) Complete() bool { return r.err == io.EOF }

// Mode returns the body's framing.
func (r *BodyReader) Mode() BodyMode { return r.mode }

// Remaining returns the bytes of a BodyFixed body not read yet.
func (r *BodyReader) Remaining() int64 { return r.left }

func (r *BodyReader) fail(err error) error {
	if err == io.EOF || err == bufio.ErrBufferFull {
		if err == io.EOF {
			err = ErrBodyTooShort
		} else {
			err = ErrBadChunk
		}
	}
	r.err = err
	return err
}

// Read reads the body; io.EOF comes only at its exact end.
func (r *BodyReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	switch r.mode {
	case BodyFixed:
		if int64(len(p)) > r.left {
			p = p[:r.left]
		}
		n, err := r.br.Read(p)
		r.left -= int64(n)
		if r.left == 0 {
			r.err = io.EOF // reported by the next call
			return n, nil
		}
		if err != nil {
			return n, r.fail(err)
		}
		return n, nil
	case BodyNone:
		return 0, io.EOF // a zero BodyReader too
	case BodyToClose:
		n, err := r.br.Read(p)
		if err != nil {
			r.err = err
			if err == io.EOF && n > 0 {
				return n, nil
			}
		}
		return n, err
	}
	return r.readChunked(p)
}

func (r *BodyReader) readChunked(p []byte) (int, error) {
	for {
		switch r.state {
		case chunkSize:
			line, err := r.br.ReadSlice('\n')
			if err != nil {
				return 0, r.fail(err)
			}
			size, ok := ParseChunkSizeLine(line)
			if !ok {
				return 0, r.fail(ErrBadChunk)
			}
			if size == 0 {
				r.state = chunkTrailer
				continue
			}
			r.left, r.state = size, chunkData
		case chunkData:
			q := p
			if int64(len(q)) > r.left {
				q = q[:r.left]
			}
			n, err := r.br.Read(q)
			r.left -= int64(n)
			if r.left == 0 {
				r.state = chunkEnd
			}
			if n > 0 {
				return n, nil
			}
			if err == nil {
				err = io.ErrNoProgress
			}
			return 0, r.fail(err)
		case chunkEnd:
			cr, err := r.br.ReadByte()
			if err != nil {
				return 0, r.fail(err)
			}
			lf, err := r.br.ReadByte()
			if err != nil {
				return 0, r.fail(err)
			}
			if cr != '\r' || lf != '\n' {
				return 0, r.fail(ErrBadChunk)
			}
			r.state = chunkSize
		case chunkTrailer:
			line, err := r.br.ReadSlice('\n')
			if err != nil {
				return 0, r.fail(err)
			}
			if r.trailer += len(line); r.trailer > maxTrailerBytes || !validTrailerLine(line) {
				return 0, r.fail(ErrBadChunk)
			}
			if len(line) == 2 {
				r.state, r.err = chunkDone, io.EOF
				return 0, io.EOF
			}
		default:
			return 0, io.EOF
		}
	}
}

// ParseChunkSizeLine parses "chunk-size [ chunk-ext ] CRLF" (RFC 9112 §7.1).
// Extensions are checked for control characters and ignored.
func ParseChunkSizeLine(line []byte) (int64, bool) {
	n := len(line)
	if n < 3 || line[n-2] != '\r' {
		return 0, false // bare LF, or no digits
	}
	line = line[:n-2]
	var size int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			goto ext
		}
		if i == maxChunkSizeDigits {
			return 0, false
		}
		size = size<<4 | int64(d)
	}
ext:
	if i == 0 {
		return 0, false
	}
	// No whitespace before an extension (RFC 9112 allows BWS there; Go's
	// chunked reader does not, so no backend worth the name sends it).
	rest := line[i:]
	if len(rest) == 0 {
		return size, true
	}
	if rest[0] != ';' {
		return 0, false
	}
	for _, c := range rest {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return 0, false
		}
	}
	return size, true
}

// validTrailerLine: a line ended by CRLF, with no other CR or LF and no NUL, and
// not an obs-fold continuation.
func validTrailerLine(line []byte) bool {
	n := len(line)
	if n < 2 || line[n-2] != '\r' {
		return false
	}
	if n > 2 && (line[0] == ' ' || line[0] == '\t') {
		return false
	}
	for _, c := range line[:n-2] {
		if c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
}
