package proxy

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// conn wraps each client connection to give it the idle timeouts that nginx calls
// client_body_timeout and send_timeout: while a request body is being read, and while
// a response is being written, the deadline moves forward with every successful
// read or write instead of being fixed at the start of the request, so a large
// upload or download over a slow link is not cut while a stalled peer still is.
// fasthttp only offers whole-request deadlines.
type conn struct {
	net.Conn
	clock     *clock
	writeIdle time.Duration
	bodyIdle  time.Duration
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
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.h.read(p)
	if n > 0 && c.inBody.Load() {
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
	_ = c.h.flush()
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

// startBody switches the read deadline from the header timeout to the body idle
// timeout for the request body about to be streamed.
func (c *conn) startBody(limit int64) {
	c.bodyLeft = limit + limit/64 + 4096 // room for chunk framing
	c.inBody.Store(true)
	c.lastRead.Store(0)
	c.extend(&c.lastRead, c.bodyIdle, c.Conn.SetReadDeadline)
}

func (c *conn) endBody() { c.inBody.Store(false) }

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

// listener wraps accepted connections in *conn.
type listener struct {
	net.Listener
	clock     *clock
	writeIdle time.Duration
	bodyIdle  time.Duration
	holdBufs  *sync.Pool
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	pc := &conn{Conn: c, clock: l.clock, writeIdle: l.writeIdle, bodyIdle: l.bodyIdle}
	pc.h.init(c, l.holdBufs)
	return pc, nil
}

// CloseWrite half-closes the connection when the underlying one supports it, so a
// spliced tunnel can pass on an end of stream.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
