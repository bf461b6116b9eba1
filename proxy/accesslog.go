package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// The access log: its writer, and what the request path records for it (reqInfo,
// logAccess).

// AccessLog writes one JSON line per request. Request goroutines append their
// formatted line to a pending block under a short lock; one goroutine takes the
// block every accessLogFlushDelay (or sooner when it is half full) and writes it,
// so the request path never waits for the disk: when the writer falls behind and
// the block is full, lines are dropped and counted (Dropped), never queued without
// bound. Safe for concurrent use.
type AccessLog struct {
	path    string
	max     int        // bytes of lines that may wait for the writer
	pmu     sync.Mutex // guards pending and closed
	pending []byte     // lines not yet taken by the writer
	closed  bool
	spare   []byte // the writer's block, swapped with pending
	dropped atomic.Uint64
	written atomic.Uint64

	mu  sync.Mutex // guards out and f against Reopen
	out *bufio.Writer
	f   *os.File // nil for stdout/stderr

	kick   chan struct{} // wakes the writer before its tick: block half full, or Close
	reopen chan chan error
	done   chan struct{}
}

// accessLogQueue is how many lines (of 512 bytes) may wait for the writer: at
// 50,000 requests a second, a fifth of a second of disk stall.
const accessLogQueue = 8192

// NewAccessLog opens path ("stdout", "stderr" or a file, appended to, created
// 0644) and starts the writer.
func NewAccessLog(path string) (*AccessLog, error) {
	l := newAccessLog(path, accessLogQueue)
	if err := l.open(); err != nil {
		return nil, err
	}
	go l.run()
	return l, nil
}

func newAccessLog(path string, queue int) *AccessLog {
	return &AccessLog{path: path, max: queue * 512, kick: make(chan struct{}, 1), reopen: make(chan chan error), done: make(chan struct{})}
}

func (l *AccessLog) open() error {
	var w io.Writer
	switch l.path {
	case "stdout", "":
		w = os.Stdout
	case "stderr":
		w = os.Stderr
	default:
		f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("access log: %w", err)
		}
		l.f, w = f, f
	}
	l.out = bufio.NewWriterSize(w, 64<<10)
	return nil
}

// Reopen closes and reopens the file, for log rotation (SIGUSR1): lines queued
// before the call go to the old file.
func (l *AccessLog) Reopen() error {
	ch := make(chan error)
	select {
	case l.reopen <- ch:
		return <-ch
	case <-l.done:
		return fmt.Errorf("access log: closed")
	}
}

// wake asks the writer to drain the queue now, without waiting.
func (l *AccessLog) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Dropped is the number of lines dropped because the writer fell behind.
func (l *AccessLog) Dropped() uint64 { return l.dropped.Load() }

// Written is the number of lines handed to the writer.
func (l *AccessLog) Written() uint64 { return l.written.Load() }

// Close writes what is queued and stops the writer. Lines logged after Close are
// dropped.
func (l *AccessLog) Close() error {
	l.pmu.Lock()
	l.closed = true
	l.pmu.Unlock()
	l.wake()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.out.Flush()
	if l.f != nil {
		if cerr := l.f.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// accessLogFlushDelay is how often the writer takes the pending lines and writes
// them. A writer woken by every line, as a queue drained by a goroutine is, costs
// a goroutine switch per request, and with one CPU it usually finds a single line
// to write: a write(2) for every third request.
const accessLogFlushDelay = 50 * time.Millisecond

func (l *AccessLog) run() {
	defer close(l.done)
	tick := time.NewTicker(accessLogFlushDelay)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-l.kick:
		case ch := <-l.reopen:
			// Lines logged before the call go to the old file.
			open := l.drain()
			l.mu.Lock()
			old := l.f
			err := l.open()
			if err == nil && old != nil {
				old.Close()
			} else if err != nil && old != nil {
				l.f, l.out = old, bufio.NewWriterSize(old, 64<<10) // keep writing to the old file
			}
			l.mu.Unlock()
			ch <- err
			if !open {
				return
			}
			continue
		}
		if !l.drain() {
			return
		}
	}
}

// drain writes the pending lines and flushes. It reports false once the log is
// closed: nothing more will be pending.
func (l *AccessLog) drain() bool {
	l.pmu.Lock()
	b, closed := l.pending, l.closed
	l.pending = l.spare[:0]
	l.pmu.Unlock()
	l.mu.Lock()
	if len(b) > 0 {
		l.out.Write(b)
	}
	l.out.Flush()
	l.mu.Unlock()
	l.spare = b[:0]
	return !closed
}

// entry is what a line says about one request.
type entry struct {
	start    time.Time
	dur      time.Duration
	client   []byte // textual IP of the client, after trusted_proxies
	peer     []byte // textual IP of the peer that connected
	method   []byte
	target   []byte
	route    string
	pool     string
	backend  string
	status   int
	bytesIn  int
	bytesOut int // -1 when unknown (a chunked stream)
	cache    string
	degraded string
}

// log formats e and adds it to the pending lines, or drops it when they are at
// their limit. Allocation-free once the pending block has grown to its working size.
func (l *AccessLog) log(e *entry) {
	if l == nil {
		return
	}
	var buf [512]byte // on the stack: copied into pending below
	b := buf[:0]
	b = append(b, `{"time":"`...)
	b = e.start.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","client":"`...)
	b = appendJSONString(b, e.client)
	b = append(b, `","peer":"`...)
	b = appendJSONString(b, e.peer)
	b = append(b, `","method":"`...)
	b = appendJSONString(b, e.method)
	b = append(b, `","target":"`...)
	b = appendJSONString(b, e.target)
	b = append(b, `","route":"`...)
	b = append(b, e.route...) // names are validated tokens
	b = append(b, `","pool":"`...)
	b = append(b, e.pool...)
	b = append(b, `","backend":"`...)
	b = append(b, e.backend...)
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, `,"bytes_in":`...)
	b = strconv.AppendInt(b, int64(e.bytesIn), 10)
	b = append(b, `,"bytes_out":`...)
	b = strconv.AppendInt(b, int64(e.bytesOut), 10)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(e.dur)/1e6, 'f', 3, 64)
	b = append(b, `,"cache":"`...)
	b = append(b, e.cache...)
	b = append(b, `","degraded":"`...)
	b = append(b, e.degraded...)
	b = append(b, "\"}\n"...)
	l.pmu.Lock()
	if l.closed || len(l.pending)+len(b) > l.max {
		l.pmu.Unlock()
		l.dropped.Add(1)
		return
	}
	l.pending = append(l.pending, b...)
	half := len(l.pending) >= l.max/2
	l.pmu.Unlock()
	l.written.Add(1)
	if half {
		l.wake()
	}
}

// appendJSONString appends s escaped for a JSON string body.
func appendJSONString(b, s []byte) []byte {
	const hex = "0123456789abcdef"
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c >= 0x7f:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			b = append(b, c)
		}
	}
	return b
}

// reqInfo collects, on the caller's stack, what the access log says beyond the
// request and response themselves.
type reqInfo struct {
	backend     string
	cache       string
	degraded    string
	client      netip.Addr // the client after trusted_proxies, when clientKnown
	clientKnown bool
	forwarded   bool // a backend was tried: the degraded-mode recorder counts it
	bodyRead    bool // the request body was read to its end
	failed      bool // ... and failed (error or 5xx)
	// maxWait is how long the request may wait for a backend slot (a
	// balancer.Ticket's MaxWait): 0 the pool's queue timeout, negative not at
	// all (refused by the admission level: a free slot or its route's action).
	maxWait time.Duration
}

// logAccess writes the request's access log line.
func (s *Server) logAccess(ctx *fasthttp.RequestCtx, rt *route, info *reqInfo, start time.Time, d time.Duration) {
	var ipBuf, clientBuf [64]byte
	var peer []byte
	if c := clientConn(ctx); c != nil {
		peer = c.peerIPText()
	} else {
		peer = appendAddr(ipBuf[:0], ctx.RemoteAddr())
	}
	client := peer
	if len(s.opts.TrustedProxies) > 0 {
		// The client as the guards see it: after the trusted proxies.
		ip := info.client
		if !info.clientKnown {
			ip = clientIP(ctx.RemoteAddr(), ctx.Request.Header.RawHeaders(), s.opts.TrustedProxies)
		}
		if ip.IsValid() {
			client = ip.AppendTo(clientBuf[:0])
		} else {
			client = append(clientBuf[:0], "unknown"...)
		}
	}
	e := entry{
		start: start, dur: d,
		client:   client,
		peer:     peer,
		method:   ctx.Request.Header.Method(),
		target:   ctx.Request.Header.RequestURI(),
		route:    "-",
		pool:     "-",
		backend:  info.backend,
		status:   ctx.Response.StatusCode(),
		bytesIn:  max(ctx.Request.Header.ContentLength(), -1),
		cache:    info.cache,
		degraded: info.degraded,
	}
	if rt != nil {
		e.route, e.pool = rt.name, rt.pool.name
	}
	if ctx.Response.IsBodyStream() {
		e.bytesOut = max(ctx.Response.Header.ContentLength(), -1)
	} else {
		e.bytesOut = len(ctx.Response.Body())
	}
	s.opts.AccessLog.log(&e)
}
