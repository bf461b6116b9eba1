package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/internal/httpwire"
)

// upstream is the long-lived client of one backend: a LIFO stack of idle keep-alive
// connections, each with its own buffers. It survives reloads for as long as the
// backend and its transport settings stay the same.
//
// floodgate does not use fasthttp.HostClient here: its streamed responses allocate a
// wrapper and closures per request, its deadlines cost two timer updates per
// request, and a proxy needs to know exactly when a failure allows a retry. The
// request and response are still written and parsed by fasthttp.
type upstream struct {
	id       string
	addr     string
	connect  time.Duration
	response time.Duration
	maxIdle  int
	clock    *clock
	holdBufs *sync.Pool
	dialer   net.Dialer

	mu     sync.Mutex
	idle   []*bconn
	closed bool
}

// bconn is one connection to a backend. Its writes and reads go through a holder,
// so the end of each request is sent by the read of its response.
type bconn struct {
	c        net.Conn
	h        holder
	br       *bufio.Reader
	bw       *bufio.Writer
	u        *upstream
	deadline int64               // clock tick of the deadline last set
	idleAt   int64               // clock tick when it went idle
	body     httpwire.BodyReader // the streamed body of the current response
	fd       int                 // the socket, for idleClean's peek; -1 when holding is off
	peekBuf  [1]byte             // idleClean's buffer, on the heap with bc
}

// Write implements io.Writer for bw: the last write of a request is held.
func (bc *bconn) Write(p []byte) (int, error) {
	if err := bc.h.flush(); err != nil {
		return 0, err
	}
	if bc.h.hold(p) {
		return len(p), nil
	}
	return bc.c.Write(p)
}

// Read implements io.Reader for br.
func (bc *bconn) Read(p []byte) (int, error) { return bc.h.read(p) }

// dialError marks a failure to connect: nothing was sent, so any request may be
// retried on another backend.
type dialError struct{ err error }

func (e *dialError) Error() string { return "dial: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// errClosedBeforeResponse: the backend closed a connection before sending any byte
// of a response. As far as HTTP can tell the request was not processed (RFC 9112
// §9.3.1); an idempotent request may be retried.
var errClosedBeforeResponse = errors.New("proxy: backend closed the connection before responding")

// idleConnTimeout is how long an unused backend connection is kept. It is shorter
// than common backend keep-alive timeouts (nginx 75s, Node.js 5s) so that we rarely
// send a request on a connection the backend is closing.
const idleConnTimeout = 4 * time.Second

// bufferedBodyMax is the largest response body read whole with its headers; larger
// or unknown-length bodies are streamed. A whole small body lets the connection go
// back to the pool before the client has read anything.
const bufferedBodyMax = 64 << 10

func newUpstream(id, addr string, ps PoolSpec, clk *clock, holdBufs *sync.Pool) *upstream {
	u := &upstream{id: id, addr: addr, connect: ps.ConnectTimeout, response: ps.ResponseTimeout, clock: clk, maxIdle: 1024, holdBufs: holdBufs}
	if u.connect <= 0 {
		u.connect = 2 * time.Second
	}
	if u.response <= 0 {
		u.response = 30 * time.Second
	}
	u.dialer.Timeout = u.connect
	return u
}

func (u *upstream) sameSettings(addr string, ps PoolSpec) bool {
	c, r := ps.ConnectTimeout, ps.ResponseTimeout
	if c <= 0 {
		c = 2 * time.Second
	}
	if r <= 0 {
		r = 30 * time.Second
	}
	return u.addr == addr && u.connect == c && u.response == r
}

// get returns an idle connection (reused=true) or dials a new one. An idle
// connection on which the backend sent anything, or which it closed, while it
// was idle is closed instead: those bytes answer no request of ours (an unprompted
// 408 before an idle close is the everyday case), and taken as the answer to the
// next request they would shift every later answer by one. Nothing was sent on
// it, so going on to the next connection is always safe.
func (u *upstream) get() (bc *bconn, reused bool, err error) {
	now := u.clock.ticks.Load()
	u.mu.Lock()
	for n := len(u.idle); n > 0; n = len(u.idle) {
		bc = u.idle[n-1]
		u.idle[n-1] = nil
		u.idle = u.idle[:n-1]
		u.mu.Unlock()
		if now-bc.idleAt < int64(idleConnTimeout/clockTick) && bc.idleClean() {
			return bc, true, nil
		}
		bc.c.Close()
		u.mu.Lock()
	}
	u.mu.Unlock()
	c, err := u.dialer.Dial("tcp", u.addr)
	if err != nil {
		return nil, false, &dialError{err}
	}
	bc = &bconn{c: c, u: u, fd: -1}
	bc.h.init(c, u.holdBufs)
	bc.fd = sysFD(bc.h.raw)
	bc.br = bufio.NewReaderSize(bc, 8192)
	bc.bw = bufio.NewWriterSize(bc, 8192)
	return bc, false, nil
}

// sysFD returns raw's descriptor, or -1. (A function of its own: a closure
// capturing get's bc would move bc to the heap on every call of get.)
func sysFD(raw syscall.RawConn) int {
	if raw == nil {
		return -1
	}
	fd := -1
	_ = raw.Control(func(f uintptr) { fd = int(f) })
	return fd
}

// idleClean reports whether nothing arrived on an idle connection: no byte, no
// end of stream. One non-blocking peek, which the poller does not see.
//
// The peek uses the descriptor saved at dial time, not RawConn.Control, whose
// reference counting of the descriptor costs a fifth of the peek itself.
// Control guards against a concurrent Close reusing the number; there is none
// here: a connection taken off the idle stack belongs to the caller of get
// alone, and close closes only connections still on the stack.
func (bc *bconn) idleClean() bool {
	if bc.br.Buffered() > 0 {
		return false
	}
	if bc.fd < 0 {
		return true
	}
	return rawPeekIdle(uintptr(bc.fd), bc.peekBuf[:])
}

// put returns a connection whose last response was read completely.
func (u *upstream) put(bc *bconn) {
	bc.idleAt = u.clock.ticks.Load()
	u.mu.Lock()
	if u.closed || len(u.idle) >= u.maxIdle {
		u.mu.Unlock()
		bc.c.Close()
		return
	}
	u.idle = append(u.idle, bc)
	u.mu.Unlock()
}

// close closes the idle connections; connections in use are closed when their
// request ends.
func (u *upstream) close() {
	u.mu.Lock()
	idle := u.idle
	u.idle, u.closed = nil, true
	u.mu.Unlock()
	for _, bc := range idle {
		bc.c.Close()
	}
}

// roundTrip sends req on a backend connection and reads the response header into
// resp. A body of known length up to bufferMax is read too and the connection is
// returned to the pool (bc == nil). Otherwise the body is to be read from bc.body
// and the caller owns bc until it is done: it must call bc.done.
//
// A reused connection that the backend closed before answering, or on which it
// answered 408 (it timed the idle connection out as our request crossed its close),
// did not process the request: one that can be sent again (idempotent, body in
// memory) is, once, on a fresh connection.
func (u *upstream) roundTrip(req *fasthttp.Request, resp *fasthttp.Response, head bool, o *outbound, bufferMax int) (*bconn, error) {
	resend := isIdempotent(req.Header.Method()) && !req.IsBodyStream()
	for try := 0; ; try++ {
		bc, reused, err := u.get()
		if err != nil {
			return nil, err
		}
		bc, err = bc.exchange(req, resp, head, o, bufferMax, reused, reused && resend && try == 0)
		if err == errStaleConn {
			resp.Reset()
			resp.Header.SetNoDefaultContentType(true)
			resp.Header.DisableNormalizing()
			continue
		}
		return bc, err
	}
}

// errStaleConn: a reused connection turned out to be closed or timed out by the
// backend before it took the request, which may be sent again.
var errStaleConn = errors.New("proxy: backend connection went stale before the response")

// exchange is one attempt of roundTrip on bc. With stale set, a failure that
// shows the backend had closed the connection before taking the request returns
// errStaleConn.
func (bc *bconn) exchange(req *fasthttp.Request, resp *fasthttp.Response, head bool, o *outbound, bufferMax int, reused, stale bool) (*bconn, error) {
	bc.arm()
	err := writeRequest(bc.bw, req, o)
	if err == nil {
		err = bc.bw.Flush()
	}
	var mode httpwire.BodyMode
	var n int64
	if err == nil {
		mode, n, err = readResponseHead(bc.br, resp, head, o)
	}
	if err != nil {
		err = bc.fail(err, reused)
		if stale && err == errClosedBeforeResponse {
			return nil, errStaleConn
		}
		return nil, err
	}
	if stale && resp.StatusCode() == fasthttp.StatusRequestTimeout {
		bc.c.Close()
		return nil, errStaleConn
	}
	keep := !resp.Header.ConnectionClose() && mode != httpwire.BodyToClose
	switch {
	case mode == httpwire.BodyNone:
		bc.done(keep)
		return nil, nil
	case mode == httpwire.BodyFixed && n <= int64(bufferMax):
		if err := resp.ReadBody(bc.br, 0); err != nil {
			bc.c.Close()
			return nil, err
		}
		bc.done(keep)
		return nil, nil
	}
	if mode == httpwire.BodyChunked && !httpwire.FirstChunkValid(bc.br) {
		// Caught before the head goes to the client: a 502, not a cut answer.
		bc.c.Close()
		return nil, httpwire.ErrBadChunk
	}
	bc.body.Reset(bc.br, mode, n)
	return bc, nil
}

// arm sets the deadline of the exchange about to start, at most once per clock
// tick per connection: the deadline lands between response and response+tick.
func (bc *bconn) arm() {
	now := bc.u.clock.ticks.Load()
	if bc.deadline == now {
		return
	}
	bc.deadline = now
	_ = bc.c.SetDeadline(time.Unix(0, now*int64(clockTick)).Add(bc.u.response + clockTick))
}

// fail closes a connection after an error and says whether the backend closed a
// reused connection before answering, the keep-alive race that a retry fixes.
func (bc *bconn) fail(err error, reused bool) error {
	bc.c.Close()
	if reused && (errors.Is(err, io.EOF) || isReset(err) || errors.Is(err, fasthttp.ErrConnectionClosed)) {
		return errClosedBeforeResponse
	}
	var nr fasthttp.ErrNothingRead
	if errors.As(err, &nr) || errors.Is(err, io.EOF) {
		return errClosedBeforeResponse
	}
	return err
}

// done ends an exchange: the connection goes back to the pool if reusable and
// the response was consumed exactly: a byte already read beyond it (a body after a
// HEAD answer or on a 204, bytes after a Content-Length body) answers nothing we
// asked, and the next request on the connection would take it for its answer.
func (bc *bconn) done(reusable bool) {
	if reusable && bc.br.Buffered() == 0 {
		bc.u.put(bc)
		return
	}
	bc.c.Close()
}

// upstreamLocked returns the upstream for a backend ID, reusing the one in
// service when its settings are unchanged, else a new one that Swap records.
// It writes nothing: a generation built and never swapped in leaves the table
// as it was. s.upMu must be held.
func (s *Server) upstreamLocked(id, addr string, ps PoolSpec) *upstream {
	if u := s.upstreams[id]; u != nil && u.sameSettings(addr, ps) {
		return u
	}
	return newUpstream(id, addr, ps, s.clock, s.holdBufs)
}

// retireUpstreams records the upstreams of the snapshot just swapped in, for
// the next generations to reuse, and closes the idle connections of those it
// no longer uses. Requests still in flight on them finish normally.
func (s *Server) retireUpstreams(cur *Snapshot) {
	used := make(map[*upstream]bool)
	for _, p := range cur.pools {
		for _, u := range p.upstreams {
			used[u] = true
		}
	}
	s.upMu.Lock()
	for u := range used {
		s.upstreams[u.id] = u
		s.live[u] = true
	}
	var gone []*upstream
	for u := range s.live {
		if !used[u] {
			delete(s.live, u)
			if s.upstreams[u.id] == u {
				delete(s.upstreams, u.id)
			}
			gone = append(gone, u)
		}
	}
	s.upMu.Unlock()
	for _, u := range gone {
		u.close()
	}
}

// isDialError reports whether err means the backend could not be reached at all.
func isDialError(err error) bool {
	var de *dialError
	return errors.As(err, &de)
}
