package balancer

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPickSequence(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		weights []int
		n       int
		want    string
	}{
		{"nginx 5/1/1", []int{5, 1, 1}, 14, "aabacaaaabacaa"},
		{"3/2/1", []int{3, 2, 1}, 12, "abacbaabacba"},
		{"60/40", []int{60, 40}, 10, "ababaababa"},
		{"weight 0 never picked", []int{2, 0, 1}, 6, "acaaca"},
		{"one backend", []int{1}, 3, "aaa"},
		{"all zero weights", []int{0, 0}, 3, "---"},
		{"no backends", nil, 2, "--"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := picks(weighted(t, tt.weights...), tt.n); got != tt.want {
				t.Errorf("picks = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestPickWindows checks exact shares over every window of sum(weights)/gcd
// consecutive picks, and over 100 picks of 60/40.
func TestPickWindows(t *testing.T) {
	t.Parallel()
	tests := []struct {
		weights []int
		window  int
	}{
		{[]int{60, 40}, 5},
		{[]int{5, 1, 1}, 7},
		{[]int{3, 2, 1}, 6},
		{[]int{10, 0, 4, 6}, 10},
	}
	for _, tt := range tests {
		seq := picks(weighted(t, tt.weights...), 10*tt.window)
		for start := 0; start+tt.window <= len(seq); start++ {
			got := count(seq[start : start+tt.window])
			for i, w := range tt.weights {
				if want := w * tt.window / sum(tt.weights); got[rune('a'+i)] != want {
					t.Fatalf("%v: window %d: %c picked %d times, want %d (%q)", tt.weights, start, 'a'+i, got[rune('a'+i)], want, seq)
				}
			}
		}
	}
	got := count(picks(weighted(t, 60, 40), 100))
	if got['a'] != 60 || got['b'] != 40 {
		t.Errorf("60/40 over 100 picks: %v, want a:60 b:40", got)
	}
}

func sum(ws []int) int {
	s := 0
	for _, w := range ws {
		s += w
	}
	return s
}

func TestPickErrNoHealthyBackend(t *testing.T) {
	t.Parallel()
	p := mustPool(t, PoolOptions{Name: "shop", Backends: specs(0, 0)})
	_, err := p.Pick()
	if !errors.Is(err, ErrNoHealthyBackend) {
		t.Fatalf("Pick = %v, want ErrNoHealthyBackend", err)
	}
	if want := `balancer: pool "shop": no healthy backend`; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

// TestPickNewGeneration: a new generation over the same states follows its own
// weights from its first pick, while the states (here, in-flight slots) carry
// over.
func TestPickNewGeneration(t *testing.T) {
	t.Parallel()
	sp := specs(3, 1)
	gen1 := mustPool(t, PoolOptions{Backends: sp})
	if got := picks(gen1, 4); got != "aaba" {
		t.Fatalf("gen1 picks = %q, want aaba", got)
	}
	held := mustAcquire(t, gen1, nil)
	gen2 := mustPool(t, PoolOptions{Backends: respec(sp, 1, 3)})
	if got := picks(gen2, 8); got != "babbbabb" {
		t.Fatalf("gen2 picks = %q, want babbbabb", got)
	}
	if got := gen2.Backends()[held.Index].State.Inflight(); got != 1 {
		t.Fatalf("inflight seen from gen2 = %d, want 1", got)
	}
	held.Release()
	gen3 := mustPool(t, PoolOptions{Backends: respec(sp, 0, 1)}) // a draining
	if got := picks(gen3, 3); got != "bbb" {
		t.Fatalf("gen3 picks = %q, want bbb", got)
	}
}

func TestPickSkipsUnhealthy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		weights []int
		down    string
		n       int
		want    map[rune]int
	}{
		// The ring is a b a c b a; consuming b's positions leaves a a c a per cycle.
		{"3/2/1 with the 2 down", []int{3, 2, 1}, "b", 600, map[rune]int{'a': 450, 'c': 150}},
		{"5/1/1 with a down", []int{5, 1, 1}, "a", 100, map[rune]int{'b': 50, 'c': 50}},
		{"60/40 with 60 down", []int{60, 40}, "a", 10, map[rune]int{'b': 10}},
		{"all down", []int{1, 1}, "ab", 4, map[rune]int{'-': 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := weighted(t, tt.weights...)
			for _, b := range p.Backends() {
				if strings.Contains(tt.down, b.Address) {
					b.State.SetProbeUp(false)
				}
			}
			got := count(picks(p, tt.n))
			if len(got) != len(tt.want) {
				t.Fatalf("picks %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Fatalf("picks %v, want %v", got, tt.want)
				}
			}
		})
	}
}

// TestPickManyDown covers the linear fallback: with a long ring and nearly every
// backend down, the survivors are still found, and every one is used.
func TestPickManyDown(t *testing.T) {
	t.Parallel()
	weights := make([]int, 200)
	for i := range weights {
		weights[i] = 1 + i%7
	}
	p := weighted(t, weights...)
	for _, b := range p.Backends() {
		if b.Index != 17 && b.Index != 150 {
			b.State.SetProbeUp(false)
		}
	}
	seen := map[int]int{}
	for range 1000 {
		b, err := p.Pick()
		if err != nil {
			t.Fatal(err)
		}
		seen[b.Index]++
	}
	if len(seen) != 2 || seen[17] == 0 || seen[150] == 0 {
		t.Fatalf("picks by index = %v, want only 17 and 150", seen)
	}
}

func TestNewPoolErrors(t *testing.T) {
	t.Parallel()
	shared := NewBackendState("x")
	tests := []struct {
		name    string
		opts    PoolOptions
		wantErr []string
	}{
		{"negative weight", PoolOptions{Backends: specs(1, -1)}, []string{"backends[1] (b): weight -1"}},
		{"weight above max", PoolOptions{Backends: specs(1001)}, []string{"weight 1001"}},
		{"duplicate address", PoolOptions{Backends: []BackendSpec{{Address: "a", Weight: 1}, {Address: "a", Weight: 1}}},
			[]string{`backends[1]: address "a" duplicates backends[0]`}},
		{"empty address", PoolOptions{Backends: []BackendSpec{{Weight: 1}}}, []string{"backends[0]: empty address"}},
		{"shared state", PoolOptions{Backends: []BackendSpec{{Address: "a", State: shared}, {Address: "b", State: shared}}},
			[]string{`state "x" already used by backends[0]`}},
		{"queue without timeout", PoolOptions{QueueMax: 5}, []string{"queue timeout 0s"}},
		{"max fails without eject period", PoolOptions{MaxFails: 3}, []string{"eject for 0s"}},
		{"negatives", PoolOptions{MaxConnsPerBackend: -1, QueueMax: -1, SlowStart: -1, MaxFails: -1},
			[]string{"max conns", "queue max", "slow start", "max fails"}},
		{"too many backends", PoolOptions{Backends: make([]BackendSpec, MaxBackends+1)}, []string{"4097 backends"}},
		{"every problem at once", PoolOptions{Backends: specs(-1, 2000)}, []string{"backends[0]", "backends[1]"}},
		{"reserve without a limit", PoolOptions{Reserved: 1}, []string{"reserved 1"}},
		{"reserve at the limit", PoolOptions{MaxConnsPerBackend: 4, Reserved: 4}, []string{"reserved 4"}},
		{"ejection percent out of range", PoolOptions{MaxEjectionPercent: 101}, []string{"max ejection percent 101"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.opts.Name = "shop"
			p, err := NewPool(tt.opts)
			if err == nil {
				t.Fatalf("NewPool = %v, nil error", p)
			}
			msg := err.Error()
			if verr := ValidatePool(tt.opts); verr == nil || verr.Error() != msg {
				t.Errorf("ValidatePool = %v, NewPool = %v: the two disagree", verr, err)
			}
			if !strings.HasPrefix(msg, `balancer: pool "shop": `) {
				t.Errorf("error %q lacks the pool prefix", msg)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not mention %q", msg, want)
				}
			}
		})
	}
}

// TestValidatePoolAgreesWithNewPool checks that the pools ValidatePool
// accepts are the pools NewPool builds, at the edges of every rule, and that
// validating records nothing in the shared state.
func TestValidatePoolAgreesWithNewPool(t *testing.T) {
	t.Parallel()
	st := NewBackendState("a")
	for i, opts := range []PoolOptions{
		{},
		{Backends: []BackendSpec{{Address: "a", Weight: MaxWeight, State: st}}, MaxFails: 1, EjectFor: time.Second},
		{MaxConnsPerBackend: 4, Reserved: 3, QueueMax: 1, QueueTimeout: time.Millisecond},
		{MaxEjectionPercent: 100, SlowStart: time.Second},
		{Backends: make([]BackendSpec, MaxBackends)},
		{Backends: specs(0, 0)},
		{MaxConnsPerBackend: 4, Reserved: 4},
		{QueueMax: 1},
		{Backends: []BackendSpec{{Address: "a", Weight: MaxWeight + 1}}},
	} {
		for j := range opts.Backends {
			if opts.Backends[j].Address == "" && len(opts.Backends) == MaxBackends {
				opts.Backends[j].Address = strconv.Itoa(j)
			}
		}
		opts.Staged = true
		verr := ValidatePool(opts)
		_, nerr := NewPool(opts)
		if (verr == nil) != (nerr == nil) || (verr != nil && verr.Error() != nerr.Error()) {
			t.Errorf("case %d: ValidatePool = %v, NewPool = %v", i, verr, nerr)
		}
	}
	if st.policy.Load() != nil {
		t.Error("validating or building a staged pool recorded settings in a BackendState")
	}
}

func TestNewPoolDefaults(t *testing.T) {
	t.Parallel()
	p := mustPool(t, PoolOptions{Name: "p", Backends: []BackendSpec{{Address: "10.0.0.1:80", Weight: 1}}})
	b, err := p.Pick()
	if err != nil {
		t.Fatal(err)
	}
	if b.State == nil || b.State.ID() != "10.0.0.1:80" || b.Index != 0 || p.Name() != "p" || p.State() == nil {
		t.Fatalf("defaults: backend %+v, pool %q, state %v", b, p.Name(), p.State())
	}
	if b.State.owner.Load() != p.State() {
		t.Fatal("NewPool did not record the pool state in the backend state")
	}
}

func TestBackendStateDownUntilProbed(t *testing.T) {
	t.Parallel()
	sp := specs(1, 1)
	sp[1].State = NewBackendStateDown("b")
	p := mustPool(t, PoolOptions{Backends: sp})
	if got := picks(p, 4); got != "aaaa" {
		t.Fatalf("picks = %q, want aaaa (b not probed yet)", got)
	}
	if !sp[1].State.SetProbeUp(true) || sp[1].State.SetProbeUp(true) {
		t.Fatal("SetProbeUp(true) should report a change once")
	}
	if got := picks(p, 4); got != "baba" {
		t.Fatalf("picks = %q, want baba", got)
	}
	if !sp[0].State.SetProbeUp(false) || sp[0].State.SetProbeUp(false) {
		t.Fatal("SetProbeUp(false) should report a change once")
	}
	if got := picks(p, 2); got != "bb" {
		t.Fatalf("picks = %q, want bb", got)
	}
}

func TestSlowStart(t *testing.T) {
	t.Parallel()
	const slow = 60 * time.Second
	clk := newFakeClock()
	sp := specs(1, 1)
	sp[0].State = NewBackendStateDown("a")
	sp[1].State = NewBackendStateDown("b")
	p := mustPool(t, PoolOptions{Backends: sp, SlowStart: slow, Now: clk.Now})
	sp[0].State.SetProbeUp(true)
	clk.Advance(2 * slow) // a is warm
	sp[1].State.SetProbeUp(true)

	// ratio returns b's picks per a's picks: b's effective weight relative to
	// a's, since both have weight 1.
	ratio := func() float64 {
		c := count(picks(p, 20000))
		return float64(c['b']) / float64(c['a'])
	}
	tests := []struct {
		at   time.Duration
		want float64
	}{
		{0, 0.10},
		{slow / 4, 0.325},
		{slow / 2, 0.55},
		{slow - time.Second, 0.985},
		{slow, 1},
		{2 * slow, 1},
	}
	var at time.Duration
	for _, tt := range tests {
		clk.Advance(tt.at - at)
		at = tt.at
		if got := ratio(); got < tt.want-0.02 || got > tt.want+0.02 {
			t.Errorf("at %v: b gets %.3f of a's picks, want %.3f", tt.at, got, tt.want)
		}
	}

	// Warm again: steady state must not read the clock.
	before := clk.reads.Load()
	picks(p, 1000)
	if n := clk.reads.Load() - before; n != 0 {
		t.Errorf("steady-state picks read the clock %d times", n)
	}

	// Going down and up restarts the ramp.
	sp[1].State.SetProbeUp(false)
	sp[1].State.SetProbeUp(true)
	if got := ratio(); got > 0.12 {
		t.Errorf("after recovery b gets %.3f of a's picks, want ~0.10", got)
	}
}

// TestSlowStartNeverRefuses: a pool whose only backend is slow-starting still
// serves every request; slow start shapes shares, it does not shed.
func TestSlowStartNeverRefuses(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	sp := specs(1)
	sp[0].State = NewBackendStateDown("a")
	p := mustPool(t, PoolOptions{Backends: sp, SlowStart: time.Minute, Now: clk.Now, MaxConnsPerBackend: 100})
	sp[0].State.SetProbeUp(true)
	if got := picks(p, 50); got != strings.Repeat("a", 50) {
		t.Fatalf("picks = %q, want all a", got)
	}
	for range 50 {
		mustAcquire(t, p, nil).Release()
	}
}

func TestPassiveEjection(t *testing.T) {
	t.Parallel()
	const ejectFor = 10 * time.Second
	clk := newFakeClock()
	sp := specs(1, 1)
	p := mustPool(t, PoolOptions{Backends: sp, MaxFails: 3, EjectFor: ejectFor, Now: clk.Now})
	a := sp[0].State

	a.Report(false)
	a.Report(false)
	a.Report(true) // resets the count
	a.Report(false)
	a.Report(false)
	if !a.Up() {
		t.Fatal("ejected after 2 consecutive failures, want 3")
	}
	a.Report(false)
	if a.Up() {
		t.Fatal("not ejected after 3 consecutive failures")
	}
	st := a.Stats()
	if !st.Ejected || st.Up || !st.ProbeUp || st.Ejections != 1 || st.Requests != 6 || st.Failures != 5 ||
		!st.EjectedUntil.Equal(clk.Now().Add(ejectFor)) {
		t.Fatalf("Stats = %+v", st)
	}
	if got := picks(p, 4); got != "bbbb" {
		t.Fatalf("picks while a is ejected = %q, want bbbb", got)
	}
	for range 10 {
		a.Report(false) // in-flight requests failing late: not counted
	}
	clk.Advance(ejectFor - 1)
	if a.Up() {
		t.Fatal("re-admitted early")
	}
	clk.Advance(1)
	if !a.Up() || a.Stats().Ejected {
		t.Fatal("not re-admitted after EjectFor")
	}
	if got := picks(p, 2); got != "ab" && got != "ba" {
		t.Fatalf("picks after re-admission = %q", got)
	}

	// Failing again soon after re-admission doubles the period, up to 8x.
	for _, want := range []time.Duration{2 * ejectFor, 4 * ejectFor, 8 * ejectFor, 8 * ejectFor} {
		for range 3 {
			a.Report(false)
		}
		if got := a.Stats().EjectedUntil.Sub(clk.Now()); got != want {
			t.Fatalf("ejected for %v, want %v", got, want)
		}
		clk.Advance(want)
	}
	// After a quiet spell longer than the last period, back to 1x.
	clk.Advance(9 * ejectFor)
	for range 3 {
		a.Report(false)
	}
	if got := a.Stats().EjectedUntil.Sub(clk.Now()); got != ejectFor {
		t.Fatalf("ejected for %v after a quiet spell, want %v", got, ejectFor)
	}
	// Probe state is separate: an ejected backend stays ejected when probed up.
	if a.SetProbeUp(true) || a.Up() {
		t.Fatal("probe-up must not lift an ejection")
	}
}

func TestPassiveEjectionOff(t *testing.T) {
	t.Parallel()
	sp := specs(1)
	mustPool(t, PoolOptions{Backends: sp})
	for range 100 {
		sp[0].State.Report(false)
	}
	if st := sp[0].State.Stats(); !st.Up || st.Failures != 100 || st.Ejections != 0 {
		t.Fatalf("Stats = %+v, want up with 100 failures", st)
	}
	// A state in no pool counts too.
	s := NewBackendState("x")
	s.Report(false)
	if st := s.Stats(); !st.Up || st.Failures != 1 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestUpNoClockInSteadyState(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	sp := specs(1, 1)
	p := mustPool(t, PoolOptions{Backends: sp, MaxFails: 1, EjectFor: time.Second, Now: clk.Now})
	for range 100 {
		sp[0].State.Up()
		sp[0].State.Report(true)
		_, _ = p.Pick()
	}
	if n := clk.reads.Load(); n != 0 {
		t.Fatalf("clock read %d times", n)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	s := NewBackendStateDown("x")
	if st := s.Stats(); st.Up || st.ProbeUp || !st.UpSince.IsZero() || st.ID != "x" {
		t.Fatalf("down Stats = %+v", st)
	}
	before := time.Now()
	s.SetProbeUp(true)
	st := s.Stats()
	if !st.Up || st.UpSince.Before(before) || st.UpSince.After(time.Now()) {
		t.Fatalf("up Stats = %+v", st)
	}
}

// TestEjectionNeverEmptiesThePool: passive health ejects at most
// MaxEjectionPercent of the weighted backends, and never the last one up, so a
// backend that drops a few connections keeps serving instead of the whole pool
// answering "no healthy backend" for EjectFor.
func TestEjectionNeverEmptiesThePool(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	fail := func(s *BackendState, n int) {
		for range n {
			s.Report(false)
		}
	}

	one := specs(1)
	p := mustPool(t, PoolOptions{Backends: one, MaxFails: 3, EjectFor: time.Second, Now: clk.Now})
	fail(one[0].State, 30)
	if st := one[0].State.Stats(); !st.Up || st.Ejections != 0 || st.Failures != 30 {
		t.Fatalf("the only backend: Stats = %+v, want up, never ejected, 30 failures", st)
	}
	if _, err := p.Pick(); err != nil {
		t.Fatalf("Pick on a pool whose only backend fails: %v", err)
	}

	// Two backends at the default 50%: one may go, never both.
	two := specs(1, 1)
	p = mustPool(t, PoolOptions{Backends: two, MaxFails: 3, EjectFor: time.Second, Now: clk.Now})
	fail(two[0].State, 3)
	fail(two[1].State, 3)
	if two[0].State.Up() || !two[1].State.Up() {
		t.Fatalf("up = %v, %v; want a ejected, b kept", two[0].State.Up(), two[1].State.Up())
	}
	clk.Advance(time.Second) // a is back
	fail(two[1].State, 3)
	if !two[0].State.Up() || two[1].State.Up() {
		t.Fatal("once a is back, b may be ejected")
	}

	// The last backend up is kept even within the percentage: b is
	// probe-down, so a is all the pool has.
	clk.Advance(8 * time.Second)
	pair := specs(1, 1)
	mustPool(t, PoolOptions{Backends: pair, MaxFails: 1, EjectFor: time.Second, MaxEjectionPercent: 100, Now: clk.Now})
	pair[1].State.SetProbeUp(false)
	fail(pair[0].State, 5)
	if !pair[0].State.Up() {
		t.Fatal("the last backend up was ejected")
	}

	// Ten backends at 30%: three at once. Draining backends do not count.
	ten := specs(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0)
	mustPool(t, PoolOptions{Backends: ten, MaxFails: 1, EjectFor: time.Second, MaxEjectionPercent: 30, Now: clk.Now})
	for _, sp := range ten[:10] {
		fail(sp.State, 1)
	}
	up := 0
	for _, sp := range ten[:10] {
		if sp.State.Up() {
			up++
		}
	}
	if up != 7 {
		t.Fatalf("%d of 10 up after all failed, want 7 (30%% ejected)", up)
	}
	fail(ten[10].State, 1)
	if ten[10].State.Up() {
		t.Fatal("a draining backend is not protected by the bound")
	}
}

// TestStagedPoolChangesNothingUntilAdopted: a generation built while another
// serves (and whose build may yet fail) must not change the passive-health
// settings the serving one applies; Adopt hands them over.
func TestStagedPoolChangesNothingUntilAdopted(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	sp := specs(1, 1)
	ps := NewPoolState("test")
	mustPool(t, PoolOptions{State: ps, Backends: sp, MaxFails: 100, EjectFor: time.Second, Now: clk.Now})
	next := mustPool(t, PoolOptions{State: ps, Backends: sp, MaxFails: 1, EjectFor: time.Second, Now: clk.Now, Staged: true})
	sp[0].State.Report(false)
	if !sp[0].State.Up() {
		t.Fatal("a staged generation's max fails (1) applied before it was adopted")
	}
	next.Adopt()
	sp[0].State.Report(false)
	if sp[0].State.Up() {
		t.Fatal("the adopted generation's max fails (1) does not apply")
	}
}
