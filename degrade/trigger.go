package degrade

import (
	"math"
	"strconv"
	"time"

	"github.com/floodgate/floodgate/internal/field"
)

// Bounds of a pool's trigger: the one rule, which Configure applies and conf
// checks the config file's degrade sections against (by calling Trigger.Check),
// so that -check, a start, a reload and the admin API accept the same values.
const (
	// MinWindow is the shortest window, to keep the monitor's goroutine from
	// spinning.
	MinWindow = 100 * time.Millisecond
	// MaxWindow is the longest window: a longer one reacts too late to matter.
	MaxWindow = time.Minute
	// MaxWindows bounds Windows.
	MaxWindows = 100
	// MaxDuration bounds Hold and the duration thresholds (queue_wait,
	// p95_latency): a typo ("h" for "m") is an error, not a pool that never
	// leaves degraded mode.
	MaxDuration = time.Hour
)

// Trigger is the part of a PoolConfig that decides the pool's mode: its
// thresholds, hold and windows, as the config file's degrade section sets them.
type Trigger struct {
	Enter, Exit Thresholds
	Hold        time.Duration
	Window      time.Duration
	Windows     int
}

// Trigger returns c's trigger.
func (c PoolConfig) Trigger() Trigger {
	return Trigger{Enter: c.Enter, Exit: c.Exit, Hold: c.Hold, Window: c.Window, Windows: c.Windows}
}

// Check returns every problem with t, with its defaults filled in (Configure
// fills a zero Window and Windows before it checks; conf's file defaults are
// the same values, so a zero written in the file is refused). A zero Enter is
// valid: the pool never degrades by itself. Exit must set exactly the signals
// Enter sets, each strictly on the calm side of its Enter value: without that
// gap a pool hovering at the threshold would flap. Check is a pure function.
//
// Each problem's Key is its key in a pool's degrade section
// ("exit.p95_latency", "window").
func (t Trigger) Check() []field.Problem {
	var ps []field.Problem
	bad := func(key, format string, args ...any) { ps = append(ps, field.Errorf(key, format, args...)) }
	for s := range numSignals {
		en, ex := t.Enter.threshold(s), t.Exit.threshold(s)
		for _, v := range [2]struct {
			side string
			v    float64
		}{{"enter", en}, {"exit", ex}} {
			key := v.side + "." + s.String()
			switch {
			case s.isDuration() && v.v < 0:
				bad(key, "must not be negative, got %s", time.Duration(v.v))
			case s.isDuration() && v.v > float64(MaxDuration):
				bad(key, "must be at most %s, got %s", field.Duration(MaxDuration), time.Duration(v.v))
			case !s.isDuration() && (v.v < 0 || v.v > 1 || math.IsNaN(v.v)):
				bad(key, "must be between 0 and 1, got %s", strconv.FormatFloat(v.v, 'g', -1, 64))
			}
		}
		show := func(v float64) string {
			if s.isDuration() {
				return time.Duration(v).String()
			}
			return strconv.FormatFloat(v, 'g', -1, 64)
		}
		key := "exit." + s.String()
		switch {
		case en == 0 && ex != 0:
			bad(key, "set, but enter.%s is not", s)
		case en != 0 && ex == 0:
			bad(key, "required because enter.%s is set (exit thresholds give hysteresis)", s)
		case en != 0 && !s.inverted() && ex >= en:
			bad(key, "must be lower than enter.%s (%s), got %s", s, show(en), show(ex))
		case en != 0 && s.inverted() && ex <= en:
			bad(key, "must be higher than enter.%s (%s), got %s", s, show(en), show(ex))
		}
	}
	switch {
	case t.Hold < 0:
		bad("hold", "must not be negative, got %s", t.Hold)
	case t.Hold > MaxDuration:
		bad("hold", "must be at most %s, got %s", field.Duration(MaxDuration), t.Hold)
	}
	switch {
	case t.Window < MinWindow:
		bad("window", "must be at least %s, got %s", MinWindow, t.Window)
	case t.Window > MaxWindow:
		bad("window", "must be at most %s, got %s", field.Duration(MaxWindow), t.Window)
	}
	if t.Windows < 1 || t.Windows > MaxWindows {
		bad("windows", "must be between 1 and %d, got %d", MaxWindows, t.Windows)
	}
	return ps
}
