package proxy

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// conn wraps each client connection to give it the idle timeouts that nginx calls
// client_body_timeout and send_timeout: while a request body is being read, and while
// a response is being written, the deadline moves forward with every successful
// read or write instead of being fixed at the start of the request, so a large
// upload or download over a slow link is not cut while a stalled peer still is.
// fasthttp only offers whole-request deadlines.
//
// The header and keep-alive timeouts live here too, instead of in fasthttp, which
// sets two read deadlines per request (two clock reads and two timer updates
// each). Here the keep-alive deadline moves at most once per clock tick, and the
// header deadline is set only when a request's header did not arrive in one read,
// which is how a slowloris client shows itself.
type conn struct {
	net.Conn
	clock     *clock
	writeIdle time.Duration
	bodyIdle  time.Duration
	header    time.Duration // request line and headers, from their first byte
	idle      time.Duration // keep-alive wait for the next request

	// The phase of the request cycle, touched only by the connection's own
	// goroutine (fasthttp serves a connection on one goroutine).
	phase     uint8
	hdrStart  int64 // clock tick of the header's first byte
	hdrReads  int
	quiet     bool         // see served
	tunneled  bool         // hijacked for a WebSocket: no request deadlines any more
	inBody    atomic.Bool  // set by the handler while it streams a request body
	bodyLeft  int64        // bytes the body may still take, framing included; only the request goroutine touches it
	lastRead  atomic.Int64 // last read deadline set, in clock ticks
	lastWrite atomic.Int64 // last write deadline set, in clock ticks

	// holdNext is set by the handler when the response is complete in memory, so
	// that fasthttp's single write of it can be held until the read of the next
	// request (hold.go). It is never set for a streamed body: holding a part of
	// one would delay it until the next part arrives.
	holdNext bool
	h        holder

	limits *connLimits
	ip     netip.Addr
	closed atomic.Bool

	// head watches the bytes of request heads as they are read (headwatch.go);
	// under TLS, plainHeadConn feeds it the decrypted bytes instead (plainAbove).
	head       headWatch
	plainAbove bool

	// ipText is the peer's IP as X-Forwarded-For writes it, formatted on first
	// use into ipBuf: once per connection instead of once per request.
	ipText []byte
	ipBuf  [48]byte

	// The bytes of fasthttp's reader and writer that this connection holds,
	// counted in bufs (Server.BufferBytes): fasthttp's pools do not say. With
	// ReduceMemoryUsage and StreamRequestBody the reader is taken with the
	// first request and kept until the connection closes; the writer is taken
	// when the handler returns and given back after the response's flush,
	// before the read of the next request. fhReader and fhWriter are the
	// owner's; fh is read by Close, which may run on another goroutine.
	bufs               *bufCounter
	readerSize         int64
	fh                 atomic.Int64
	fhReader, fhWriter bool
}

// account adds d bytes of fasthttp buffers to the connection's count.
func (c *conn) account(d int64) {
	c.fh.Add(d)
	c.bufs.n.Add(d)
}

// responding records that fasthttp takes its writer for the response of the
// handler that is returning.
func (c *conn) responding() {
	if !c.fhWriter {
		c.fhWriter = true
		c.account(clientWriteBuf)
	}
}

// peerIPText returns the peer's IP as text (appendAddr of RemoteAddr), cached.
// Only the connection's goroutine calls it.
func (c *conn) peerIPText() []byte {
	if c.ipText == nil {
		c.ipText = appendAddr(c.ipBuf[:0], c.RemoteAddr())
	}
	return c.ipText
}

// Phases of conn.phase.
const (
	phaseNew    = iota // accepted, nothing read: the header timeout applies
	phaseIdle          // waiting for the next request: the keep-alive timeout applies
	phaseHeader        // the request's first bytes arrived
	phaseServed        // the handler ran; the next read starts a new request
)

// served marks the start of the handler. quiet records whether the connection was
// read from since the previous handler: fasthttp flushes its write buffer before it
// waits for a read, so then nothing of an earlier response is still buffered and an
// interim response may be written to the connection directly.
func (c *conn) served() {
	if c.fhWriter { // pipelined: the writer went back after the last flush
		c.fhWriter = false
		c.account(-clientWriteBuf)
	}
	if !c.fhReader {
		c.fhReader = true
		c.account(c.readerSize)
	}
	c.quiet = c.phase != phaseServed
	c.phase = phaseServed
	c.head.disarm()
}

func (c *conn) Read(p []byte) (int, error) {
	if c.fhWriter { // fasthttp gave its writer back before reading on
		c.fhWriter = false
		c.account(-clientWriteBuf)
	}
	body := c.inBody.Load()
	if len(c.h.ahead) > 0 {
		// The rest of what the one-byte read below took: no system call, so no
		// deadline to move and no read to count towards the header timeout.
		return c.got(p, c.h.take(p), nil, body)
	}
	if !body && !c.tunneled {
		switch c.phase {
		case phaseNew:
			c.phase, c.hdrStart, c.hdrReads = phaseHeader, c.clock.ticks.Load(), 1
			c.setReadDeadline(c.hdrStart, c.header)
		case phaseServed:
			c.phase = phaseIdle
			c.extend(&c.lastRead, c.idle, c.Conn.SetReadDeadline)
		case phaseHeader:
			if c.hdrReads++; c.hdrReads == 2 {
				// The header did not come in one read: from now on it has
				// until its first byte plus the header timeout.
				c.setReadDeadline(c.hdrStart, c.header)
			}
		}
	}
	var n int
	var err error
	if len(p) == 1 && !body && !c.tunneled {
		// fasthttp awaits the next request with a one-byte read, holding no
		// buffer (ReduceMemoryUsage, third_party/fasthttp), then reads the
		// rest into a pooled one: read what came with one system call all the
		// same, into a chunk taken only once it has come.
		n, err = c.h.readAhead(p)
	} else {
		n, err = c.h.read(p)
	}
	if n > 0 && c.phase == phaseIdle && !body {
		c.phase, c.hdrStart, c.hdrReads = phaseHeader, c.clock.ticks.Load(), 1
	}
	return c.got(p, n, err, body)
}

// got is the end of Read: what watches and limits the bytes read.
func (c *conn) got(p []byte, n int, err error, body bool) (int, error) {
	if n > 0 && !body && !c.tunneled && !c.plainAbove {
		if werr := c.head.scan(p[:n]); werr != nil {
			return n, werr
		}
	}
	if n > 0 && body {
		c.extend(&c.lastRead, c.bodyIdle, c.Conn.SetReadDeadline)
		// fasthttp does not enforce the body limit on streamed chunked bodies,
		// so the wire bytes are counted here. The count includes chunk framing
		// and misses what was buffered with the headers (at most one read
		// buffer), which is close enough for a limit in megabytes.
		if c.bodyLeft -= int64(n); c.bodyLeft < 0 {
			return n, errBodyLimit
		}
	}
	return n, err
}

// errBodyLimit fails a client read once a streamed body exceeds the limit.
var errBodyLimit = errors.New("proxy: request body over the limit")

func (c *conn) Write(p []byte) (int, error) {
	if c.writeIdle > 0 {
		c.extend(&c.lastWrite, c.writeIdle, c.Conn.SetWriteDeadline)
	}
	if err := c.h.flush(); err != nil {
		return 0, err
	}
	if c.holdNext {
		c.holdNext = false
		if c.h.hold(p) {
			return len(p), nil
		}
	}
	return c.Conn.Write(p)
}

// Close sends what is held before closing: fasthttp closes a connection right
// after writing a "Connection: close" response.
func (c *conn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return c.Conn.Close()
	}
	_ = c.h.flush()
	c.limits.release(c.ip)
	if c.bufs != nil {
		c.bufs.n.Add(-c.fh.Swap(0))
	}
	return c.Conn.Close()
}

// extend moves a deadline to now+idle, but at most once per clock tick, so that the
// hot path pays for a timer update a few times a second per connection, not per
// call.
func (c *conn) extend(last *atomic.Int64, idle time.Duration, set func(time.Time) error) {
	now := c.clock.ticks.Load()
	if last.Load() == now {
		return
	}
	last.Store(now)
	_ = set(time.Unix(0, now*int64(clockTick)).Add(idle + clockTick))
}

// setReadDeadline sets an absolute read deadline, and makes the next keep-alive
// extend set its own.
func (c *conn) setReadDeadline(fromTick int64, d time.Duration) {
	c.lastRead.Store(0)
	_ = c.Conn.SetReadDeadline(time.Unix(0, fromTick*int64(clockTick)).Add(d + clockTick))
}

// startBody switches the read deadline from the header timeout to the body idle
// timeout for the request body about to be streamed.
func (c *conn) startBody(limit int64) {
	c.bodyLeft = limit + limit/64 + 4096 // room for chunk framing
	c.inBody.Store(true)
	c.lastRead.Store(0)
	c.extend(&c.lastRead, c.bodyIdle, c.Conn.SetReadDeadline)
}

func (c *conn) endBody() {
	c.inBody.Store(false)
	c.lastRead.Store(0) // the keep-alive deadline must replace the body one
}

// clockTick is the resolution of clock.
const clockTick = 250 * time.Millisecond

// clock is a coarse clock advanced by one goroutine, read with one atomic load.
type clock struct {
	ticks atomic.Int64 // unix nanoseconds / clockTick
	stop  chan struct{}
	done  chan struct{}
}

func newClock() *clock {
	c := &clock{stop: make(chan struct{}), done: make(chan struct{})}
	c.ticks.Store(time.Now().UnixNano() / int64(clockTick))
	go func() {
		defer close(c.done)
		t := time.NewTicker(clockTick)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				c.ticks.Store(now.UnixNano() / int64(clockTick))
			case <-c.stop:
				return
			}
		}
	}()
	return c
}

func (c *clock) Close() {
	close(c.stop)
	<-c.done
}

// listener wraps accepted connections in *conn and enforces the connection limits:
// a connection over the global or the per-address limit gets a short 503 and is
// closed at once, and is counted. (fasthttp has both limits too, but neither says
// why to the client nor counts.)
type listener struct {
	net.Listener
	clock     *clock
	writeIdle time.Duration
	bodyIdle  time.Duration
	holdBufs  *bufPool
	chunks    *bufPool // holder.readAhead's, of MaxHeaderBytes
	bufs      *bufCounter
	readBuf   int64 // fasthttp's ReadBufferSize
	limits    *connLimits
	header    time.Duration
	idle      time.Duration
}

// connLimits is shared by every listener of a Server.
type connLimits struct {
	max, perIP int // 0 = unlimited
	mu         sync.Mutex
	open       int
	byIP       map[netip.Addr]int
	refused    atomic.Uint64
}

// tooMany is the whole answer to a connection over a limit.
const tooMany = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 30\r\n\r\n503 too many connections open\n"

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := peerIP(c.RemoteAddr())
		if !l.limits.admit(ip) {
			// A fresh socket's send buffer takes these bytes without blocking.
			_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			_, _ = c.Write([]byte(tooMany))
			_ = c.Close()
			continue
		}
		pc := &conn{Conn: c, clock: l.clock, writeIdle: l.writeIdle, bodyIdle: l.bodyIdle, header: l.header, idle: l.idle, limits: l.limits, ip: ip,
			bufs: l.bufs, readerSize: l.readBuf}
		pc.h.init(rawSocket(c), l.holdBufs)
		pc.h.readFirst = true
		pc.h.chunks = l.chunks
		pc.head.arm()
		return pc, nil
	}
}

func (cl *connLimits) admit(ip netip.Addr) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if (cl.max > 0 && cl.open >= cl.max) || (cl.perIP > 0 && cl.byIP[ip] >= cl.perIP) {
		cl.refused.Add(1)
		return false
	}
	cl.open++
	if cl.perIP > 0 {
		cl.byIP[ip]++
	}
	return true
}

func (cl *connLimits) release(ip netip.Addr) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.open--
	if cl.perIP > 0 {
		if n := cl.byIP[ip] - 1; n > 0 {
			cl.byIP[ip] = n
		} else {
			delete(cl.byIP, ip)
		}
	}
}

// ConnStats are the client connection counts.
type ConnStats struct {
	Open    int    // client connections open now
	Refused uint64 // connections refused by max_conns or max_conns_per_ip
}

// ConnStats returns the current client connection counts. Safe for concurrent use.
func (s *Server) ConnStats() ConnStats {
	s.limits.mu.Lock()
	defer s.limits.mu.Unlock()
	return ConnStats{Open: s.limits.open, Refused: s.limits.refused.Load()}
}

// CloseWrite half-closes the connection when the underlying one supports it, so a
// spliced tunnel can pass on an end of stream.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// clientConn returns floodgate's wrapper of the client connection, under TLS too.
func clientConn(ctx *fasthttp.RequestCtx) *conn {
	switch c := ctx.Conn().(type) {
	case *conn:
		return c
	case interface{ NetConn() net.Conn }:
		pc, _ := c.NetConn().(*conn)
		return pc
	}
	return nil
}
