package degrade

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBuckets(t *testing.T) {
	// Buckets are monotonic and their midpoints are within half
	// a bucket width (≤ 1/32 of the value, 0.5 unit below 16 units).
	prev := 0
	for d := time.Duration(0); d < 100*time.Hour; d = d*21/20 + 1 {
		b := bucketOf(d)
		if b < prev {
			t.Fatalf("bucketOf(%v) = %d < bucketOf of a smaller value %d", d, b, prev)
		}
		prev = b
		if b == numBuckets-1 {
			continue
		}
		mid := bucketMid(b)
		tol := max(float64(d)/32, float64(1<<unitShift)/2) + 1
		if math.Abs(float64(mid-d)) > tol {
			t.Fatalf("bucketMid(bucketOf(%v)) = %v: off by more than %v", d, mid, time.Duration(tol))
		}
	}
	// Every bucket below the last holds its own midpoint, and bucket edges
	// are where they should be.
	for b := range numBuckets - 1 {
		if got := bucketOf(bucketMid(b)); got != b {
			t.Fatalf("bucketOf(bucketMid(%d) = %v) = %d", b, bucketMid(b), got)
		}
	}
	for _, tt := range []struct {
		d    time.Duration
		want int
	}{
		{-time.Second, 0}, {0, 0}, {1023, 0}, {1024, 1}, {15 << unitShift, 15}, {16 << unitShift, 16},
		{31 << unitShift, 31}, {32 << unitShift, 32}, {33 << unitShift, 32}, {34 << unitShift, 33},
		{time.Duration(math.MaxInt64), numBuckets - 1},
	} {
		if got := bucketOf(tt.d); got != tt.want {
			t.Errorf("bucketOf(%d) = %d, want %d", tt.d, got, tt.want)
		}
	}
}

func TestRecorderPercentile(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		gen  func() time.Duration
	}{
		{"uniform 1ms-1s", func() time.Duration { return time.Millisecond + time.Duration(rng.Int64N(int64(999*time.Millisecond))) }},
		{"exponential mean 80ms", func() time.Duration { return time.Duration(rng.ExpFloat64() * float64(80*time.Millisecond)) }},
		{"lognormal median 50ms", func() time.Duration {
			return time.Duration(math.Exp(rng.NormFloat64()*0.8) * float64(50*time.Millisecond))
		}},
		{"bimodal cache hits and misses", func() time.Duration {
			if rng.IntN(10) < 9 {
				return 200*time.Microsecond + time.Duration(rng.Int64N(int64(100*time.Microsecond)))
			}
			return 300*time.Millisecond + time.Duration(rng.Int64N(int64(900*time.Millisecond)))
		}},
		{"microseconds", func() time.Duration { return time.Duration(rng.Int64N(int64(40 * time.Microsecond))) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Recorder
			var a, b recSnapshot
			r.Observe(time.Hour, false) // before the window: must not count
			r.snapshot(&a)
			xs := make([]time.Duration, 50000)
			for i := range xs {
				xs[i] = tt.gen()
				r.Observe(xs[i], i%10 == 0)
			}
			r.snapshot(&b)
			slices.Sort(xs)
			w := delta(&a, &b)
			if w.forwarded != uint64(len(xs)) || w.failed != uint64(len(xs)/10) {
				t.Fatalf("window counts %d/%d, want %d/%d", w.forwarded, w.failed, len(xs), len(xs)/10)
			}
			for _, q := range []float64{0.5, 0.9, 0.95, 0.99} {
				exact := xs[int(math.Ceil(q*float64(len(xs))))-1]
				got := quantile(&a, &b, w.forwarded, q)
				tol := max(0.04*float64(exact), float64(time.Microsecond))
				if math.Abs(float64(got-exact)) > tol {
					t.Errorf("p%v = %v, exact %v: off by more than 4%%", q*100, got, exact)
				}
			}
		})
	}
}

func TestRecorderEdges(t *testing.T) {
	var nilRec *Recorder
	nilRec.Observe(time.Second, true) // no panic
	nilRec.Divert(PriorityLow)

	var r Recorder
	var a, b recSnapshot
	r.snapshot(&a)
	if w := delta(&a, &a); w.forwarded != 0 || w.p95 != 0 {
		t.Errorf("empty window: %+v", w)
	}
	r.Observe(-time.Second, false)
	r.Observe(1000*time.Hour, true)
	for _, p := range []Priority{0, PriorityLow, PriorityNormal, PriorityHigh, PriorityCritical, 99} {
		r.Divert(p)
	}
	r.snapshot(&b)
	w := delta(&a, &b)
	if w.forwarded != 2 || w.failed != 1 {
		t.Errorf("forwarded %d failed %d", w.forwarded, w.failed)
	}
	if want := [MaxLevel + 2]uint64{0, 1, 3, 1, 1}; w.diverted != want {
		t.Errorf("diverted by rank %v, want %v (zero and unknown count as normal)", w.diverted, want)
	}
	if w.p95 != bucketMid(numBuckets-1) {
		t.Errorf("p95 of {0, 1000h} = %v, want the last bucket", w.p95)
	}
	// Counters that wrapped still difference correctly.
	a.buckets[3], b.buckets[3] = math.MaxUint64, 4
	a.failures, b.failures = math.MaxUint64-1, 2
	if w := delta(&a, &b); w.forwarded != 2+5 || w.failed != 4 {
		t.Errorf("across a wrap: forwarded %d failed %d", w.forwarded, w.failed)
	}
}
