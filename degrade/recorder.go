package degrade

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// The latency histogram is log-linear, HdrHistogram style: latencies are
// counted in units of 2^unitShift ns (1.024µs, a shift instead of a division);
// values below subCount units get one bucket each, and every power-of-two range
// above is split into subCount equal buckets. A bucket's width is then at most
// 1/subCount = 6.25% of its lower bound, and a percentile read at the bucket's
// midpoint is within ±3.2% of the true value (±0.5µs below 16µs). Latencies
// of 2^(groups+subBits) units (about 19.5 hours) and more share the last
// bucket.
const (
	unitShift  = 10
	subBits    = 4
	subCount   = 1 << subBits
	groups     = 32
	numBuckets = (groups + 1) * subCount // 528 buckets, 4.2 KB per pool
)

// bucketOf returns the histogram bucket of a latency.
func bucketOf(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	v := uint64(d) >> unitShift
	if v < subCount {
		return int(v)
	}
	// v is in [2^(e+subBits), 2^(e+subBits+1)): group e+1, sub-bucket given by
	// the subBits bits below the leading one.
	e := bits.Len64(v) - subBits - 1
	if e >= groups {
		return numBuckets - 1
	}
	return (e+1)*subCount + int((v>>e)&(subCount-1))
}

// bucketMid returns the midpoint of bucket b, in nanoseconds.
func bucketMid(b int) time.Duration {
	if b < subCount {
		return time.Duration((2*uint64(b) + 1) << unitShift / 2)
	}
	e := uint(b/subCount - 1)
	lo := uint64(subCount+b%subCount) << e
	return time.Duration((2*lo + 1<<e) << unitShift / 2)
}

// Recorder counts the outcomes of the requests the proxy forwards to one pool:
// a latency histogram and failure count (for the p95 latency and error rate
// signals), and the requests degraded mode kept from the pool, per priority
// (for the demand estimate that stops the pool leaving degraded mode while the
// traffic it holds back would saturate it again).
//
// The proxy calls Observe once per forwarded request and Divert once per
// request answered without the pool; the Monitor differences two snapshots
// per window. Recorders are owned by a Monitor (Monitor.Recorder) and survive
// Configure while their pool stays configured, so a window spanning a reload
// loses nothing.
//
// All methods are safe for concurrent use, lock-free and allocation-free. A
// nil *Recorder ignores everything, so a route built without one costs a nil
// check. A Recorder must not be copied.
type Recorder struct {
	buckets  [numBuckets]atomic.Uint64
	failures atomic.Uint64
	diverted [MaxLevel + 2]atomic.Uint64 // by Priority.rank: low 1 .. critical 4
}

// Observe records one forwarded request: latency is from sending the request
// to the end of the response (or the failure), and failed is a 5xx from the
// backend, a connect failure or a timeout. Requests the balancer refused
// (queue full, queue timeout, no healthy backend) never reached a backend:
// do not observe them; the monitor reads those from the balancer. It costs one
// atomic add, two for a failure.
func (r *Recorder) Observe(latency time.Duration, failed bool) {
	if r == nil {
		return
	}
	r.buckets[bucketOf(latency)].Add(1)
	if failed {
		r.failures.Add(1)
	}
}

// Divert records one request of priority p that degraded mode answered without
// forwarding it to the pool although it would have reached the pool in normal
// mode: refused by admission (shed or static), captured, or a cache miss
// refused. Answers from the cache, fresh or stale, are not diverted: in normal
// mode they would be hits, or one refresh per entry per expiry, not one backend
// request each, and counting them made the demand check hold a pool degraded
// for as long as its cached pages were requested. One atomic add.
func (r *Recorder) Divert(p Priority) {
	if r == nil {
		return
	}
	r.diverted[p.rank()].Add(1)
}

// recSnapshot is a copy of a Recorder's counters. The counters are read one
// by one while requests keep adding, so a snapshot is off by the few requests
// that complete during the copy; they are counted in the next window.
type recSnapshot struct {
	buckets  [numBuckets]uint64
	failures uint64
	diverted [MaxLevel + 2]uint64
}

func (r *Recorder) snapshot(s *recSnapshot) {
	for i := range r.buckets {
		s.buckets[i] = r.buckets[i].Load()
	}
	s.failures = r.failures.Load()
	for i := range r.diverted {
		s.diverted[i] = r.diverted[i].Load()
	}
}

// windowStats is what one window of a Recorder yields.
type windowStats struct {
	forwarded, failed uint64
	diverted          [MaxLevel + 2]uint64
	p95               time.Duration
}

// delta computes the window between snapshots a (older) and b (newer). The
// counters only grow, so unsigned differences are right even across a wrap.
func delta(a, b *recSnapshot) windowStats {
	var w windowStats
	for i := range b.buckets {
		w.forwarded += b.buckets[i] - a.buckets[i]
	}
	w.failed = b.failures - a.failures
	for i := range b.diverted {
		w.diverted[i] = b.diverted[i] - a.diverted[i]
	}
	w.p95 = quantile(a, b, w.forwarded, 0.95)
	return w
}

// quantile returns the q-quantile of the observations between a and b (n of
// them), at the midpoint of the bucket holding the ceil(q×n)-th smallest; 0
// when n is 0.
func quantile(a, b *recSnapshot, n uint64, q float64) time.Duration {
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = max(1, min(rank, n))
	var seen uint64
	for i := range b.buckets {
		seen += b.buckets[i] - a.buckets[i]
		if seen >= rank {
			return bucketMid(i)
		}
	}
	return bucketMid(numBuckets - 1)
}
