package health

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/floodgate/floodgate/internal/panics"
)

// TestCheckerVerdicts drives one prober per case to its first transition.
func TestCheckerVerdicts(t *testing.T) {
	const iv = 20 * time.Millisecond
	serve := func(code int) func(*testing.T) string {
		return func(t *testing.T) string { return newProbeServer(t, code).addr() }
	}
	hanging := func(t *testing.T) string {
		s := newProbeServer(t, 200)
		s.hang.Store(true)
		return s.addr()
	}
	listening := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ln.Close() })
		return ln.Addr().String()
	}
	tcp := Check{Type: TypeTCP, Interval: iv, Timeout: iv}
	tests := []struct {
		name       string
		addr       func(*testing.T) string
		check      Check
		startUp    bool
		wantUp     bool
		wantReason string
	}{
		{"http 200 comes up", serve(200), httpCheck(iv, 1, 1), false, true, "status 200"},
		{"http 301 comes up", serve(301), httpCheck(iv, 1, 1), false, true, "status 301"},
		{"http 503 goes down", serve(503), httpCheck(iv, 1, 1), true, false, "status 503"},
		{"http 500 goes down", serve(500), httpCheck(iv, 1, 1), true, false, "status 500"},
		{"expect status mismatch goes down", serve(200), func() Check { c := httpCheck(iv, 1, 1); c.ExpectStatus = 204; return c }(),
			true, false, "status 200"},
		{"expect status match comes up", serve(204), func() Check { c := httpCheck(iv, 1, 1); c.ExpectStatus = 204; return c }(),
			false, true, "status 204"},
		{"http timeout goes down", hanging, httpCheck(iv, 1, 1), true, false, "timeout after 20ms"},
		{"http refused goes down", closedAddr, httpCheck(iv, 1, 1), true, false, "connect: connection refused"},
		{"tcp listening comes up", listening, tcp, false, true, "connected"},
		{"tcp refused goes down", closedAddr, tcp, true, false, "connect: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, rec := newChecker(t)
			if !strings.HasPrefix(tt.wantReason, "timeout") {
				patient(c)
			}
			target := newTarget(tt.startUp)
			addr := tt.addr(t)
			c.Sync([]Probe{{Pool: "p", Address: addr, Check: tt.check, Target: target, StartUp: tt.startUp}})
			tr := rec.next(t)
			if tr.Up != tt.wantUp || tr.Reason != tt.wantReason || tr.Pool != "p" || tr.Address != addr || tr.At.IsZero() {
				t.Fatalf("transition = %+v, want up=%v reason %q", tr, tt.wantUp, tt.wantReason)
			}
			if up, _ := target.state(); up != tt.wantUp {
				t.Errorf("target up = %v, want %v", up, tt.wantUp)
			}
			st, ok := c.Status("p", addr)
			if !ok || st.LastCheck.IsZero() {
				t.Fatalf("Status = %+v, %v", st, ok)
			}
			if tt.wantUp && (st.LastErr != "" || st.ConsecutiveOK < 1) {
				t.Errorf("Status after up = %+v", st)
			}
			if !tt.wantUp && (st.LastErr != tt.wantReason || st.ConsecutiveFail < 1) {
				t.Errorf("Status after down = %+v", st)
			}
		})
	}
}

// TestCheckerTCPListenerClosed takes a TCP backend up, then down by closing
// its listener.
func TestCheckerTCPListenerClosed(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, rec := newChecker(t)
	patient(c)
	addr := ln.Addr().String()
	c.Sync([]Probe{{Pool: "db", Address: addr, Target: newTarget(false),
		Check: Check{Type: TypeTCP, Interval: 20 * time.Millisecond, Rise: 2, Fall: 2}}})
	if tr := rec.next(t); !tr.Up || tr.Reason != "connected" {
		t.Fatalf("first transition = %+v, want up", tr)
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if tr := rec.next(t); tr.Up || tr.Reason != "connect: connection refused" {
		t.Fatalf("second transition = %+v, want down, refused", tr)
	}
}

// TestRiseFall runs scripted status sequences and checks the exact probe at
// which each flip happens, and that nothing else is reported.
func TestRiseFall(t *testing.T) {
	tests := []struct {
		name       string
		rise, fall int
		startUp    bool
		script     []int // the last status repeats
		run        int   // probes to observe in total
		want       []flip
	}{
		{"fall 3: two failures do not flip, the third does", 1, 3, true,
			[]int{200, 503, 503, 200, 503, 503, 503}, 10, []flip{{7, false}}},
		{"rise 2: one success does not flip, the second does", 2, 1, false,
			[]int{200, 503, 200, 200}, 8, []flip{{4, true}}},
		{"one report per flip", 2, 2, true,
			[]int{200, 503, 503, 503, 503, 200, 200, 200, 503, 200, 503, 503}, 16,
			[]flip{{3, false}, {7, true}, {12, false}}},
		{"rise 1 fall 1 flips on every change", 1, 1, true,
			[]int{503, 200, 503, 200}, 8, []flip{{1, false}, {2, true}, {3, false}, {4, true}}},
		{"steady up never reports", 3, 3, true, []int{200}, 6, nil},
		{"steady down never reports", 3, 3, false, []int{503}, 6, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newScriptServer(t, tt.run, tt.script...)
			// The Target is told synchronously, before the next probe starts,
			// so the server's count when it is told is the index of the probe
			// that caused the flip.
			target := &countingTarget{fakeTarget: newTarget(tt.startUp), count: srv.count}
			var reasons []string // written by the notifier goroutine; read after Close
			c := NewChecker(Options{OnTransition: func(tr Transition) {
				want := "status 503"
				if tr.Up {
					want = "status 200"
				}
				if tr.Reason != want {
					reasons = append(reasons, tr.Reason)
				}
			}})
			// A spurious timeout on a starved CI machine would shift the script
			// and fail the test for the wrong reason.
			patient(c)
			c.Sync([]Probe{{Pool: "p", Address: srv.addr(), Check: httpCheck(20*time.Millisecond, tt.rise, tt.fall),
				Target: target, StartUp: tt.startUp}})
			srv.waitReached(t)
			c.Close()
			if got := target.flipsSeen(); !slices.Equal(got, tt.want) {
				t.Errorf("flips = %v, want %v", got, tt.want)
			}
			if len(reasons) > 0 {
				t.Errorf("unexpected transition reasons %q", reasons)
			}
			// One call to set the starting state, then one per flip.
			if _, calls := target.state(); calls != len(tt.want)+1 {
				t.Errorf("SetProbeUp calls = %d, want %d", calls, len(tt.want)+1)
			}
		})
	}
}

// flip is a change of a target's state, and the probe that caused it.
type flip struct {
	probe int // 1-based index of the probe
	up    bool
}

// countingTarget records, at each change, how many probes a server had
// answered.
type countingTarget struct {
	*fakeTarget
	count func() int
	mu    sync.Mutex
	flips []flip
}

func (c *countingTarget) SetProbeUp(up bool) bool {
	changed := c.fakeTarget.SetProbeUp(up)
	if changed {
		c.mu.Lock()
		c.flips = append(c.flips, flip{c.count(), up})
		c.mu.Unlock()
	}
	return changed
}

func (c *countingTarget) flipsSeen() []flip {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.flips)
}

// TestStartUpFalseGatesTraffic is the health-gated addition of a backend
// registered at runtime: it is taken out at once and let in after Rise passes.
func TestStartUpFalseGatesTraffic(t *testing.T) {
	t.Parallel()
	srv := newProbeServer(t, 200)
	c, rec := newChecker(t)
	target := newTarget(true) // whatever the target's own default, StartUp wins
	c.Sync([]Probe{{Pool: "p", Address: srv.addr(), Check: httpCheck(20*time.Millisecond, 2, 2), Target: target}})
	if tr := rec.next(t); tr.Up || tr.Reason != "initial state" {
		t.Fatalf("first transition = %+v, want down, initial state", tr)
	}
	if up, _ := target.state(); up {
		t.Fatal("target still up after Sync returned")
	}
	if tr := rec.next(t); !tr.Up || tr.Reason != "status 200" {
		t.Fatalf("second transition = %+v, want up", tr)
	}
	if st, _ := c.Status("p", srv.addr()); st.ConsecutiveOK < 2 {
		t.Errorf("came up after %d passes, want >= 2", st.ConsecutiveOK)
	}
}

func TestSyncAddRemove(t *testing.T) {
	t.Parallel()
	a, b := newProbeServer(t, 200), newProbeServer(t, 200)
	c, _ := newChecker(t)
	check := httpCheck(20*time.Millisecond, 1, 1)
	pa := Probe{Pool: "p", Address: a.addr(), Check: check, Target: newTarget(true), StartUp: true}
	pb := Probe{Pool: "p", Address: b.addr(), Check: check, Target: newTarget(true), StartUp: true}

	c.Sync([]Probe{pa})
	first := c.probers[key{"p", a.addr()}]
	if n := c.running.Load(); n != 1 {
		t.Fatalf("running = %d after adding one, want 1", n)
	}
	if _, ok := c.Status("p", b.addr()); ok {
		t.Fatal("Status reports a backend never added")
	}

	c.Sync([]Probe{pa, pb})
	if n := c.running.Load(); n != 2 {
		t.Fatalf("running = %d after adding a second, want 2", n)
	}
	if c.probers[key{"p", a.addr()}] != first {
		t.Error("adding b restarted a")
	}
	b.next(t) // b is probed

	removed := c.probers[key{"p", b.addr()}]
	c.Sync([]Probe{pa})
	// Sync waits: b's goroutine is gone by the time it returns.
	select {
	case <-removed.done:
	default:
		t.Fatal("Sync returned before the removed prober exited")
	}
	if n := c.running.Load(); n != 1 {
		t.Fatalf("running = %d after removing one, want 1", n)
	}
	if _, ok := c.Status("p", b.addr()); ok {
		t.Error("Status still reports a removed backend")
	}
	// Let a be probed a few more times: b must see nothing new. Requests b
	// had already received before Sync returned may still be in the channel.
	for len(b.hits) > 0 {
		<-b.hits
	}
	for range 5 {
		a.next(t)
	}
	if n := len(b.hits); n > 1 { // one request may have been in flight, unread, at removal
		t.Errorf("removed backend received %d probes after Sync", n)
	}

	c.Sync(nil)
	if n := c.running.Load(); n != 0 {
		t.Fatalf("running = %d after Sync(nil), want 0", n)
	}
}

// TestSyncKeepsState checks that a reload which does not change a backend's
// check keeps its prober, and one that changes only timings or thresholds keeps
// its verdict and counters.
func TestSyncKeepsState(t *testing.T) {
	t.Parallel()
	srv := newProbeServer(t, 503)
	c, rec := newChecker(t)
	target := newTarget(true)
	p := Probe{Pool: "p", Address: srv.addr(), Check: httpCheck(20*time.Millisecond, 2, 2), Target: target, StartUp: true}
	c.Sync([]Probe{p})
	if tr := rec.next(t); tr.Up {
		t.Fatalf("transition = %+v, want down", tr)
	}

	// Unchanged, spelled differently (UnhealthyInterval 0 means Interval).
	running := c.probers[key{"p", srv.addr()}]
	same := p
	same.Check.UnhealthyInterval = same.Check.Interval
	same.StartUp = false // ignored for a running prober
	c.Sync([]Probe{same})
	if c.probers[key{"p", srv.addr()}] != running {
		t.Fatal("unchanged probe was restarted")
	}
	rec.none(t)

	// Timings and thresholds changed: restarted, verdict and counters kept.
	// The successor probes hourly, so (but for a one-in-a-million jitter) it
	// cannot record anything before we compare.
	slow := p
	slow.Check.Interval, slow.Check.UnhealthyInterval, slow.Check.Timeout, slow.Check.Fall = time.Hour, time.Hour, time.Second, 4
	c.Sync([]Probe{slow})
	if c.probers[key{"p", srv.addr()}] == running {
		t.Fatal("retimed probe was not restarted")
	}
	before := running.status() // final: the old prober has exited
	if after, _ := c.Status("p", srv.addr()); after != before {
		t.Fatalf("Status across a timing change = %+v, want %+v", after, before)
	}
	rec.none(t)
	if up, _ := target.state(); up {
		t.Fatal("target came up across a timing change")
	}

	// Back to fast timings: still carried, and the new prober counts on.
	c.Sync([]Probe{p})
	for len(srv.hits) > 0 {
		<-srv.hits
	}
	// Three hits: one may be a late echo of the first prober; of the two
	// others, the first is recorded once the second arrives.
	for range 3 {
		srv.next(t)
	}
	if st, _ := c.Status("p", srv.addr()); st.Up || st.ConsecutiveFail <= before.ConsecutiveFail {
		t.Errorf("Status = %+v, want down with more than %d failures", st, before.ConsecutiveFail)
	}
	rec.none(t)
}

// TestSyncPathChangeRestarts checks that a changed check restarts the prober
// from StartUp, since results on the old path say nothing about the new one.
func TestSyncPathChangeRestarts(t *testing.T) {
	t.Parallel()
	hits := make(chan string, 1<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case hits <- r.URL.Path:
		default:
		}
		if r.URL.Path != "/good" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	c, rec := newChecker(t)
	patient(c)
	target := newTarget(true)
	check := httpCheck(20*time.Millisecond, 1, 1)
	check.Path = "/bad"
	c.Sync([]Probe{{Pool: "p", Address: addr, Check: check, Target: target, StartUp: true}})
	if tr := rec.next(t); tr.Up || tr.Reason != "status 503" {
		t.Fatalf("transition = %+v, want down", tr)
	}

	check.Path = "/good"
	c.Sync([]Probe{{Pool: "p", Address: addr, Check: check, Target: target, StartUp: true}})
	// Restarting from StartUp=true puts the target back up, and says why.
	if tr := rec.next(t); !tr.Up || tr.Reason != "check changed" {
		t.Fatalf("transition = %+v, want up, check changed", tr)
	}
	seen := 0
	for seen < 2 { // the first /good probe is recorded once the second arrives
		select {
		case p := <-hits:
			if p == "/good" {
				seen++
			}
		case <-time.After(waitFor):
			t.Fatal("new path never probed")
		}
	}
	st, _ := c.Status("p", addr)
	if !st.Up || st.ConsecutiveOK < 1 || st.ConsecutiveFail != 0 {
		t.Errorf("Status = %+v, want up with fresh counters", st)
	}
	rec.none(t)
}

// TestSyncTargetChange checks that a new Target for the same check learns the
// current verdict without a Transition (the backend's health did not change).
func TestSyncTargetChange(t *testing.T) {
	t.Parallel()
	srv := newProbeServer(t, 503)
	c, rec := newChecker(t)
	p := Probe{Pool: "p", Address: srv.addr(), Check: httpCheck(20*time.Millisecond, 1, 1), Target: newTarget(true), StartUp: true}
	c.Sync([]Probe{p})
	if tr := rec.next(t); tr.Up {
		t.Fatalf("transition = %+v, want down", tr)
	}
	fresh := newTarget(true)
	p.Target = fresh
	c.Sync([]Probe{p})
	if up, calls := fresh.state(); up || calls != 1 {
		t.Errorf("new target up=%v after %d calls, want down after 1", up, calls)
	}
	if st, _ := c.Status("p", srv.addr()); st.Up {
		t.Error("verdict lost across a target change")
	}
	rec.none(t)
}

// TestSyncInvalid checks that a bad entry is logged and skipped, and that a
// prober already running for its key keeps running.
func TestSyncInvalid(t *testing.T) {
	t.Parallel()
	srv := newProbeServer(t, 200)
	var logs lockedBuffer
	c := NewChecker(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	t.Cleanup(c.Close)
	good := Probe{Pool: "p", Address: srv.addr(), Check: httpCheck(20*time.Millisecond, 1, 1), Target: newTarget(true), StartUp: true}
	c.Sync([]Probe{good})
	running := c.probers[key{"p", srv.addr()}]

	bad := good
	bad.Check.Interval = 0
	c.Sync([]Probe{bad,
		{Pool: "p", Address: "no-port", Check: good.Check, Target: newTarget(true)},
		{Pool: "p", Address: "127.0.0.1:1", Check: good.Check}, // nil Target
	})
	if c.probers[key{"p", srv.addr()}] != running || c.running.Load() != 1 {
		t.Fatal("an invalid entry replaced or stopped the running prober")
	}
	for _, addr := range []string{"no-port", "127.0.0.1:1"} {
		if _, ok := c.Status("p", addr); ok {
			t.Errorf("invalid probe for %s was started", addr)
		}
	}
	for _, want := range []string{"interval: must be greater than 0", "no-port", "target: must not be nil"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// TestNoneCheck checks that type none sets the target up once and runs nothing.
func TestNoneCheck(t *testing.T) {
	t.Parallel()
	c, rec := newChecker(t)
	target := newTarget(false)
	p := Probe{Pool: "p", Address: "anything", Check: Check{Type: TypeNone}, Target: target}
	c.Sync([]Probe{p})
	if tr := rec.next(t); !tr.Up || tr.Reason != "no health check" {
		t.Fatalf("transition = %+v, want up, no health check", tr)
	}
	if n := c.running.Load(); n != 0 {
		t.Fatalf("running = %d, want 0 for type none", n)
	}
	if st, ok := c.Status("p", "anything"); !ok || !st.Up {
		t.Fatalf("Status = %+v, %v; want up", st, ok)
	}
	c.Sync([]Probe{p})
	if _, calls := target.state(); calls != 1 {
		t.Errorf("SetProbeUp calls = %d after an unchanged Sync, want 1", calls)
	}
	rec.none(t)
}

// TestProbePanicRecovered checks that a panicking probe is logged and counted
// as inconclusive, and that its prober keeps running.
func TestProbePanicRecovered(t *testing.T) {
	panics.Allow(t)
	before := panics.Total()
	var logs lockedBuffer
	rec := newRecorder()
	c := NewChecker(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), OnTransition: rec.on})
	t.Cleanup(c.Close)
	calls := make(chan struct{}, 100)
	c.probes[TypeHTTP] = func(context.Context, string, Check) (bool, string) {
		calls <- struct{}{}
		panic("boom")
	}
	target := newTarget(true)
	c.Sync([]Probe{{Pool: "p", Address: "127.0.0.1:1", Check: httpCheck(5*time.Millisecond, 1, 1), Target: target, StartUp: true}})
	for range 3 { // the first two are recorded once the third starts
		select {
		case <-calls:
		case <-time.After(waitFor):
			t.Fatal("prober stopped after a panic")
		}
	}
	st, _ := c.Status("p", "127.0.0.1:1")
	if !st.Up || st.ConsecutiveFail != 0 || st.LastErr != "panic: boom" {
		t.Errorf("Status = %+v, want up, no failures, LastErr panic: boom", st)
	}
	rec.none(t)
	if !strings.Contains(logs.String(), "panic contained: health probe") || !strings.Contains(logs.String(), "stack=") {
		t.Errorf("panic not logged with its stack:\n%s", logs.String())
	}
	if panics.Total() == before {
		t.Error("panic not counted (floodgate_panics_total)")
	}
}

// TestTransitionLogged checks the one log record per transition.
func TestTransitionLogged(t *testing.T) {
	t.Parallel()
	srv := newProbeServer(t, 503)
	var logs lockedBuffer
	rec := newRecorder()
	c := NewChecker(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), OnTransition: rec.on})
	t.Cleanup(c.Close)
	patient(c)
	c.Sync([]Probe{{Pool: "shop", Address: srv.addr(), Check: httpCheck(20*time.Millisecond, 1, 1), Target: newTarget(true), StartUp: true}})
	rec.next(t)
	for range 3 {
		srv.next(t)
	}
	c.Close()
	out := logs.String()
	want := fmt.Sprintf(`level=WARN msg="health: backend down" pool=shop backend=%s state=down reason="status 503"`, srv.addr())
	if !strings.Contains(out, want) || strings.Count(out, "\n") != 1 {
		t.Errorf("logs = %q, want exactly one line containing %q", out, want)
	}
}

// signalTarget is a fakeTarget that announces each change.
type signalTarget struct {
	*fakeTarget
	changes chan bool
}

func (s *signalTarget) SetProbeUp(up bool) bool {
	changed := s.fakeTarget.SetProbeUp(up)
	if changed {
		s.changes <- up
	}
	return changed
}

// TestSyncUnderCallersLock mirrors a reload that holds its own mutex while
// calling Sync, with an OnTransition that takes the same mutex. Neither
// reporting a new prober's initial state nor removing a prober whose
// notification is waiting for the mutex may deadlock.
func TestSyncUnderCallersLock(t *testing.T) {
	t.Parallel()
	srv := newProbeServer(t, 503)
	var (
		mu  sync.Mutex // the caller's lock
		got []Transition
	)
	delivered := make(chan struct{}, 16)
	c := NewChecker(Options{OnTransition: func(tr Transition) {
		mu.Lock()
		got = append(got, tr)
		mu.Unlock()
		delivered <- struct{}{}
	}})
	t.Cleanup(c.Close)
	patient(c)
	target := &signalTarget{newTarget(false), make(chan bool, 16)}
	probe := Probe{Pool: "p", Address: srv.addr(), Check: httpCheck(20*time.Millisecond, 1, 1), Target: target, StartUp: true}

	syncLocked := func(want []Probe) {
		t.Helper()
		done := make(chan struct{})
		go func() { c.Sync(want); close(done) }()
		select {
		case <-done:
		case <-time.After(waitFor):
			mu.Unlock()
			t.Fatal("Sync deadlocked against OnTransition")
		}
	}

	mu.Lock()
	syncLocked([]Probe{probe}) // the target goes up: "initial state" is queued
	if up := <-target.changes; !up {
		t.Fatal("target not set up by Sync")
	}
	select { // the prober goes down; its notification waits for mu
	case up := <-target.changes:
		if up {
			t.Fatal("target went up on a 503")
		}
	case <-time.After(waitFor):
		mu.Unlock()
		t.Fatal("backend never went down")
	}
	syncLocked(nil) // removal waits for the prober, not for its notification
	mu.Unlock()

	for range 2 {
		select {
		case <-delivered:
		case <-time.After(waitFor):
			t.Fatal("queued transitions not delivered")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || !got[0].Up || got[0].Reason != "initial state" || got[1].Up || got[1].Reason != "status 503" {
		t.Errorf("delivered %+v, want up (initial state) then down (status 503)", got)
	}
}

// TestOnTransitionMayCallSync checks that OnTransition may call Status and
// Sync, even while Close is waiting for it.
func TestOnTransitionMayCallSync(t *testing.T) {
	t.Parallel()
	srv := newProbeServer(t, 503)
	var c *Checker // set before the first Sync, so before any callback
	entered, gate := make(chan struct{}), make(chan struct{})
	statusOK := make(chan bool, 1)
	c = NewChecker(Options{OnTransition: func(tr Transition) {
		_, ok := c.Status(tr.Pool, tr.Address)
		statusOK <- ok
		close(entered)
		<-gate
		c.Sync(nil) // Close is under way: must return at once
	}})
	patient(c)
	c.Sync([]Probe{{Pool: "p", Address: srv.addr(), Check: httpCheck(20*time.Millisecond, 1, 1), Target: newTarget(true), StartUp: true}})
	select {
	case <-entered:
	case <-time.After(waitFor):
		t.Fatal("no transition")
	}
	if !<-statusOK {
		t.Error("Status from OnTransition did not find the prober")
	}
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	// Once the prober has exited, Close is waiting for the notifier.
	eventually(t, "prober stopped by Close", func() bool { return c.running.Load() == 0 })
	close(gate)
	select {
	case <-closed:
	case <-time.After(waitFor):
		t.Fatal("Close deadlocked with an OnTransition calling Sync")
	}
}
