package degrade

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestEntryAfterWindows(t *testing.T) {
	for _, windows := range []int{1, 2, 3, 5} {
		t.Run(strings.Repeat("w", windows), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, ratioCfg(windows, 10*time.Second))
			for i := 1; i < windows; i++ {
				h.step(busy)
				if h.gate.Degraded() || len(h.trs) != 0 {
					t.Fatalf("degraded after %d of %d windows over the threshold", i, windows)
				}
			}
			h.step(busy)
			if !h.gate.Degraded() || len(h.trs) != 1 {
				t.Fatalf("not degraded after %d windows over the threshold (transitions %d)", windows, len(h.trs))
			}
			tr := h.trs[0]
			if tr.From != ModeNormal || tr.To != ModeDegraded || tr.Pool != "shop" || !tr.At.Equal(h.now) {
				t.Errorf("transition = %+v", tr)
			}
			if tr.Level != LevelShedLow || h.gate.Level() != LevelShedLow {
				t.Errorf("entry level = %v, gate %v; want %v: low priority goes first", tr.Level, h.gate.Level(), LevelShedLow)
			}
		})
	}
}

func TestEntryNeedsConsecutiveWindows(t *testing.T) {
	h := newHarness(t, ratioCfg(3, 0))
	for range 20 {
		h.run(2, busy)
		h.step(middle) // breaks the run: under enter, though above exit
	}
	if len(h.trs) != 0 {
		t.Fatalf("entered after runs of 2 windows with windows: 3: %+v", h.trs[0])
	}
	// The run need not be the same signal every window.
	h = newHarness(t, fullCfg())
	h.step(win{ratio: 0.95, lat: 10 * time.Millisecond})
	h.step(win{ratio: 0.3, lat: 2 * time.Second})
	if !h.gate.Degraded() {
		t.Fatal("inflight then p95 over enter: not degraded")
	}
	if got, want := h.trs[0].Reason, "p95_latency "; !strings.HasPrefix(got, want) {
		t.Errorf("reason %q, want the last window's signal %q...", got, want)
	}
}

func TestExitAfterHold(t *testing.T) {
	tests := []struct {
		name       string
		hold       time.Duration
		windows    int
		calmToExit int // calm 2s windows after which the pool leaves
	}{
		{"hold 10s", 10 * time.Second, 2, 5},
		{"hold 9s rounds up to whole windows", 9 * time.Second, 2, 5},
		{"hold 0 needs windows", 0, 3, 3},
		{"hold shorter than windows", 2 * time.Second, 3, 3},
		{"hold 30s", 30 * time.Second, 2, 15},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, ratioCfg(tt.windows, tt.hold))
			h.run(tt.windows, busy)
			if !h.gate.Degraded() {
				t.Fatal("not degraded")
			}
			for i := 1; i < tt.calmToExit; i++ {
				h.step(calm)
				if !h.gate.Degraded() {
					t.Fatalf("left after %d calm windows, want %d", i, tt.calmToExit)
				}
			}
			h.step(calm)
			if h.gate.Degraded() {
				t.Fatalf("still degraded after %d calm windows", tt.calmToExit)
			}
			if to, from := h.count(); to != 1 || from != 1 {
				t.Fatalf("transitions: %d entries, %d exits", to, from)
			}
			if tr := h.trs[1]; tr.To != ModeNormal || tr.Level != LevelNormal || h.gate.Level() != LevelNormal {
				t.Errorf("exit transition %+v, gate level %v", tr, h.gate.Level())
			}
		})
	}
}

func TestExitCalmMustBeContinuous(t *testing.T) {
	h := newHarness(t, ratioCfg(2, 10*time.Second))
	h.run(2, busy)
	// Four calm windows, then one between the thresholds: the calm restarts.
	for range 5 {
		h.run(4, calm)
		h.step(middle)
	}
	if !h.gate.Degraded() {
		t.Fatal("left degraded mode without 10s of continuous calm")
	}
	// One signal over its exit threshold is enough to break the calm.
	h = newHarness(t, fullCfg())
	h.run(2, busy)
	for range 20 {
		h.run(10, win{ratio: 0.3, lat: 50 * time.Millisecond})
		h.step(win{ratio: 0.3, lat: 50 * time.Millisecond, failed: 10}) // error rate 0.1 > 0.05
	}
	if !h.gate.Degraded() {
		t.Fatal("left degraded mode while error_rate kept breaking the calm")
	}
}

func TestHysteresis(t *testing.T) {
	// Between the exit and the enter thresholds, a pool stays as it is.
	for _, start := range []Mode{ModeNormal, ModeDegraded} {
		t.Run(start.String(), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, fullCfg())
			if start == ModeDegraded {
				h.run(2, busy)
			}
			h.run(100, middle)
			if got := h.status().Mode; got != start {
				t.Fatalf("after 100 windows between the thresholds: %v, want %v", got, start)
			}
			if want := int(start); len(h.trs) != want {
				t.Fatalf("%d transitions, want %d", len(h.trs), want)
			}
		})
	}
}

func TestNoFlappingOnNoise(t *testing.T) {
	const windows = 300
	rng := rand.New(rand.NewPCG(7, 11))
	jitter := func(v float64) float64 { return v * (0.9 + 0.2*rng.Float64()) } // ±10%
	tests := []struct {
		name string
		cfg  PoolConfig
		next func(i int) win
	}{
		{"inflight alternating", ratioCfg(2, 30*time.Second), func(i int) win {
			return win{ratio: []float64{0.95, 0.85}[i%2]}
		}},
		{"p95 alternating", fullCfg(), func(i int) win {
			return win{ratio: 0.3, lat: []time.Duration{900 * time.Millisecond, 700 * time.Millisecond}[i%2]}
		}},
		{"inflight jitter", ratioCfg(2, 30*time.Second), func(int) win { return win{ratio: jitter(0.9)} }},
		{"p95 jitter", fullCfg(), func(int) win {
			return win{ratio: 0.3, lat: time.Duration(jitter(float64(800 * time.Millisecond)))}
		}},
		{"error rate jitter", fullCfg(), func(int) win {
			return win{ratio: 0.3, lat: 50 * time.Millisecond, n: 1000, failed: int(jitter(200))}
		}},
		{"queue wait jitter", fullCfg(), func(int) win {
			return win{ratio: 0.3, lat: 50 * time.Millisecond, queueWait: time.Duration(jitter(float64(200 * time.Millisecond)))}
		}},
		{"every signal jitter", fullCfg(), func(int) win {
			return win{ratio: jitter(0.9), lat: time.Duration(jitter(float64(800 * time.Millisecond))), n: 1000, failed: int(jitter(200)),
				queueWait: time.Duration(jitter(float64(200 * time.Millisecond)))}
		}},
		{"windows 1 jitter", ratioCfg(1, 30*time.Second), func(int) win { return win{ratio: jitter(0.9)} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.cfg)
			for i := range windows {
				h.step(tt.next(i))
			}
			in, out := h.count()
			if in > 1 || out > 0 {
				t.Fatalf("noise at the enter threshold: %d entries, %d exits; want at most 1 entry and no exit", in, out)
			}
			if strings.Contains(tt.name, "alternating") && in != 0 {
				t.Fatalf("alternating over and under enter each window entered (windows: 2)")
			}
		})
	}
	// Noise at the exit threshold: at most one exit, and never a re-entry.
	h := newHarness(t, ratioCfg(2, 10*time.Second))
	h.run(2, busy)
	for range windows {
		h.step(win{ratio: jitter(0.6)})
	}
	if in, out := h.count(); in != 1 || out > 1 {
		t.Fatalf("noise at the exit threshold: %d entries, %d exits", in, out)
	}
}

func TestSustainedSpike(t *testing.T) {
	h := newHarness(t, fullCfg()) // window 2s, windows 2, hold 30s
	h.run(20, calm)
	h.run(30, busy)
	h.run(40, calm)
	in, out := h.count()
	if in != 1 || out != 1 {
		t.Fatalf("sustained spike: %d entries, %d exits; want 1 and 1", in, out)
	}
	if got, want := h.trs[0].At, t0.Add(22*2*time.Second); !got.Equal(want) {
		t.Errorf("entered at %v, want %v (second busy window)", got.Sub(t0), want.Sub(t0))
	}
	// 15 calm windows make 30s; the level is back to shed-low after 2.
	if got, want := h.trs[1].At, t0.Add(65*2*time.Second); !got.Equal(want) {
		t.Errorf("left at %v, want %v (30s of calm)", got.Sub(t0), want.Sub(t0))
	}
	st := h.status()
	if st.Transitions != 2 || st.Mode != ModeNormal || !st.Since.Equal(h.trs[1].At) {
		t.Errorf("status = %+v", st)
	}
}

// tvSpike runs a closed loop shaped on a TV broadcast spike:
// demand (in units of the pool's capacity) climbs from 0.3 to peak in 20s,
// holds a minute and falls back. Admission feeds back into the signals:
// refused classes are diverted, the rest is forwarded. With a connection
// limit (limited), the balancer refuses the overflow of what the gate admits
// and latency stays flat; without one, everything admitted is served, ever
// more slowly (M/M/1-like). It returns the harness, the highest level seen,
// and the origin's mean utilisation over the held peak.
func tvSpike(t *testing.T, cfg PoolConfig, shares map[Priority]float64, peak float64, limited bool) (*harness, Level, float64) {
	t.Helper()
	h := newHarness(t, cfg)
	if !limited {
		h.src.s.Capacity = 0
	}
	demandAt := func(i int) float64 {
		const base = 0.3
		switch {
		case i < 10:
			return base
		case i < 20: // 20s ramp
			return base + (peak-base)*float64(i-10)/10
		case i < 50: // held 60s
			return peak
		case i < 60:
			return peak - (peak-base)*float64(i-50)/10
		}
		return base
	}
	var top Level
	var busyness float64
	for i := range 120 {
		d, l := demandAt(i), h.gate.Level()
		top = max(top, l)
		w := win{diverted: map[Priority]uint64{}}
		admitted := 0.0
		for p, s := range shares {
			if Admit(p, l) {
				admitted += d * s
			} else {
				w.diverted[p] = uint64(d * s * 1000)
			}
		}
		if !Admit(PriorityCritical, l) {
			t.Fatalf("critical refused at %v", l)
		}
		served := admitted
		if limited {
			served = min(admitted, 1)
			w.lat = 100 * time.Millisecond
			if admitted > 1 {
				w.refused = uint64((admitted - 1) * 1000)
			}
		} else {
			w.lat = time.Duration(float64(50*time.Millisecond) / (1 - min(admitted, 0.99)))
		}
		w.ratio = min(served, 1)
		w.n = max(1, int(served*1000))
		if i >= 25 && i < 50 { // the held peak, after the ramp settles
			busyness += min(served, 1) / 25
		}
		h.step(w)
	}
	return h, top, busyness
}

func TestTVSpikeOneEntryOneExit(t *testing.T) {
	tv := map[Priority]float64{PriorityLow: 0.4, PriorityNormal: 0.3, PriorityHigh: 0.2, PriorityCritical: 0.1}
	tests := []struct {
		name    string
		shares  map[Priority]float64
		peak    float64
		limited bool
		top     Level
		busy    float64 // least mean utilisation over the peak
	}{
		// 18x the base, 5.4 times the pool's capacity. The gate refuses
		// low and normal; high and critical overflow into the balancer's
		// refusals, so the backends stay full.
		{"18x", tv, 5.4, true, LevelShedNormal, 0.99},
		// Search-heavy: refusing low alone brings every signal under its
		// exit threshold while the spike lasts; only the diverted demand
		// keeps the pool from leaving and coming straight back.
		{"search heavy", map[Priority]float64{PriorityLow: 0.85, PriorityNormal: 0.1, PriorityHigh: 0.04, PriorityCritical: 0.01}, 3, true, LevelShedLow, 0.4},
		// Without a connection limit only the gate brakes: high is refused
		// too, and the level hunts between shed-normal and critical-only.
		{"18x no limit", tv, 5.4, false, LevelCriticalOnly, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, top, busy := tvSpike(t, fullCfg(), tt.shares, tt.peak, tt.limited)
			in, out := h.count()
			if in != 1 || out != 1 {
				for _, tr := range h.trs {
					t.Logf("%v %v→%v %s", tr.At.Sub(t0), tr.From, tr.To, tr.Reason)
				}
				t.Fatalf("TV spike: %d entries, %d exits; want 1 and 1", in, out)
			}
			if top != tt.top {
				t.Errorf("highest level %v, want %v", top, tt.top)
			}
			if busy < tt.busy {
				t.Errorf("origin utilisation over the peak %.2f, want at least %.2f", busy, tt.busy)
			}
			// Demand is back to 0.3 from window 60: out by then plus the
			// 30s hold and a few windows of stepping down.
			if at := h.trs[1].At.Sub(t0); at > 100*2*time.Second {
				t.Errorf("left at %v, too late", at)
			}
		})
	}
}

func TestDivertedDemandBlocksExit(t *testing.T) {
	// Shedding brings the forwarded load under every exit threshold while
	// the diverted demand would bring it straight back: no exit.
	h := newHarness(t, ratioCfg(2, 10*time.Second))
	h.run(2, busy)
	heavy := win{ratio: 0.3, diverted: map[Priority]uint64{PriorityLow: 300}} // 0.3 × 400/100 = 1.2
	h.run(50, heavy)
	if !h.gate.Degraded() {
		t.Fatal("left degraded mode although readmitting low would give in-flight ratio 1.2")
	}
	if d := h.status().Signals.Demand; d != 4 {
		t.Errorf("demand = %v, want 4", d)
	}
	// Once the diverted demand fits (0.3 × 250/100 = 0.75 < 0.9), calm counts.
	light := win{ratio: 0.3, diverted: map[Priority]uint64{PriorityLow: 150}}
	h.run(4, light)
	if !h.gate.Degraded() {
		t.Fatal("left before the hold")
	}
	h.step(light)
	if h.gate.Degraded() {
		t.Fatal("still degraded after 10s of calm with fitting demand")
	}
}

func TestLevels(t *testing.T) {
	var h *harness
	want := func(l Level, what string) {
		t.Helper()
		if got := h.gate.Level(); got != l {
			t.Fatalf("%s: level %v, want %v", what, got, l)
		}
	}
	// With a connection limit (the harness's capacity 1000).
	h = newHarness(t, ratioCfg(2, 0))
	h.run(2, busy)
	want(LevelShedLow, "entry")
	h.step(busy)
	want(LevelShedNormal, "still over enter with low refused")
	h.step(win{ratio: 1, refused: 300})
	want(LevelShedNormal, "balancer refusing: high still tries for a slot")
	h.step(win{ratio: 1, down: true})
	want(LevelCriticalOnly, "no backend up")
	h.step(busy)
	want(LevelCriticalOnly, "one window with a backend up")
	h.step(busy)
	want(LevelShedNormal, "two windows with a backend up")
	h.step(middle)
	want(LevelShedNormal, "one window under enter")
	// Normal would not fit back in: the level holds.
	h.step(win{ratio: 0.3, diverted: map[Priority]uint64{PriorityNormal: 300}})
	h.step(win{ratio: 0.3, diverted: map[Priority]uint64{PriorityNormal: 300}})
	want(LevelShedNormal, "normal's diverted demand would not fit")
	h.step(win{ratio: 0.3, diverted: map[Priority]uint64{PriorityNormal: 50}})
	want(LevelShedNormal, "one window with fitting demand")
	h.step(win{ratio: 0.3, diverted: map[Priority]uint64{PriorityNormal: 50}})
	if h.gate.Degraded() {
		// hold 0, windows 2: calm for two windows and the level down to
		// shed-low in the same window: out.
		t.Fatalf("still degraded at level %v", h.gate.Level())
	}

	// Without a connection limit the gate is the only brake.
	h = newHarness(t, fullCfg())
	h.src.s.Capacity = 0
	slow := win{lat: 2 * time.Second}
	h.run(2, slow)
	want(LevelShedLow, "entry")
	h.step(slow)
	want(LevelShedNormal, "still slow")
	h.step(slow)
	want(LevelCriticalOnly, "still slow with normal refused")
	h.run(2, calm)
	want(LevelShedNormal, "calm for two windows")

	// No backend up: critical only from entry.
	h = newHarness(t, PoolConfig{Enter: Thresholds{HealthyCapacity: 0.5}, Exit: Thresholds{HealthyCapacity: 0.8}, Windows: 1})
	h.step(win{down: true})
	want(LevelCriticalOnly, "no backend up")
}

func TestOverride(t *testing.T) {
	h := newHarness(t, ratioCfg(2, 10*time.Second))
	check := func(mode, auto Mode, o Override, level Level, reason string, transitions int) {
		t.Helper()
		st := h.status()
		if st.Mode != mode || st.Auto != auto || st.Override != o || st.Level != level || h.gate.Level() != level {
			t.Fatalf("status %v/%v/%v/%v, gate %v; want %v/%v/%v/%v", st.Mode, st.Auto, st.Override, st.Level, h.gate.Level(), mode, auto, o, level)
		}
		if !strings.HasPrefix(st.Reason, reason) {
			t.Fatalf("reason %q, want %q...", st.Reason, reason)
		}
		if len(h.trs) != transitions || st.Transitions != uint64(transitions) {
			t.Fatalf("%d transitions (status %d), want %d", len(h.trs), st.Transitions, transitions)
		}
	}
	h.step(calm)
	if err := h.m.SetOverride("shop", OverrideDegraded); err != nil {
		t.Fatal(err)
	}
	check(ModeDegraded, ModeNormal, OverrideDegraded, LevelShedLow, "admin override: degraded", 1)
	if !h.trs[0].At.Equal(h.now) {
		t.Error("override applied at the next window, want at once")
	}
	h.run(20, calm)
	check(ModeDegraded, ModeNormal, OverrideDegraded, LevelShedLow, "admin override: degraded", 1)
	h.run(3, busy) // the signals degrade too, and set the level
	check(ModeDegraded, ModeDegraded, OverrideDegraded, LevelShedNormal, "admin override: degraded", 1)

	if err := h.m.SetOverride("shop", OverrideNormal); err != nil {
		t.Fatal(err)
	}
	check(ModeNormal, ModeDegraded, OverrideNormal, LevelNormal, "admin override: normal", 2)
	h.run(3, busy)
	check(ModeNormal, ModeDegraded, OverrideNormal, LevelNormal, "admin override: normal", 2)

	if err := h.m.SetOverride("shop", OverrideAuto); err != nil {
		t.Fatal(err)
	}
	check(ModeDegraded, ModeDegraded, OverrideAuto, LevelShedNormal, "inflight_ratio 0.95 > 0.9", 3)
	if err := h.m.SetOverride("shop", OverrideAuto); err != nil {
		t.Fatal(err)
	}
	check(ModeDegraded, ModeDegraded, OverrideAuto, LevelShedNormal, "inflight_ratio", 3)

	if err := h.m.SetOverride("nope", OverrideNormal); !errors.Is(err, ErrUnknownPool) {
		t.Errorf("unknown pool: %v, want ErrUnknownPool", err)
	}
	if err := h.m.SetOverride("shop", Override(9)); err == nil {
		t.Error("override 9 accepted")
	}
	if st := h.m.Stats(); len(st) != 1 || st[0].ToDegraded != 2 || st[0].ToNormal != 1 || st[0].Mode != ModeDegraded || st[0].Level != LevelShedNormal {
		t.Errorf("stats = %+v", st)
	}
}

func TestReasons(t *testing.T) {
	p95 := roundDuration(bucketMid(bucketOf(1200 * time.Millisecond))).String()
	tests := []struct {
		name  string
		enter Thresholds
		exit  Thresholds
		w     win
		want  string
	}{
		{"inflight", Thresholds{InflightRatio: 0.9}, Thresholds{InflightRatio: 0.6}, win{ratio: 0.95}, "inflight_ratio 0.95 > 0.9"},
		{"inflight equal", Thresholds{InflightRatio: 0.9}, Thresholds{InflightRatio: 0.6}, win{ratio: 0.9}, "inflight_ratio 0.9 = 0.9"},
		{"queue wait", Thresholds{QueueWait: 200 * time.Millisecond}, Thresholds{QueueWait: 20 * time.Millisecond},
			win{queueWait: 350 * time.Millisecond}, "queue_wait 350ms > 200ms"},
		{"p95", Thresholds{P95Latency: 800 * time.Millisecond}, Thresholds{P95Latency: 300 * time.Millisecond},
			win{lat: 1200 * time.Millisecond}, "p95_latency " + p95 + " > 800ms"},
		{"error rate", Thresholds{ErrorRate: 0.2}, Thresholds{ErrorRate: 0.05}, win{failed: 25}, "error_rate 0.25 > 0.2"},
		{"healthy capacity", Thresholds{HealthyCapacity: 0.5}, Thresholds{HealthyCapacity: 0.8}, win{up: 4}, "healthy_capacity 0.4 < 0.5"},
		{"furthest past wins", fullCfg().Enter, fullCfg().Exit, win{ratio: 0.95, failed: 50}, "error_rate 0.5 > 0.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, PoolConfig{Enter: tt.enter, Exit: tt.exit, Windows: 1})
			h.step(tt.w)
			if len(h.trs) != 1 {
				t.Fatalf("%d transitions", len(h.trs))
			}
			if got := h.trs[0].Reason; got != tt.want {
				t.Errorf("reason %q, want %q", got, tt.want)
			}
			if got := h.status().Reason; got != tt.want {
				t.Errorf("status reason %q, want %q", got, tt.want)
			}
		})
	}

	h := newHarness(t, ratioCfg(1, 4*time.Second))
	h.step(busy)
	h.run(2, calm)
	if want := "all signals under exit thresholds for 4s (inflight_ratio 0.3 <= 0.6)"; len(h.trs) != 2 || h.trs[1].Reason != want {
		t.Fatalf("exit transitions %+v, want reason %q", h.trs, want)
	}
	h = newHarness(t, fullCfg())
	h.run(2, busy)
	h.run(15, win{ratio: 0.1, n: 3})
	want := "all signals under exit thresholds for 30s (inflight_ratio 0.1 <= 0.6, queue_wait 0s <= 20ms, p95_latency n/a <= 300ms, error_rate n/a <= 0.05)"
	if len(h.trs) != 2 || h.trs[1].Reason != want {
		t.Fatalf("exit transitions %+v, want reason %q", h.trs, want)
	}
}

func TestMinRequests(t *testing.T) {
	// Five failures out of five is no error rate to degrade a site for.
	h := newHarness(t, fullCfg())
	h.run(10, win{n: 5, failed: 5, lat: 5 * time.Second})
	if len(h.trs) != 0 {
		t.Fatalf("entered on %d requests: %s", 5, h.trs[0].Reason)
	}
	if s := h.status().Signals; s.ErrorRate != 0 || s.P95Latency != 0 || s.Forwarded != 5 || s.Failed != 5 || s.Demand != 0 {
		t.Errorf("signals = %+v", s)
	}
	h = newHarness(t, PoolConfig{Enter: Thresholds{ErrorRate: 0.5}, Exit: Thresholds{ErrorRate: 0.1}, MinRequests: 5})
	h.run(2, win{n: 5, failed: 5})
	if !h.gate.Degraded() {
		t.Fatal("min requests 5: not degraded on 5 of 5 failing")
	}
}

func TestSignalsFromSource(t *testing.T) {
	h := newHarness(t, fullCfg())
	h.src.s.QueueDepth = 7
	h.step(win{ratio: 0.5, lat: 100 * time.Millisecond, failed: 10, queueWait: 30 * time.Millisecond, refused: 4, up: 6,
		diverted: map[Priority]uint64{PriorityLow: 20, 0: 5}})
	s := h.status().Signals
	want := Signals{
		At: h.now, Window: 2 * time.Second,
		InflightRatio: 0.5, Inflight: 500, Capacity: 1000,
		QueueDepth: 7, QueueWait: 30 * time.Millisecond, Refused: 4,
		Forwarded: 100, Failed: 10, P95Latency: bucketMid(bucketOf(100 * time.Millisecond)), ErrorRate: 0.1,
		Diverted: 25, Demand: 1.25, HealthyCapacity: 0.6,
	}
	if s != want {
		t.Errorf("signals\n got %+v\nwant %+v", s, want)
	}
	if h.m.pools["shop"].win.diverted[PriorityNormal] != 5 {
		t.Error("zero priority not diverted as normal")
	}
	// A source that goes backwards (replaced by one counting from zero) is
	// read from its new origin, not as a wrap.
	h.src.s.QueueWaits, h.src.s.QueueWaitNanos, h.src.s.QueueRefused = 1, uint64(time.Millisecond), 0
	h.step(calm)
	if s := h.status().Signals; s.QueueWait != time.Millisecond || s.Refused != 0 {
		t.Errorf("after reset: queue wait %v, refused %d", s.QueueWait, s.Refused)
	}
	// Without a source: capacity signals have no data, healthy capacity is 1.
	m := NewMonitor(MonitorOptions{Now: func() time.Time { return t0 }})
	if err := m.Configure([]PoolConfig{{Name: "x", Enter: Thresholds{InflightRatio: 0.5}, Exit: Thresholds{InflightRatio: 0.1}, Windows: 1}}); err != nil {
		t.Fatal(err)
	}
	m.Step(t0.Add(time.Hour))
	if st, _ := m.Status("x"); st.Signals.HealthyCapacity != 1 || st.Signals.Capacity != 0 || st.Mode != ModeNormal {
		t.Errorf("no source: %+v", st)
	}
}

func TestStepWaitsForTheWindow(t *testing.T) {
	h := newHarness(t, ratioCfg(1, 0))
	h.src.s.Inflight = 950
	h.m.Step(t0.Add(time.Second)) // half a window: nothing
	h.m.Step(t0)                  // the clock going backwards: nothing
	if st := h.status(); !st.Signals.At.IsZero() || h.gate.Degraded() {
		t.Fatalf("evaluated before the window: %+v", st.Signals)
	}
	h.m.Step(t0.Add(1900 * time.Millisecond)) // timers may be a little early
	if !h.gate.Degraded() {
		t.Fatal("not evaluated at 95% of the window")
	}
	// A pool with a longer window than the monitor's is evaluated less often.
	m := NewMonitor(MonitorOptions{Window: time.Second, Now: func() time.Time { return t0 }})
	src := &fakeSource{Sample{Inflight: 95, Capacity: 100}}
	if err := m.Configure([]PoolConfig{{Name: "slow", Source: src, Window: 5 * time.Second, Windows: 1,
		Enter: Thresholds{InflightRatio: 0.9}, Exit: Thresholds{InflightRatio: 0.5}}}); err != nil {
		t.Fatal(err)
	}
	if got := m.tick(); got != time.Second {
		t.Errorf("tick %v, want 1s", got)
	}
	for i := 1; i <= 4; i++ {
		m.Step(t0.Add(time.Duration(i) * time.Second))
	}
	if m.Gate("slow").Degraded() {
		t.Fatal("5s window evaluated after 4s")
	}
	m.Step(t0.Add(5 * time.Second))
	if st, _ := m.Status("slow"); !m.Gate("slow").Degraded() || st.Signals.Window != 5*time.Second {
		t.Fatalf("after 5s: %+v", st)
	}
}

func TestConfigureKeepsState(t *testing.T) {
	h := newHarness(t, ratioCfg(2, 10*time.Second))
	h.run(3, busy)
	rec := h.rec
	rec.Observe(time.Millisecond, false) // in flight across the reload
	before := h.status()
	if err := h.m.SetOverride("shop", OverrideDegraded); err != nil {
		t.Fatal(err)
	}

	// Reload: shop stays with new thresholds, blog appears.
	cfg := ratioCfg(2, 4*time.Second)
	cfg.Name, cfg.Source = "shop", h.src
	blog := PoolConfig{Name: "blog", Enter: Thresholds{P95Latency: time.Second}, Exit: Thresholds{P95Latency: 100 * time.Millisecond}}
	if err := h.m.Configure([]PoolConfig{blog, cfg}); err != nil {
		t.Fatal(err)
	}
	if h.m.Gate("shop") != h.gate || h.m.Recorder("shop") != rec {
		t.Fatal("gate or recorder replaced by a reload")
	}
	st := h.status()
	if st.Mode != ModeDegraded || st.Override != OverrideDegraded || !st.Since.Equal(before.Since) || st.Transitions != before.Transitions || st.Level != LevelShedNormal {
		t.Fatalf("state lost in reload: before %+v after %+v", before, st)
	}
	if got := h.m.Statuses(); len(got) != 2 || got[0].Pool != "blog" || got[1].Pool != "shop" || got[0].Mode != ModeNormal {
		t.Fatalf("statuses = %+v", got)
	}
	if err := h.m.SetOverride("shop", OverrideAuto); err != nil {
		t.Fatal(err)
	}
	h.step(calm)
	if s := h.status().Signals; s.Forwarded != 101 {
		t.Errorf("forwarded %d across the reload, want 101", s.Forwarded)
	}
	h.run(1, calm)
	if h.gate.Degraded() {
		t.Fatal("new hold (4s) not applied")
	}

	// A bad config changes nothing.
	bad := cfg
	bad.Exit.InflightRatio = 0.95
	if err := h.m.Configure([]PoolConfig{bad}); err == nil {
		t.Fatal("exit above enter accepted")
	}
	if _, ok := h.m.Status("blog"); !ok {
		t.Fatal("a failed Configure dropped a pool")
	}

	// Reload without shop: dropped, and its gate no longer degrades anything.
	h.run(2, busy)
	if !h.gate.Degraded() {
		t.Fatal("not degraded")
	}
	if err := h.m.Configure([]PoolConfig{blog}); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.m.Status("shop"); ok {
		t.Fatal("removed pool still configured")
	}
	if h.gate.Degraded() {
		t.Fatal("removed pool's gate still degraded")
	}
	if err := h.m.SetOverride("shop", OverrideDegraded); !errors.Is(err, ErrUnknownPool) {
		t.Fatalf("override of a removed pool: %v", err)
	}
	// Back again: a fresh pool.
	if err := h.m.Configure([]PoolConfig{blog, cfg}); err != nil {
		t.Fatal(err)
	}
	if g := h.m.Gate("shop"); g == h.gate || g.Degraded() {
		t.Fatal("re-added pool reuses its old state")
	}
	if st := h.status(); st.Transitions != 0 || st.Mode != ModeNormal {
		t.Fatalf("re-added pool: %+v", st)
	}
}

func TestGateBeforeConfigure(t *testing.T) {
	now := t0
	m := NewMonitor(MonitorOptions{Now: func() time.Time { return now }})
	g, r := m.Gate("new"), m.Recorder("new")
	if g != m.Gate("new") || r != m.Recorder("new") {
		t.Fatal("Gate and Recorder not stable")
	}
	for range 10 {
		r.Observe(time.Hour, true)
		now = now.Add(2 * time.Second)
		m.Step(now)
	}
	if g.Degraded() {
		t.Fatal("unconfigured pool degraded automatically")
	}
	if err := m.SetOverride("new", OverrideDegraded); err != nil || !g.Degraded() {
		t.Fatalf("override of a pool known by its gate: %v", err)
	}
	if err := m.Configure([]PoolConfig{{Name: "new", Enter: Thresholds{ErrorRate: 0.5}, Exit: Thresholds{ErrorRate: 0.1}}}); err != nil {
		t.Fatal(err)
	}
	if m.Gate("new") != g || !g.Degraded() {
		t.Fatal("Configure replaced a gate handed out before it")
	}
}

func TestConfigureValidation(t *testing.T) {
	ok := ratioCfg(2, time.Second)
	ok.Name = "a"
	with := func(f func(*PoolConfig)) PoolConfig { c := ok; f(&c); return c }
	tests := []struct {
		name  string
		pools []PoolConfig
		want  string
	}{
		{"empty name", []PoolConfig{with(func(c *PoolConfig) { c.Name = "" })}, "name: empty"},
		{"duplicate", []PoolConfig{ok, ok}, `pools[1]: name "a" duplicates pools[0]`},
		{"exit missing", []PoolConfig{with(func(c *PoolConfig) { c.Exit = Thresholds{} })}, "exit.inflight_ratio: required because enter.inflight_ratio is set"},
		{"exit alone", []PoolConfig{with(func(c *PoolConfig) { c.Exit.ErrorRate = 0.1 })}, "exit.error_rate: set, but enter.error_rate is not"},
		{"exit equal", []PoolConfig{with(func(c *PoolConfig) { c.Exit.InflightRatio = 0.9 })}, "exit.inflight_ratio: must be lower than enter.inflight_ratio (0.9), got 0.9"},
		{"exit above", []PoolConfig{with(func(c *PoolConfig) {
			c.Enter.P95Latency, c.Exit.P95Latency = time.Second, 2*time.Second
		})}, "exit.p95_latency: must be lower than enter.p95_latency (1s), got 2s"},
		{"capacity inverted", []PoolConfig{with(func(c *PoolConfig) {
			c.Enter.HealthyCapacity, c.Exit.HealthyCapacity = 0.5, 0.4
		})}, "exit.healthy_capacity: must be higher than enter.healthy_capacity (0.5), got 0.4"},
		{"ratio above 1", []PoolConfig{with(func(c *PoolConfig) { c.Enter.ErrorRate, c.Exit.ErrorRate = 2, 0.1 })}, "enter.error_rate: must be between 0 and 1, got 2"},
		{"negative", []PoolConfig{with(func(c *PoolConfig) { c.Exit.QueueWait = -1 })}, "exit.queue_wait: must not be negative, got -1ns"},
		{"negative hold", []PoolConfig{with(func(c *PoolConfig) { c.Hold = -time.Second })}, "hold: must not be negative, got -1s"},
		{"short window", []PoolConfig{with(func(c *PoolConfig) { c.Window = time.Millisecond })}, "window: must be at least 100ms, got 1ms"},
		{"long window", []PoolConfig{with(func(c *PoolConfig) { c.Window = 2 * time.Minute })}, "window: must be at most 1m, got 2m0s"},
		{"many windows", []PoolConfig{with(func(c *PoolConfig) { c.Windows = 101 })}, "windows: must be between 1 and 100, got 101"},
		{"long hold", []PoolConfig{with(func(c *PoolConfig) { c.Hold = 2 * time.Hour })}, "hold: must be at most 1h, got 2h0m0s"},
		{"long threshold", []PoolConfig{with(func(c *PoolConfig) {
			c.Enter.QueueWait, c.Exit.QueueWait = 2*time.Hour, time.Second
		})}, "enter.queue_wait: must be at most 1h, got 2h0m0s"},
		{"negative windows", []PoolConfig{with(func(c *PoolConfig) { c.Windows = -1 })}, "windows: must be between 1 and 100, got -1"},
		{"negative min requests", []PoolConfig{with(func(c *PoolConfig) { c.MinRequests = -1 })}, "min requests: -1: must be >= 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := NewMonitor(MonitorOptions{})
			err := m.Configure(tt.pools)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Configure: %v, want an error containing %q", err, tt.want)
			}
			if len(m.Statuses()) != 0 {
				t.Fatal("a failed Configure applied pools")
			}
		})
	}
	if err := NewMonitor(MonitorOptions{}).Configure([]PoolConfig{ok, {Name: "never"}}); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
}

func TestOverrideParse(t *testing.T) {
	for _, o := range []Override{OverrideAuto, OverrideDegraded, OverrideNormal} {
		if got, err := ParseOverride(o.String()); err != nil || got != o {
			t.Errorf("ParseOverride(%q) = %v, %v", o.String(), got, err)
		}
	}
	if _, err := ParseOverride("off"); err == nil {
		t.Error(`ParseOverride("off") accepted`)
	}
	if ModeDegraded.String() != "degraded" || ModeNormal.String() != "normal" {
		t.Error("mode names")
	}
}

// TestExitWithSteadyTraffic is the exit rule of issue 15 on the state
// machine: after a spike, with traffic steady at 20% of capacity (forwarded,
// and low diverted at a rate that fits), the pool leaves within hold plus
// three windows, once, and stays normal while the same traffic goes on: no
// second entry. Traffic never stops. (The proxy-level reproduction of the
// defect is proxy.TestDegradedExitWhileTrafficFlows.)
func TestExitWithSteadyTraffic(t *testing.T) {
	cfg := fullCfg()
	cfg.Hold = 10 * time.Second
	h := newHarness(t, cfg)
	h.run(5, busy)
	if !h.gate.Degraded() || h.gate.Level() < LevelShedNormal {
		t.Fatalf("spike: level %v", h.gate.Level())
	}
	steady := win{ratio: 0.2, lat: 40 * time.Millisecond, n: 200, diverted: map[Priority]uint64{PriorityLow: 40, PriorityNormal: 20}}
	limit := int(cfg.Hold/h.window) + 3
	exitAt := 0
	for i := 1; i <= 60; i++ {
		w := steady
		if !h.gate.Degraded() {
			w.diverted = nil // normal: nothing is diverted, all is forwarded
			w.n, w.ratio = 260, 0.26
		}
		h.step(w)
		if exitAt == 0 && !h.gate.Degraded() {
			exitAt = i
		}
	}
	if exitAt == 0 || exitAt > limit {
		t.Fatalf("left after %d steady windows, want within hold + 3 windows (%d); status %+v", exitAt, limit, h.status())
	}
	if in, out := h.count(); in != 1 || out != 1 {
		t.Fatalf("transitions: %d entries, %d exits over 60 steady windows, want one of each", in, out)
	}
}

// TestPrepareChangesNothingUntilCommit checks the two halves of Configure: a
// Plan that is prepared and dropped leaves the monitor as it was, its gates
// are the ones the pools have once it is committed, and a refused Plan is an
// error naming the pool and the field.
func TestPrepareChangesNothingUntilCommit(t *testing.T) {
	t0 := time.Unix(1000, 0)
	m := NewMonitor(MonitorOptions{Now: func() time.Time { return t0 }})
	defer m.Close()
	enter := Thresholds{InflightRatio: 0.9}
	exit := Thresholds{InflightRatio: 0.5}
	if err := m.Configure([]PoolConfig{{Name: "shop", Enter: enter, Exit: exit}}); err != nil {
		t.Fatal(err)
	}
	shop := m.Gate("shop")
	before := m.Statuses()

	plan, err := m.Prepare([]PoolConfig{{Name: "shop"}, {Name: "new"}})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Gate("shop") != shop {
		t.Error("the plan's gate of a pool that stays is not the one in service")
	}
	if plan.Gate("new") == nil || plan.Recorder("new") == nil || plan.Gate("gone") != nil {
		t.Error("the plan's gates and recorders do not follow its pools")
	}
	if got := m.Statuses(); len(got) != len(before) || got[0].Pool != "shop" {
		t.Fatalf("Prepare changed the monitor: %+v", got)
	}

	if _, err := m.Prepare([]PoolConfig{{Name: "shop", Enter: enter}}); err == nil ||
		!strings.Contains(err.Error(), "pools[0] (shop): exit.inflight_ratio") {
		t.Fatalf("Prepare of a pool without exit thresholds: %v", err)
	}

	plan.Commit()
	got := m.Statuses()
	if len(got) != 2 || got[0].Pool != "new" || got[1].Pool != "shop" {
		t.Fatalf("after Commit: %+v", got)
	}
	if m.Gate("new") != plan.Gate("new") {
		t.Error("the committed pool's gate is not the plan's")
	}
}
