package degrade

import (
	"testing"
	"time"
)

var sinkBool bool

// TestZeroAllocs enforces the request path's budget: recording a request,
// reading the gate and deciding admission allocate nothing. So does a window
// of the monitor without a transition, which runs on every tick.
func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are unreliable under -race")
	}
	h := newHarness(t, fullCfg())
	h.rec.Observe(time.Millisecond, false)
	var nilRec *Recorder
	tests := []struct {
		name string
		fn   func()
	}{
		{"Recorder.Observe", func() { h.rec.Observe(3*time.Millisecond, false) }},
		{"Recorder.Observe failed", func() { h.rec.Observe(time.Second, true) }},
		{"Recorder.Divert", func() { h.rec.Divert(PriorityLow) }},
		{"nil Recorder", func() { nilRec.Observe(time.Millisecond, true) }},
		{"Gate.Degraded", func() { sinkBool = h.gate.Degraded() }},
		{"Gate.Level", func() { sinkBool = h.gate.Level() == LevelShedLow }},
		{"Gate.Admit", func() { sinkBool = h.gate.Admit(PriorityHigh) }},
		{"Admit", func() { sinkBool = Admit(PriorityNormal, LevelShedLow) }},
		{"Decide", func() {
			sinkBool = Decide(LevelShedNormal, PriorityNormal, ActionStale, CaptureNo, true) == OutcomeStale
		}},
		{"Monitor.Step", func() { h.now = h.now.Add(h.window); h.m.Step(h.now) }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(1000, tt.fn); n != 0 {
			t.Errorf("%s allocs = %v, want 0", tt.name, n)
		}
	}
	if len(h.trs) != 0 {
		t.Fatal("Step measured a transition; the test wants steady state")
	}
}

func BenchmarkObserve(b *testing.B) {
	var r Recorder
	lat := [8]time.Duration{200 * time.Microsecond, 3 * time.Millisecond, 12 * time.Millisecond, 45 * time.Millisecond,
		80 * time.Millisecond, 150 * time.Millisecond, 400 * time.Millisecond, 1200 * time.Millisecond}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			r.Observe(lat[i&7], i&63 == 0)
		}
	})
}

func BenchmarkDegraded(b *testing.B) {
	g := new(Gate)
	g.set(LevelShedLow)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		n := 0
		for pb.Next() {
			if g.Degraded() {
				n++
			}
		}
		sinkBool = n > 0
	})
}

func BenchmarkGateDecide(b *testing.B) {
	g := new(Gate)
	g.set(LevelShedNormal)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		n := 0
		for pb.Next() {
			n++
			if Decide(g.Level(), Priority(n&3+1), ActionShed, CaptureNo, true) == OutcomeForward {
				n++
			}
		}
		sinkBool = n > 0
	})
}

// BenchmarkStep is the monitor's cost per window for 100 pools, off the
// request path.
func BenchmarkStep(b *testing.B) {
	now := t0
	m := NewMonitor(MonitorOptions{Now: func() time.Time { return now }})
	cfgs := make([]PoolConfig, 100)
	for i := range cfgs {
		cfgs[i] = fullCfg()
		cfgs[i].Name = "pool" + string(rune('A'+i/26)) + string(rune('a'+i%26))
		cfgs[i].Source = &fakeSource{Sample{Inflight: 300, Capacity: 1000, UpWeight: 10, TotalWeight: 10}}
	}
	if err := m.Configure(cfgs); err != nil {
		b.Fatal(err)
	}
	for _, c := range cfgs {
		r := m.Recorder(c.Name)
		for i := range 1000 {
			r.Observe(time.Duration(i)*time.Millisecond, false)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(DefaultWindow)
		m.Step(now)
	}
}
