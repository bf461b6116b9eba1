package proxy

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// AccessLog writes one JSON line per request through a bounded queue drained by
// one goroutine, so the request path never waits for the disk: when the writer
// falls behind, lines are dropped and counted (Dropped), never queued without
// bound. Safe for concurrent use.
type AccessLog struct {
	path    string
	queue   chan *[]byte
	bufs    sync.Pool
	dropped atomic.Uint64
	written atomic.Uint64

	mu  sync.Mutex // guards out and f against Reopen
	out *bufio.Writer
	f   *os.File // nil for stdout/stderr

	reopen chan chan error
	done   chan struct{}
}

// accessLogQueue is how many lines may wait for the writer: at 50,000 requests a
// second, a fifth of a second of disk stall.
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
	l := &AccessLog{path: path, queue: make(chan *[]byte, queue), reopen: make(chan chan error), done: make(chan struct{})}
	l.bufs.New = func() any { b := make([]byte, 0, 512); return &b }
	return l
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

// Dropped is the number of lines dropped because the writer fell behind.
func (l *AccessLog) Dropped() uint64 { return l.dropped.Load() }

// Written is the number of lines handed to the writer.
func (l *AccessLog) Written() uint64 { return l.written.Load() }

// Close writes what is queued and stops the writer. Lines logged after Close are
// dropped.
func (l *AccessLog) Close() error {
	close(l.queue)
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

// accessLogFlushDelay is how long a line may wait in the writer's buffer. Flushing
// as soon as the queue was empty cost a write(2) for every third request under
// load, since with one CPU the writer usually finds a single line queued.
const accessLogFlushDelay = 50 * time.Millisecond

func (l *AccessLog) run() {
	defer close(l.done)
	flush := time.NewTimer(time.Hour)
	flush.Stop()
	armed := false
	for {
		select {
		case b, ok := <-l.queue:
			if !ok {
				flush.Stop()
				return
			}
			l.mu.Lock()
			l.out.Write(*b) // a full buffer is written out here
			l.mu.Unlock()
			*b = (*b)[:0]
			l.bufs.Put(b)
			// Flush within accessLogFlushDelay of the first unflushed line, so
			// a quiet period leaves nothing buffered for long and a busy one
			// writes in large blocks.
			if !armed {
				flush.Reset(accessLogFlushDelay)
				armed = true
			}
		case <-flush.C:
			armed = false
			l.mu.Lock()
			l.out.Flush()
			l.mu.Unlock()
		case ch := <-l.reopen:
			l.mu.Lock()
			l.out.Flush()
			old := l.f
			err := l.open()
			if err == nil && old != nil {
				old.Close()
			} else if err != nil && old != nil {
				l.f, l.out = old, bufio.NewWriterSize(old, 64<<10) // keep writing to the old file
			}
			l.mu.Unlock()
			ch <- err
		}
	}
}

// entry is what a line says about one request.
type entry struct {
	start    time.Time
	dur      time.Duration
	client   []byte // textual IP
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

// log formats e and queues it, or drops it when the queue is full. Allocation-free.
func (l *AccessLog) log(e *entry) {
	if l == nil {
		return
	}
	bp := l.bufs.Get().(*[]byte)
	b := (*bp)[:0]
	b = append(b, `{"time":"`...)
	b = e.start.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","client":"`...)
	b = appendJSONString(b, e.client)
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
	*bp = b
	select {
	case l.queue <- bp:
		l.written.Add(1)
	default:
		l.dropped.Add(1)
		*bp = (*bp)[:0]
		l.bufs.Put(bp)
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
