package health

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// waitFor bounds every wait in these tests: generous, because -race and a busy
// CI machine slow everything down, and a wait that succeeds returns at once.
const waitFor = 10 * time.Second

// fakeTarget records what the Checker tells it.
type fakeTarget struct {
	mu    sync.Mutex
	up    bool
	calls int
}

func newTarget(up bool) *fakeTarget { return &fakeTarget{up: up} }

func (f *fakeTarget) SetProbeUp(up bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	changed := f.up != up
	f.up = up
	return changed
}

func (f *fakeTarget) state() (up bool, calls int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.up, f.calls
}

// recorder collects transitions in an unbounded queue: OnTransition must never
// block, or a flapping backend in a slow test would stall its prober and Close.
type recorder struct {
	mu     sync.Mutex
	q      []Transition
	signal chan struct{} // one pending wake-up for next
}

func newRecorder() *recorder { return &recorder{signal: make(chan struct{}, 1)} }

func (r *recorder) on(tr Transition) {
	r.mu.Lock()
	r.q = append(r.q, tr)
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

// pop returns the oldest queued transition, if any.
func (r *recorder) pop() (Transition, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.q) == 0 {
		return Transition{}, false
	}
	tr := r.q[0]
	r.q = r.q[1:]
	return tr, true
}

// next waits for the next transition, failing the test after waitFor.
func (r *recorder) next(t *testing.T) Transition {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		if tr, ok := r.pop(); ok {
			return tr
		}
		select {
		case <-r.signal:
		case <-deadline:
			t.Fatalf("no transition within %s", waitFor)
			return Transition{}
		}
	}
}

// none asserts that no transition is queued.
func (r *recorder) none(t *testing.T) {
	t.Helper()
	if tr, ok := r.pop(); ok {
		t.Fatalf("unexpected transition %+v", tr)
	}
}

// noDeadline wraps a probe so that it ignores the check's timeout but still
// stops when its prober is cancelled. Tests whose subject is not timeouts use
// it so that a CPU-starved CI machine cannot fail a probe meant to pass and
// shift a scripted sequence; timeouts have tests of their own.
func noDeadline(probe probeFunc) probeFunc {
	return func(ctx context.Context, addr string, chk Check) (bool, string) {
		detached, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		stop := context.AfterFunc(ctx, func() {
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				cancel() // the prober was stopped, not timed out
			}
		})
		defer stop()
		return probe(detached, addr, chk)
	}
}

// patient makes c's HTTP and TCP probes ignore timeouts (see noDeadline).
func patient(c *Checker) {
	c.probes[TypeHTTP] = noDeadline(probeHTTP)
	c.probes[TypeTCP] = noDeadline(probeTCP)
}

// newChecker returns a Checker reporting to a fresh recorder, closed at the end
// of the test.
func newChecker(t *testing.T) (*Checker, *recorder) {
	t.Helper()
	rec := newRecorder()
	c := NewChecker(Options{OnTransition: rec.on})
	t.Cleanup(c.Close)
	return c, rec
}

// httpCheck is a fast HTTP check. Timeout equals Interval: loopback answers in
// well under a millisecond, so a timeout here means the test asked for one.
func httpCheck(interval time.Duration, rise, fall int) Check {
	return Check{Type: TypeHTTP, Path: "/healthz", Interval: interval, Timeout: interval, Rise: rise, Fall: fall}
}

// scriptServer answers probe n (1-based) with script[n-1], then repeats the
// last status (Traefik's health tests do the same with a status sequence).
type scriptServer struct {
	*httptest.Server
	mu      sync.Mutex
	script  []int
	hits    int
	want    int           // close reached when hits == want
	reached chan struct{} // see want
}

func newScriptServer(t *testing.T, want int, script ...int) *scriptServer {
	t.Helper()
	s := &scriptServer{script: script, want: want, reached: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		s.hits++
		code := s.script[min(s.hits, len(s.script))-1]
		if s.hits == s.want {
			close(s.reached)
		}
		s.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *scriptServer) addr() string { return s.Listener.Addr().String() }

// count returns how many probes the server has answered.
func (s *scriptServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits
}

// waitReached waits until the server has answered `want` probes.
func (s *scriptServer) waitReached(t *testing.T) {
	t.Helper()
	select {
	case <-s.reached:
	case <-time.After(waitFor):
		t.Fatalf("server answered %d probes within %s, want %d", s.count(), waitFor, s.want)
	}
}

// closedAddr returns a loopback address nothing listens on. Port 1 (tcpmux)
// is below the ephemeral range, so no test server running in parallel, in this
// process or another, can be handed it; should something listen there, fall
// back to a port the kernel just handed out and took back.
func closedAddr(t *testing.T) string {
	t.Helper()
	const reserved = "127.0.0.1:1"
	if conn, err := net.DialTimeout("tcp", reserved, time.Second); err == nil {
		_ = conn.Close()
	} else if errors.Is(err, syscall.ECONNREFUSED) {
		return reserved
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// eventually polls cond until it holds or waitFor passes. It is for conditions
// no event announces (goroutine counts); everything else waits on channels.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %s", what, waitFor)
		}
		<-tick.C
	}
}

// hit is one request seen by a probeServer.
type hit struct {
	path, host string
	at         time.Time
}

// probeServer answers with a settable status, or hangs until the client goes
// away, and reports every request on hits (dropped if nobody reads).
type probeServer struct {
	*httptest.Server
	code atomic.Int32
	hang atomic.Bool
	hits chan hit
}

func newProbeServer(t *testing.T, code int) *probeServer {
	t.Helper()
	s := &probeServer{hits: make(chan hit, 1<<14)}
	s.code.Store(int32(code))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.hits <- hit{r.URL.Path, r.Host, time.Now()}:
		default:
		}
		if s.hang.Load() {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(int(s.code.Load()))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *probeServer) addr() string { return s.Listener.Addr().String() }

// next waits for the next request.
func (s *probeServer) next(t *testing.T) hit {
	t.Helper()
	select {
	case h := <-s.hits:
		return h
	case <-time.After(waitFor):
		t.Fatalf("no probe reached %s within %s", s.addr(), waitFor)
		return hit{}
	}
}

// lockedBuffer is an io.Writer for a slog handler written from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
