package degrade

import (
	"strconv"
	"strings"
	"time"

	"github.com/floodgate/floodgate/balancer"
)

// SignalSource reports the capacity side of a pool's saturation: connection
// slots and the wait queue. The Monitor calls Sample once per window from its
// own goroutine (never on the request path), under its lock, so Sample must
// be cheap and must not call back into the Monitor.
//
// PoolSource implements it over a balancer pool; tests feed synthetic series.
type SignalSource interface {
	Sample() Sample
}

// Sample is one reading of a SignalSource. The gauges are read at the end of
// a window; the queue fields are cumulative counters that only grow (wrapping
// at 2^64), which the Monitor differences between windows.
type Sample struct {
	// Inflight is the requests holding a connection slot on the backends that
	// can take new ones (up, weight above zero).
	Inflight int64
	// Capacity is the connection slots of those backends that any request
	// may use: the sum of each one's own limit (balancer.Backend.MaxConns),
	// less the slots it reserves for critical requests, so that unequal
	// backends count as what they are. 0 means no limit (some backend up
	// has none), and leaves the inflight_ratio signal unused. Critical requests in reserved slots count
	// in Inflight, so the ratio may pass 1.
	Capacity int64
	// UpWeight and TotalWeight are the summed weights of the up backends and
	// of every backend with a weight above zero. TotalWeight 0 (no backend
	// yet) counts as full healthy capacity: there is nothing to protect.
	UpWeight, TotalWeight int64
	// QueueDepth is the number of requests waiting for a slot now.
	QueueDepth int
	// QueueWaits counts completed waits and QueueWaitNanos their total
	// duration (cumulative).
	QueueWaits, QueueWaitNanos uint64
	// QueueRefused counts requests the balancer refused because every
	// eligible backend was at its limit: queue full, queue timeout, or a
	// predicted wait over the request's deadline (cumulative).
	QueueRefused uint64
}

// PoolSource is the SignalSource of a balancer pool. Sample is safe for
// concurrent use and reads only atomics: the queue counters of the shared
// PoolState and, per backend, Up and Inflight. Capacity is read from the
// current generation's backends, each with its own limit
// (balancer.Backend.MaxConns, less its Reserved: the slots only critical
// requests may use are left out, so that a pool whose shared slots are all
// taken reads an in-flight ratio of 1, not 1 - share).
type PoolSource struct {
	// Pool returns the pool's current generation (the wiring reads it from
	// its snapshot, so a reload that rebuilds the pool is seen at the next
	// window); nil, or a Pool returning nil, samples an empty pool.
	Pool func() *balancer.Pool
}

var _ SignalSource = (*PoolSource)(nil)

// Sample implements SignalSource.
func (s *PoolSource) Sample() Sample {
	var out Sample
	if s == nil || s.Pool == nil {
		return out
	}
	p := s.Pool()
	if p == nil {
		return out
	}
	unlimited := false
	for _, b := range p.Backends() {
		if b.Weight <= 0 {
			continue // draining: takes no new requests
		}
		out.TotalWeight += int64(b.Weight)
		if !b.State.Up() {
			continue
		}
		out.UpWeight += int64(b.Weight)
		out.Inflight += b.State.Inflight()
		if b.MaxConns <= 0 {
			unlimited = true
		} else {
			out.Capacity += max(1, b.MaxConns-b.Reserved)
		}
	}
	if unlimited {
		out.Capacity = 0 // a backend up without a limit: no ratio to speak of
	}
	q := p.State().QueueStats()
	out.QueueDepth = q.Depth
	out.QueueWaits, out.QueueWaitNanos = q.Waits, q.WaitNanos
	out.QueueRefused = q.Rejected + q.Timeouts + q.Predicted
	return out
}

// Signals are a pool's saturation signals over one window, as the Monitor
// computed them. They are a plain value.
type Signals struct {
	// At is the end of the window and Window its length; zero before the
	// first window.
	At     time.Time
	Window time.Duration

	// InflightRatio is Inflight over Capacity at the end of the window; 0
	// when Capacity is 0 (no limit configured: the signal is unused).
	InflightRatio float64
	Inflight      int64
	Capacity      int64

	// QueueDepth is the queue at the end of the window and QueueWait the mean
	// wait of the waits that ended during it (0 when none did).
	QueueDepth int
	QueueWait  time.Duration
	// Refused counts requests the balancer refused for want of a slot (queue
	// full or timed out) during the window: the overflow of what the gate
	// admitted. Shown for operators; not a trigger.
	Refused uint64

	// Forwarded and Failed count the requests observed by the Recorder in the
	// window; P95Latency and ErrorRate are computed from them, and are 0 when
	// Forwarded is below the pool's MinRequests (too few to mean anything).
	Forwarded  uint64
	Failed     uint64
	P95Latency time.Duration
	ErrorRate  float64

	// Diverted counts the requests degraded mode answered without the pool
	// (Recorder.Divert) in the window.
	Diverted uint64
	// Demand is (Forwarded+Diverted)/Forwarded: how much more traffic the
	// pool would get if degraded mode stopped. 1 when nothing is diverted; 0
	// when Forwarded is below MinRequests (unknown).
	Demand float64

	// HealthyCapacity is the up backends' weight over the configured weight,
	// 0 to 1; 1 for a pool without backends.
	HealthyCapacity float64
}

// Thresholds are saturation levels for the signals of a pool; a zero field
// leaves its signal unused. In PoolConfig.Enter a signal "reaches" its
// threshold when it is at or above it (at or below for HealthyCapacity); in
// PoolConfig.Exit it is "under" when at or below it (at or above for
// HealthyCapacity).
type Thresholds struct {
	// InflightRatio is in-flight requests over connection capacity, in (0, 1].
	// Needs a per-backend connection limit; unused without one.
	InflightRatio float64
	// QueueWait is the mean time a request waited for a slot.
	QueueWait time.Duration
	// P95Latency is the 95th percentile of backend response time.
	P95Latency time.Duration
	// ErrorRate is the share of forwarded requests that failed, in (0, 1].
	ErrorRate float64
	// HealthyCapacity is the share of configured weight that is up, in (0, 1].
	// It is inverted: it enters when capacity falls to Enter.HealthyCapacity
	// and is under its exit threshold when back to Exit.HealthyCapacity or
	// more, so Exit must be above Enter. The config file has no key for it
	// yet; losing backends usually shows as inflight_ratio and queue_wait
	// anyway.
	HealthyCapacity float64
}

func (t Thresholds) isZero() bool { return t == Thresholds{} }

// signal names one saturation signal; the names are the config keys.
type signal uint8

const (
	sigInflight signal = iota
	sigQueueWait
	sigP95
	sigErrorRate
	sigCapacity
	numSignals
)

var signalNames = [numSignals]string{"inflight_ratio", "queue_wait", "p95_latency", "error_rate", "healthy_capacity"}

func (s signal) String() string { return signalNames[s] }

// inverted reports whether lower values of s mean more saturation.
func (s signal) inverted() bool { return s == sigCapacity }

func (s signal) isDuration() bool { return s == sigQueueWait || s == sigP95 }

// threshold returns t's value for s, durations as nanoseconds.
func (t *Thresholds) threshold(s signal) float64 {
	switch s {
	case sigInflight:
		return t.InflightRatio
	case sigQueueWait:
		return float64(t.QueueWait)
	case sigP95:
		return float64(t.P95Latency)
	case sigErrorRate:
		return t.ErrorRate
	}
	return t.HealthyCapacity
}

// value returns sig's value for s and whether the window had enough data for
// it to mean anything. Signals without data count as neither reaching the
// enter threshold nor breaking the calm: no traffic is no saturation.
func (sig *Signals) value(s signal, minRequests uint64) (float64, bool) {
	switch s {
	case sigInflight:
		return sig.InflightRatio, sig.Capacity > 0
	case sigQueueWait:
		return float64(sig.QueueWait), true
	case sigP95:
		return float64(sig.P95Latency), sig.Forwarded >= minRequests
	case sigErrorRate:
		return sig.ErrorRate, sig.Forwarded >= minRequests
	}
	return sig.HealthyCapacity, true
}

// formatValue renders a signal value for reasons and logs: durations to three
// significant digits ("1.2s", "812ms"), ratios likewise ("0.95").
func formatValue(s signal, v float64) string {
	if s.isDuration() {
		return roundDuration(time.Duration(v)).String()
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// roundDuration keeps three significant digits, so that a histogram midpoint
// like 1.203456789s reads 1.2s.
func roundDuration(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	m := time.Duration(1)
	for d/m >= 1000 {
		m *= 10
	}
	return d.Round(m)
}

// reachReason renders an entry reason: "p95_latency 1.2s > 800ms".
func reachReason(s signal, v, thr float64) string {
	op := " > "
	switch {
	case v == thr:
		op = " = "
	case s.inverted():
		op = " < "
	}
	return s.String() + " " + formatValue(s, v) + op + formatValue(s, thr)
}

// calmReason renders an exit reason: "all signals under exit thresholds for
// 30s (p95_latency 250ms <= 300ms, ...)".
func calmReason(exit *Thresholds, sig *Signals, held time.Duration, minRequests uint64) string {
	var b strings.Builder
	b.WriteString("all signals under exit thresholds for ")
	b.WriteString(roundDuration(held).String())
	sep := " ("
	for s := range numSignals {
		thr := exit.threshold(s)
		if thr == 0 {
			continue
		}
		b.WriteString(sep)
		sep = ", "
		b.WriteString(s.String())
		b.WriteByte(' ')
		if v, ok := sig.value(s, minRequests); ok {
			b.WriteString(formatValue(s, v))
		} else {
			b.WriteString("n/a")
		}
		if s.inverted() {
			b.WriteString(" >= ")
		} else {
			b.WriteString(" <= ")
		}
		b.WriteString(formatValue(s, thr))
	}
	if sep == ", " {
		b.WriteByte(')')
	}
	return b.String()
}
