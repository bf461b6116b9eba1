package proxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"

	"github.com/floodgate/floodgate/internal/httpwire"
)

// headWatch follows the bytes of a request head as they are read from the client,
// for two answers fasthttp cannot give:
//
//   - A head whose lines end with bare LFs: fasthttp waits for the CRLFCRLF that
//     ends a head, which never comes, so the client would get nothing until the
//     header timeout. A bare LF after the request line (RFC 9112 §2.2 lets it
//     end the request line, and fasthttp accepts it there) fails the read at
//     once with errBareLF, which parseError answers with 400.
//   - A head over max_header_bytes: fasthttp reports the same error whether the
//     request line or the header fields are too long; lineOpen tells them apart
//     (414 or 431).
//
// Only what certainly is the start of a head is watched: the connection's first
// bytes, and the bytes after a request whose body was read whole (rearm). The
// first line must look like a request line (a token, and "HTTP/1.x" before its
// LF), or the watch gives up for this request: the bytes could be a pipelined
// request's body. The last bytes of each read are kept (tail), so a head that
// arrives in pieces, down to one byte per read, is judged as if it came whole.
// The scan jumps from LF to LF and allocates nothing.
type headWatch struct {
	armed   bool // the next byte read starts a request head
	started bool // ... it did, and looks like a request line
	line    bool // the request line's LF was seen
	done    bool // the head's end was seen, or the watch gave up
	nt      int  // bytes held in tail
	// tail holds the last bytes scanned before the current read, the most
	// recent last: enough to see "HTTP/1.x\r" before an LF at a read's start.
	tail [9]byte
}

// before returns the byte back positions before p[k] (back >= 1), from p or
// from the bytes of earlier reads; ok is false when it was not seen.
func (w *headWatch) before(p []byte, k, back int) (c byte, ok bool) {
	if i := k - back; i >= 0 {
		return p[i], true
	}
	j := back - k // 1 is the last byte of the previous read
	if j > w.nt {
		return 0, false
	}
	return w.tail[len(w.tail)-j], true
}

// keep appends the end of p to tail.
func (w *headWatch) keep(p []byte) {
	n := len(w.tail)
	if len(p) >= n {
		copy(w.tail[:], p[len(p)-n:])
		w.nt = n
		return
	}
	copy(w.tail[:], w.tail[len(p):])
	copy(w.tail[n-len(p):], p)
	w.nt = min(n, w.nt+len(p))
}

// errBareLF fails the read of a head with a bare LF line ending.
var errBareLF = errors.New("proxy: bare LF in a request head")

func (w *headWatch) arm()    { *w = headWatch{armed: true} }
func (w *headWatch) disarm() { *w = headWatch{} }

// lineOpen reports whether a head has started whose request line has not ended.
func (w *headWatch) lineOpen() bool { return w.started && !w.line && !w.done }

func (w *headWatch) scan(p []byte) error {
	if !w.armed || w.done || len(p) == 0 {
		return nil
	}
	if !w.started {
		if !httpwire.IsTokenChar(p[0]) {
			w.done = true
			return nil
		}
		w.started = true
	}
	i := 0
	for i < len(p) {
		j := bytes.IndexByte(p[i:], '\n')
		if j < 0 {
			break
		}
		k := i + j // the LF
		b1, _ := w.before(p, k, 1)
		if !w.line {
			// "HTTP/1." then one digit, then CR or not, before the LF.
			off := 2
			if b1 == '\r' {
				off = 3
			}
			for n := 0; n < 7; n++ {
				if c, ok := w.before(p, k, off+6-n); !ok || c != "HTTP/1."[n] {
					w.done = true // not a request line
					return nil
				}
			}
			w.line = true
			i = k + 1
			continue
		}
		b2, _ := w.before(p, k, 2)
		if b1 != '\r' {
			w.done = true
			return errBareLF
		}
		if b2 == '\n' { // "\n\r\n": the empty line that ends the head
			w.done = true
			return nil
		}
		i = k + 1
	}
	w.keep(p)
	return nil
}

// Under TLS the client connection (*conn) carries ciphertext: the head is
// watched one layer up, on what the TLS connection decrypts. serveOn puts this
// listener over the TLS one.
type plainHeadListener struct{ net.Listener }

func (l plainHeadListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*tls.Conn)
	if !ok {
		return c, nil
	}
	pc, _ := tc.NetConn().(*conn)
	if pc == nil {
		return c, nil
	}
	pc.plainAbove = true // the ciphertext is not scanned
	return &plainHeadConn{Conn: tc, pc: pc}, nil
}

// plainHeadConn is a TLS connection whose reads feed the client connection's
// head watch. Embedding *tls.Conn keeps everything fasthttp and clientConn look
// for (ConnectionState, Handshake, NetConn).
type plainHeadConn struct {
	*tls.Conn
	pc *conn
}

func (c *plainHeadConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.pc.inBody.Load() && !c.pc.tunneled {
		if werr := c.pc.head.scan(p[:n]); werr != nil {
			return n, werr
		}
	}
	return n, err
}
