package health

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
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

// recorder collects transitions on a buffered channel; OnTransition must not
// block, and no test produces anywhere near this many.
type recorder struct{ ch chan Transition }

func newRecorder() *recorder { return &recorder{ch: make(chan Transition, 4096)} }

func (r *recorder) on(tr Transition) { r.ch <- tr }

// next waits for the next transition, failing the test after waitFor.
func (r *recorder) next(t *testing.T) Transition {
	t.Helper()
	select {
	case tr := <-r.ch:
		return tr
	case <-time.After(waitFor):
		t.Fatalf("no transition within %s", waitFor)
		return Transition{}
	}
}

// none asserts that no transition is pending.
func (r *recorder) none(t *testing.T) {
	t.Helper()
	select {
	case tr := <-r.ch:
		t.Fatalf("unexpected transition %+v", tr)
	default:
	}
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

// closedAddr returns a loopback address nothing listens on: a port the kernel
// just handed out and took back, so connecting is refused.
func closedAddr(t *testing.T) string {
	t.Helper()
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
