package degrade

import (
	"fmt"
	"testing"
)

func TestAdmit(t *testing.T) {
	// Rows are priorities, columns levels 0..3.
	tests := []struct {
		p    Priority
		want [MaxLevel + 1]bool
	}{
		{PriorityLow, [4]bool{true, false, false, false}},
		{PriorityNormal, [4]bool{true, true, false, false}},
		{0, [4]bool{true, true, false, false}}, // unset: normal
		{PriorityHigh, [4]bool{true, true, true, false}},
		{PriorityCritical, [4]bool{true, true, true, true}},
		{Priority(42), [4]bool{true, true, false, false}}, // unknown: normal
	}
	for _, tt := range tests {
		for l := LevelNormal; l <= MaxLevel; l++ {
			if got := Admit(tt.p, l); got != tt.want[l] {
				t.Errorf("Admit(%v, %v) = %v, want %v", tt.p, l, got, tt.want[l])
			}
			var g Gate
			g.set(l)
			if got := g.Admit(tt.p); got != tt.want[l] {
				t.Errorf("Gate(%v).Admit(%v) = %v, want %v", l, tt.p, got, tt.want[l])
			}
			if g.Degraded() != (l != LevelNormal) || g.Level() != l {
				t.Errorf("gate at %v: Degraded %v Level %v", l, g.Degraded(), g.Level())
			}
		}
	}
	var nilGate *Gate
	if nilGate.Degraded() || nilGate.Level() != LevelNormal || !nilGate.Admit(PriorityLow) {
		t.Error("a nil gate must be a pool that is never degraded")
	}
}

func TestDecide(t *testing.T) {
	const (
		F = OutcomeForward
		T = OutcomeStale
		S = OutcomeStatic
		X = OutcomeShed
		C = OutcomeCapture
	)
	// For each action and priority, the outcome at levels 0..3.
	tests := []struct {
		a        Action
		p        Priority
		captured Capture
		want     [4]Outcome
	}{
		{ActionNone, PriorityLow, CaptureNo, [4]Outcome{F, X, X, X}},
		{ActionNone, PriorityNormal, CaptureNo, [4]Outcome{F, F, X, X}},
		{ActionNone, PriorityHigh, CaptureNo, [4]Outcome{F, F, F, X}},
		{ActionNone, PriorityCritical, CaptureNo, [4]Outcome{F, F, F, F}},
		{ActionShed, PriorityLow, CaptureNo, [4]Outcome{F, X, X, X}},
		{ActionShed, PriorityHigh, CaptureNo, [4]Outcome{F, F, F, X}},
		{ActionStatic, PriorityLow, CaptureNo, [4]Outcome{F, S, S, S}},
		{ActionStatic, PriorityNormal, CaptureNo, [4]Outcome{F, F, S, S}},
		{ActionStatic, PriorityCritical, CaptureNo, [4]Outcome{F, F, F, F}},
		{ActionStale, PriorityLow, CaptureNo, [4]Outcome{F, T, T, T}},
		{ActionStale, PriorityCritical, CaptureNo, [4]Outcome{F, T, T, T}},
		{ActionCapture, PriorityHigh, CaptureAlways, [4]Outcome{F, C, C, C}},
		{ActionCapture, PriorityCritical, CaptureAlways, [4]Outcome{F, C, C, C}},
		{ActionCapture, PriorityHigh, CaptureRefused, [4]Outcome{F, F, F, C}},
		{ActionCapture, PriorityNormal, CaptureRefused, [4]Outcome{F, F, C, C}},
		{ActionCapture, PriorityLow, CaptureRefused, [4]Outcome{F, C, C, C}},
		{ActionCapture, PriorityCritical, CaptureRefused, [4]Outcome{F, F, F, F}},
		{ActionCapture, PriorityHigh, CaptureNo, [4]Outcome{F, F, F, X}},
		{ActionCapture, PriorityLow, CaptureNo, [4]Outcome{F, X, X, X}},
		{ActionShed, PriorityLow, CaptureAlways, [4]Outcome{F, X, X, X}}, // captured means nothing without capture
		{ActionShed, PriorityLow, CaptureRefused, [4]Outcome{F, X, X, X}},
	}
	for _, tt := range tests {
		for l := LevelNormal; l <= MaxLevel; l++ {
			if got := Decide(l, tt.p, tt.a, tt.captured, false); got != tt.want[l] {
				t.Errorf("Decide(%v, %v, %q, capture=%v, unlimited) = %v, want %v", l, tt.p, tt.a, tt.captured, got, tt.want[l])
			}
			// With a connection limit, every refusal of the level becomes
			// "a free slot, else the action": the rest is unchanged.
			want := tt.want[l]
			if want != OutcomeForward && want != OutcomeStale && !(want == OutcomeCapture && tt.captured == CaptureAlways) {
				want = OutcomeFreeSlot
			}
			if got := Decide(l, tt.p, tt.a, tt.captured, true); got != want {
				t.Errorf("Decide(%v, %v, %q, capture=%v, limited) = %v, want %v", l, tt.p, tt.a, tt.captured, got, want)
			}
		}
	}
}

func TestReserve(t *testing.T) {
	tests := []struct {
		limit int64
		share float64
		want  int64
	}{
		{0, 0.1, 0},    // no limit: nothing to reserve
		{1, 0.1, 0},    // the only slot stays shared
		{2, 0.1, 1},    // at least one
		{10, 0.1, 1},   // exactly 10%
		{30, 0.1, 3},   // not 4: 30 × 0.1 is 3.0000000000000004 in binary
		{512, 0.1, 52}, // rounded up
		{512, 0, 0},
		{512, -1, 0},
		{10, 1, 9}, // never every slot
		{10, 5, 9},
	}
	for _, tt := range tests {
		if got := Reserve(tt.limit, tt.share); got != tt.want {
			t.Errorf("Reserve(%d, %v) = %d, want %d", tt.limit, tt.share, got, tt.want)
		}
	}
}

func TestNames(t *testing.T) {
	for _, p := range []Priority{PriorityLow, PriorityNormal, PriorityHigh, PriorityCritical} {
		if got, err := ParsePriority(p.String()); err != nil || got != p {
			t.Errorf("ParsePriority(%q) = %v, %v", p.String(), got, err)
		}
	}
	if p, err := ParsePriority(""); err != nil || p != PriorityNormal {
		t.Errorf(`ParsePriority("") = %v, %v; want normal, the config default`, p, err)
	}
	if _, err := ParsePriority("urgent"); err == nil {
		t.Error("ParsePriority accepted urgent")
	}
	for _, a := range []Action{ActionNone, ActionStale, ActionStatic, ActionShed, ActionCapture} {
		if got, err := ParseAction(a.String()); err != nil || got != a {
			t.Errorf("ParseAction(%q) = %v, %v", a.String(), got, err)
		}
	}
	if _, err := ParseAction("drop"); err == nil {
		t.Error("ParseAction accepted drop")
	}
	var names []string
	for l := LevelNormal; l <= MaxLevel+1; l++ {
		names = append(names, l.String())
	}
	for o := OutcomeForward; o <= OutcomeFreeSlot+1; o++ {
		names = append(names, o.String())
	}
	if got, want := fmt.Sprint(names), "[normal shed-low shed-normal critical-only level(4) forward stale static shed capture free-slot outcome(6)]"; got != want {
		t.Errorf("names = %s, want %s", got, want)
	}
}
