package main

import (
	"slices"
	"testing"
	"time"
)

func TestDegradedGauge(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		text            string
		degraded, found bool
	}{
		{"# TYPE floodgate_degraded gauge\nfloodgate_degraded{pool=\"shop\"} 0\nfloodgate_degraded{pool=\"bo\"} 0\n", false, true},
		{"floodgate_degraded{pool=\"shop\"} 1\nfloodgate_degraded{pool=\"bo\"} 0\n", true, true},
		{"floodgate_degraded 1 1700000000000\n", true, true},
		{"floodgate_degraded_seconds_total 5\nfloodgate_requests_total 3\n", false, false},
		{"", false, false},
	} {
		d, f := degradedGauge(tt.text)
		if d != tt.degraded || f != tt.found {
			t.Errorf("degradedGauge(%q) = %v, %v; want %v, %v", tt.text, d, f, tt.degraded, tt.found)
		}
	}
}

func TestAnalyzeModes(t *testing.T) {
	t.Parallel()
	// Plateau 30..90 s, steady traffic from 110 s.
	p := Profile{Base: 1, Peak: 2, Lead: 10 * time.Second, Rise: 20 * time.Second, Hold: 60 * time.Second, Fall: 20 * time.Second, Tail: 150 * time.Second}
	s := func(at float64, d bool) modeSample {
		return modeSample{at: time.Duration(at * float64(time.Second)), degraded: d}
	}
	m := analyzeModes([]modeSample{s(0, false), s(33, true), s(60, true), s(135.5, false), s(200, false)}, p)
	want := Modes{Samples: 5, Entries: 1, Exits: 1, FirstEntryS: 33, LastExitS: 135.5, ExitAfterPeakS: 45.5, ExitAfterSteadyS: 25.5, DegradedS: 102.5}
	if *m != want {
		t.Errorf("one spike:\n got %+v\nwant %+v", *m, want)
	}
	// Flapping, then still degraded at the end: no exit time.
	m = analyzeModes([]modeSample{s(33, true), s(40, false), s(41, true), s(250, true)}, p)
	if m.Entries != 2 || m.Exits != 1 || !m.DegradedAtEnd || m.ExitAfterPeakS != -1 || m.ExitAfterSteadyS != -1 || m.DegradedS != 216 {
		t.Errorf("flapping: %+v", *m)
	}
	// Never degraded.
	if m = analyzeModes([]modeSample{s(1, false), s(2, false)}, p); m.Entries != 0 || m.FirstEntryS != -1 || m.LastExitS != -1 {
		t.Errorf("never: %+v", *m)
	}
}

// TestPeakAndRecovery checks the client's view: goodput is a 2xx within the SLO,
// by send time, per class; admitted means answered by the origin; refusals after
// the exit count only requests sent after it.
func TestPeakAndRecovery(t *testing.T) {
	t.Parallel()
	prof := Profile{Base: 1, Peak: 1, Lead: time.Second, Rise: time.Second, Hold: 4 * time.Second, Fall: time.Second, Tail: 4 * time.Second}
	// Plateau 2..6 s, recovery 7..11 s.
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	type req struct {
		at  float64
		cls int
		lat float64
		out outcome
	}
	reqs := []req{
		{1, clsStatic, 0.1, outServed},        // before the plateau
		{2.5, clsStatic, 0.1, outCached},      // good
		{3, clsProduct, 0.2, outDegraded},     // good: a stale page is a 2xx
		{3.5, clsProduct, 1.5, outServed},     // late: not good, admitted
		{4, clsSearch, 0.01, outShed},         // refused
		{4.5, clsCheckout, 0.05, outCaptured}, // good
		{5, clsCheckout, 0.3, outOriginErr},   // admitted, not good
		{5.5, clsBackoffice, 10, outNoAnswer}, // a client timeout
		{7.5, clsSearch, 0.1, outShed},        // recovery, before the exit
		{9.5, clsSearch, 0.1, outShed},        // recovery, after the exit
		{10, clsProduct, 0.1, outServed},      // recovery, after the exit
		{10.5, clsStatic, 0.1, outOverflow},   // never sent
	}
	in := runData{prof: prof, slo: time.Second}
	for _, r := range reqs {
		in.sched = append(in.sched, Arrival{At: sec(r.at), Class: uint8(r.cls)})
		in.recs = append(in.recs, record{lat: sec(r.lat), out: r.out})
	}
	pk, rc := peakAndRecovery(in, &Modes{LastExitS: 9, FirstEntryS: 2})
	if pk.Sent != 7 || pk.GoodputPct != 100*3.0/7 || pk.ClientTimeouts != 1 || pk.Refused != 4 || pk.AdmittedP99ms != 1500 {
		t.Errorf("peak %+v", *pk)
	}
	want := []float64{100, 50, 0, 50, 0}
	for c, w := range want {
		if pk.ClassGoodputPct[c] != w {
			t.Errorf("%s goodput %v, want %v", classNames[c], pk.ClassGoodputPct[c], w)
		}
	}
	if rc.Sent != 3 || rc.SentAfterExit != 2 || rc.RefusedAfterExit != 1 || rc.GoodputPct != 100.0/3 {
		t.Errorf("recovery %+v", *rc)
	}
	// Without a known exit, the whole recovery counts.
	if _, rc := peakAndRecovery(in, nil); rc.SentAfterExit != 3 || rc.RefusedAfterExit != 2 {
		t.Errorf("recovery without modes %+v", *rc)
	}
}

func TestAcceptance(t *testing.T) {
	t.Parallel()
	pass := Report{
		Peak:        &Peak{SLOms: 1000, GoodputPct: 96, ClassGoodputPct: []float64{100, 99.5, 80, 100, 100}, AdmittedP99ms: 900},
		Modes:       &Modes{Entries: 1, Exits: 1, ExitAfterSteadyS: 35},
		ExitBudgetS: 36,
		Recovery:    &Recovery{Sent: 100, SentAfterExit: 50},
		Orders:      Orders{Captured: 100, CapturedAfterExitS: 31, ReplayBudgetS: 32},
	}
	if f := acceptance(pass); len(f) != 0 {
		t.Errorf("a passing run fails: %v", f)
	}
	fail := pass
	fail.Peak = &Peak{SLOms: 1000, GoodputPct: 81, ClassGoodputPct: []float64{100, 85.4, 0, 100, 99}, AdmittedP99ms: 1200, ClientTimeouts: 3}
	fail.Modes = &Modes{Entries: 1, Exits: 0, DegradedAtEnd: true}
	fail.Recovery = &Recovery{RefusedAfterExit: 7}
	fail.Orders = Orders{Captured: 10, CapturedMissing: 2, Lost: 2, DupOrders: 1}
	got := acceptance(fail)
	want := []string{"goodput 81.0% < 95%", "pages 85.4% < 99%", "back office 99.0% < 99.9%", "p99 admitted 1.20s >= 1.00s",
		"3 client timeouts", "1 entries, 0 exits (want 1 and 1)", "7 refused after the exit",
		"2 captured orders never reached the origin", "2 orders lost", "1 orders processed twice"}
	if !slices.Equal(got, want) {
		t.Errorf("acceptance:\n got %q\nwant %q", got, want)
	}
	// A proxy without a degraded mode is not judged on leaving it.
	nomode := pass
	nomode.Modes = nil
	if f := acceptance(nomode); len(f) != 0 {
		t.Errorf("no degraded mode: %v", f)
	}
}
