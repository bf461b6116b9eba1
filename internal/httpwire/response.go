package httpwire

import (
	"bufio"
	"bytes"
	"errors"
)

// Errors of a response head. The proxy answers a backend's with 502.
var (
	ErrNotHTTP1  = errors.New("httpwire: response is not HTTP/1.0 or HTTP/1.1")
	ErrBadStatus = errors.New("httpwire: response status out of range")
)

// ValidVersion reports whether proto is "HTTP/1.1" or "HTTP/1.0", the versions
// floodgate speaks in both directions.
func ValidVersion(proto []byte) bool {
	return string(proto) == "HTTP/1.1" || string(proto) == "HTTP/1.0"
}

// ValidStatus reports whether code is a status a response may carry: 100-599.
func ValidStatus(code int) bool { return code >= 100 && code <= 599 }

// CheckStatusDigit refuses a status line whose code does not start with 1-5 before
// fasthttp parses it: fasthttp reads "000" as status 0 and then reports it as 200.
// It waits for no more than the parser would: up to the first 12 bytes, or the
// end of a shorter first line, which it leaves to the parser to refuse.
func CheckStatusDigit(br *bufio.Reader) error {
	const n = len("HTTP/1.1 200")
	for want := 1; ; {
		if _, err := br.Peek(want); err != nil {
			return nil // the parser says why
		}
		b, _ := br.Peek(min(br.Buffered(), n))
		if len(b) < n {
			if bytes.IndexByte(b, '\n') >= 0 {
				return nil
			}
			want = min(br.Buffered()+1, n)
			continue
		}
		if string(b[:7]) != "HTTP/1." || b[8] != ' ' {
			return nil
		}
		if c := b[9]; c < '1' || c > '5' {
			return ErrBadStatus
		}
		return nil
	}
}

// ResponseBody decides how the body of a final response is framed (RFC 9112
// §6.3) from the request's method (head), the status and the Content-Length as
// fasthttp parsed it (n >= 0: the length; -1: chunked; -2: neither): BodyNone
// for HEAD, 204 and 304 whatever the fields say; else BodyFixed with the
// length, BodyChunked, or BodyToClose.
func ResponseBody(head bool, status, contentLength int) (BodyMode, int64) {
	if head || status == 204 || status == 304 {
		return BodyNone, 0
	}
	switch cl := contentLength; {
	case cl >= 0:
		return BodyFixed, int64(cl)
	case cl == -1:
		return BodyChunked, 0
	default:
		return BodyToClose, 0
	}
}

// FirstChunkValid checks the first chunk-size line when it has already arrived
// with the head (it does not wait for it: a stream may send its first chunk much
// later).
func FirstChunkValid(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return true
	}
	_, ok := ParseChunkSizeLine(b[:i+1])
	return ok
}
