package proxy

import (
	"io"
	"net"
	"sync/atomic"
	"syscall"
)

// holder saves a system call per request on a connection where a write is always
// followed by a read: request then response to a backend, response then next request
// from a client.
//
// A plain write-then-read costs a read that fails with EAGAIN when the peer has not
// answered yet, because Go's poller clears a socket's readiness before every read
// and so must try the read first. A holder instead keeps the last write back until
// the next read and performs it inside syscall.RawConn.Read: readiness is reset
// before the write, so the poller records the answer, and the read is attempted
// only once it has arrived. On this class of machine system calls dominate a
// proxy's CPU time (see bench/RESULTS.md).
//
// That reasoning holds only where nothing can arrive before the write: a backend
// answers nothing it was not asked (what it sends unasked on an idle connection is
// caught before the connection is reused, upstream.get). A client can send its
// next request at any time, and bytes that arrived before the readiness reset
// would never wake the poller: on client connections (readFirst) the read is
// tried right after the write.
//
// A holder is used by one goroutine at a time, like the connection it serves, except
// that flush may race with read (see pending).
type holder struct {
	c      net.Conn
	raw    syscall.RawConn    // nil: holding is off
	readFn func(uintptr) bool // h.readHeld, bound once: a method value passed to an interface allocates
	bufs   *bufPool           // of maxHeld bytes
	buf    *[]byte            // from bufs while something is held
	held   []byte
	// pending says that held has bytes to send. Whoever takes it (read, flush)
	// owns held: it lets Close on another goroutine (fasthttp's Shutdown closing
	// idle connections) flush safely.
	pending atomic.Bool

	rp    []byte // Read's arguments and results, for readHeld
	rn    int
	rerr  error
	wdone bool

	// readFirst: after the held write, try a read before waiting for
	// readability. Set for client connections, whose next request may already
	// be in the socket.
	readFirst bool

	// readAhead's state: chunks is its pool (nil: readAhead is not used),
	// chunk the buffer taken from it, ahead the bytes read and not yet taken.
	chunks *bufPool
	chunk  *[]byte
	ahead  []byte
	lazy   bool // readHeld takes a chunk for each read it tries, see readAhead
}

// maxHeld is the largest write held back; bigger writes (bodies) go out at once.
const maxHeld = 32 << 10

// init enables holding when c is a TCP connection.
func (h *holder) init(c net.Conn, bufs *bufPool) {
	h.c, h.bufs = c, bufs
	if tc, ok := c.(*net.TCPConn); ok {
		if raw, err := tc.SyscallConn(); err == nil {
			h.raw = raw
			h.readFn = h.readHeld
		}
	}
}

// hold keeps a copy of p to be written by the next read. It reports false, holding
// nothing, when p is too large or holding is off; the caller then writes p itself,
// after flush.
func (h *holder) hold(p []byte) bool {
	if h.raw == nil || len(p) > maxHeld || h.pending.Load() {
		return false
	}
	h.buf = h.bufs.get()
	h.held = append((*h.buf)[:0], p...)
	h.pending.Store(true)
	return true
}

// flush writes what is held, the ordinary way.
func (h *holder) flush() error {
	// A plain load first: nothing is held on most calls, and a failed
	// compare-and-swap is a locked instruction all the same.
	if !h.pending.Load() || !h.pending.CompareAndSwap(true, false) {
		return nil
	}
	_, err := h.c.Write(h.held)
	h.release()
	return err
}

func (h *holder) release() {
	h.held = nil
	if h.buf != nil {
		h.bufs.put(h.buf)
		h.buf = nil
	}
}

// read is Read for the owner: with something held, write it and wait for the answer
// inside one RawConn.Read.
func (h *holder) read(p []byte) (int, error) {
	if !h.pending.Load() || !h.pending.CompareAndSwap(true, false) {
		return h.c.Read(p)
	}
	h.rp, h.rn, h.rerr, h.wdone = p, 0, nil, false
	err := h.raw.Read(h.readFn)
	h.rp = nil
	if err != nil {
		h.release()
		return 0, err
	}
	if len(h.held) > 0 { // the socket buffer was full: finish the ordinary way
		_, err := h.c.Write(h.held)
		h.release()
		if err != nil {
			return 0, err
		}
		return h.c.Read(p)
	}
	h.release()
	return h.rn, h.rerr
}

// readHeld is the RawConn.Read callback: the first call writes what is held and asks
// to wait for readability; later calls read. Both are raw system calls
// (rawio_linux.go): the socket is non-blocking.
func (h *holder) readHeld(fd uintptr) bool {
	if !h.wdone {
		h.wdone = true
		for len(h.held) > 0 {
			n, err := rawWrite(int(fd), h.held)
			if err == syscall.EINTR {
				continue
			}
			if err == syscall.EAGAIN {
				return true // flush finishes with the poller's help
			}
			if err != 0 {
				h.held = h.held[:0]
				h.rerr = &net.OpError{Op: "write", Net: "tcp", Addr: h.c.RemoteAddr(), Err: err}
				return true
			}
			h.held = h.held[n:]
		}
		// Sent: give the buffer back now rather than after the wait, so that an
		// idle keep-alive connection holds no buffer while it waits.
		h.release()
		if !h.readFirst {
			// A backend: its answer cannot have come before the request
			// that was just written, so the poller will see it arrive.
			return false
		}
		// A client may have sent its next request while this answer was being
		// made (pipelining, or just a quick client): those bytes arrived before
		// RawConn.Read reset the poller's readiness, so no wake-up will come
		// for them. Try the read before waiting.
	}
	for {
		if h.lazy && h.chunk == nil {
			h.chunk = h.chunks.get()
			h.rp = *h.chunk
		}
		n, err := rawRead(int(fd), h.rp)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			if h.lazy { // nothing to read: no chunk while waiting
				h.dropChunk()
			}
			return false
		case err != 0:
			h.rerr = &net.OpError{Op: "read", Net: "tcp", Addr: h.c.RemoteAddr(), Err: err}
		case n == 0:
			h.rerr = io.EOF
		default:
			h.rn = n
		}
		return true
	}
}

// readAhead is read for a caller that asks for a few bytes but takes more at
// once from its next calls (fasthttp awaits a client's next request with a
// one-byte read, then reads the rest into a buffer it takes from a pool only
// then). It reads what has arrived, up to a chunk, with one system call, as
// read would: the bytes that do not fit p are kept in ahead for take. The
// chunk comes from h.chunks only for the read itself, inside RawConn.Read's
// callback, so a connection waiting for its peer holds no buffer, and it goes
// back to the pool once take has handed out its last byte.
func (h *holder) readAhead(p []byte) (int, error) {
	if h.raw == nil || h.chunks == nil {
		return h.read(p)
	}
	held := h.pending.Load() && h.pending.CompareAndSwap(true, false)
	h.rp, h.rn, h.rerr, h.wdone, h.lazy = nil, 0, nil, !held, true
	err := h.raw.Read(h.readFn)
	if err == nil && h.rerr == nil && len(h.held) > 0 { // the socket buffer was full
		if _, err = h.c.Write(h.held); err == nil {
			h.release()
			err = h.raw.Read(h.readFn)
		}
	}
	if held {
		h.release()
	}
	h.lazy = false
	if err == nil {
		err = h.rerr
	}
	if err != nil || h.rn == 0 {
		h.dropChunk()
		return 0, err
	}
	n := copy(p, h.rp[:h.rn])
	h.ahead = h.rp[n:h.rn]
	if len(h.ahead) == 0 {
		h.dropChunk()
	}
	return n, nil
}

// take hands out bytes kept by readAhead; 0 when there are none.
func (h *holder) take(p []byte) int {
	n := copy(p, h.ahead)
	if h.ahead = h.ahead[n:]; len(h.ahead) == 0 {
		h.dropChunk()
	}
	return n
}

func (h *holder) dropChunk() {
	if h.chunk != nil {
		h.chunks.put(h.chunk)
		h.chunk = nil
	}
	h.rp, h.ahead = nil, nil
}
