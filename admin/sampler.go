package admin

import (
	"context"
	"sync"
	"time"

	"github.com/floodgate/floodgate/generation"
	"github.com/floodgate/floodgate/proxy"
	"github.com/floodgate/floodgate/proxy/cache"
)

// Sampling of the status page. The request path keeps cumulative counters
// (atomics it needs anyway); rates, error ratios and percentiles are the
// differences between two readings of them. The sampler takes one reading per
// SampleInterval, from Run's goroutine or, when Run is not running, from the
// status handler itself, keeps the last few readings whole (for rates over
// RateWindow) and a compact per-pool history of HistoryLen points (the
// sparklines). Nothing here runs on the request path.
const (
	// SampleInterval is how often Run reads the counters.
	SampleInterval = time.Second
	// RateWindow is the span the status page's rates are computed over: long
	// enough to be steady, short enough to follow a spike.
	RateWindow = 5 * time.Second
	// HistoryLen is the number of points of each pool's history: five minutes
	// at one point per SampleInterval.
	HistoryLen = 300

	// minSampleGap keeps a status request from taking a reading when one was
	// taken less than this long ago (Run's, or another poller's).
	minSampleGap = SampleInterval * 9 / 10
	// keepReadings is how many whole readings are kept: enough to span
	// RateWindow at SampleInterval, plus one.
	keepReadings = int(RateWindow/SampleInterval) + 2
)

// reading is one sample of every cumulative counter the status page turns into
// rates.
type reading struct {
	at       time.Time
	pools    map[string]*poolReading
	backends map[string]backendReading // by pool + "\x00" + address
	routes   map[string]*reqReading    // by route + "\x00" + pool
	cache    *cache.Stats
	capture  *captureReading
}

// reqReading counts client responses: those of one route, or summed over the
// routes of a pool.
type reqReading struct {
	total, errors uint64 // all responses, and 5xx
	degraded      uint64 // answered by a degraded action
	shed          uint64 // of those, shed and static answers: refusals by design (503 or 429)
	latCount      uint64
	latCum        [numLatencyBuckets]uint64 // cumulative, as proxy.RouteStats.Latency
}

const numLatencyBuckets = 14 // len(proxy.LatencyBuckets), checked in a test

type poolReading struct {
	req                          reqReading
	inflight                     int64
	queueWaits, queueWaitNanos   uint64
	queueTimeouts, queueRejected uint64
}

type backendReading struct {
	requests, failures uint64
}

type captureReading struct {
	appended, delivered uint64
}

// historyPoint is one point of a pool's sparklines; NaN-free: a value that is
// unknown (no request in the interval, for p95) is negative.
type historyPoint struct {
	rps      float32
	p95      float32 // seconds; < 0 when unknown
	inflight float32
}

// historyEntry is one instant of the history, every pool's point.
type historyEntry struct {
	at    time.Time
	pools map[string]historyPoint
}

// sampler holds the readings and the history. Safe for concurrent use.
type sampler struct {
	src sources

	mu       sync.Mutex
	readings []*reading     // oldest first, at most keepReadings
	history  []historyEntry // ring of HistoryLen
	next     int            // where the next history entry goes
	full     bool
}

// sources are what the sampler reads; each may be nil but view.
type sources struct {
	view   func() *generation.View
	routes func() []*proxy.RouteStats
	cache  CacheStats
	cap    Captures
}

func newSampler(src sources) *sampler {
	return &sampler{src: src, history: make([]historyEntry, HistoryLen)}
}

// refresh takes a reading at now, keeps it if the last kept one is at least
// minSampleGap old (adding a history point), and returns it with the reading
// rates are computed from: the oldest kept one within RateWindow, or the
// newest older one when the readings are further apart (a slow poller
// without Run); nil when there is none.
func (sp *sampler) refresh(now time.Time) (newest, base *reading) {
	r := sp.read(now)
	sp.mu.Lock()
	defer sp.mu.Unlock()
	n := len(sp.readings)
	if n > 0 && now.Before(sp.readings[n-1].at.Add(-RateWindow)) {
		sp.readings, n = sp.readings[:0], 0 // the clock was set back: start again
	}
	// A reading older than the last kept one (a concurrent poll that read
	// first and locked second) is answered but not kept.
	if n == 0 || now.Sub(sp.readings[n-1].at) >= minSampleGap {
		if n > 0 {
			sp.record(sp.readings[n-1], r)
		}
		sp.readings = append(sp.readings, r)
		if len(sp.readings) > keepReadings {
			copy(sp.readings, sp.readings[1:])
			sp.readings[len(sp.readings)-1] = nil
			sp.readings = sp.readings[:keepReadings]
		}
	}
	for _, old := range sp.readings { // oldest first
		if d := now.Sub(old.at); d > 0 && d <= RateWindow+SampleInterval/2 {
			return r, old
		}
	}
	for i := len(sp.readings) - 1; i >= 0; i-- {
		if sp.readings[i].at.Before(now) {
			return r, sp.readings[i]
		}
	}
	return r, nil
}

// read takes one reading of every counter. It reads atomics and the
// journal's and cache's statistics; it allocates, but off the request path.
func (sp *sampler) read(now time.Time) *reading {
	r := &reading{at: now, pools: map[string]*poolReading{}, backends: map[string]backendReading{}, routes: map[string]*reqReading{}}
	if v := sp.src.view(); v != nil {
		for _, p := range v.Pools {
			pr := &poolReading{}
			q := p.State.QueueStats()
			pr.queueWaits, pr.queueWaitNanos, pr.queueTimeouts, pr.queueRejected = q.Waits, q.WaitNanos, q.Timeouts, q.Rejected
			for _, b := range p.Backends {
				st := b.State.Stats()
				pr.inflight += st.Inflight
				r.backends[p.Name+"\x00"+b.Address] = backendReading{requests: st.Requests, failures: st.Failures}
			}
			r.pools[p.Name] = pr
		}
	}
	if sp.src.routes != nil {
		for _, rs := range sp.src.routes() {
			if rs.Route == "-" {
				continue // refused before routing: no pool
			}
			rr := readRoute(rs)
			r.routes[rs.Route+"\x00"+rs.Pool] = rr
			if pr := r.pools[rs.Pool]; pr != nil {
				pr.req.add(rr)
			}
		}
	}
	if sp.src.cache != nil {
		st := sp.src.cache.Stats()
		r.cache = &st
	}
	if sp.src.cap != nil {
		st := sp.src.cap.Stats()
		r.capture = &captureReading{appended: st.Appended, delivered: st.Delivered}
	}
	return r
}

func readRoute(rs *proxy.RouteStats) *reqReading {
	rr := &reqReading{}
	for _, cc := range rs.Codes() {
		rr.total += cc.Count
		if cc.Code >= 500 {
			rr.errors += cc.Count
		}
	}
	for kind, n := range rs.Degraded() {
		rr.degraded += n
		if kind == "shed" || kind == "static" {
			rr.shed += n
		}
	}
	count, _, cum := rs.Latency()
	rr.latCount = count
	copy(rr.latCum[:], cum)
	return rr
}

func (a *reqReading) add(b *reqReading) {
	a.total += b.total
	a.errors += b.errors
	a.degraded += b.degraded
	a.shed += b.shed
	a.latCount += b.latCount
	for i := range a.latCum {
		a.latCum[i] += b.latCum[i]
	}
}

// record adds the history entry for the interval from prev to cur.
func (sp *sampler) record(prev, cur *reading) {
	secs := cur.at.Sub(prev.at).Seconds()
	if secs <= 0 {
		return
	}
	e := historyEntry{at: cur.at, pools: make(map[string]historyPoint, len(cur.pools))}
	for name, p := range cur.pools {
		hp := historyPoint{inflight: float32(p.inflight), p95: -1}
		if old := prev.pools[name]; old != nil {
			d := diffReq(&p.req, &old.req)
			hp.rps = float32(float64(d.total) / secs)
			if q, ok := d.quantile(0.95); ok {
				hp.p95 = float32(q)
			}
		}
		e.pools[name] = hp
	}
	sp.history[sp.next] = e
	sp.next++
	if sp.next == len(sp.history) {
		sp.next, sp.full = 0, true
	}
}

// historyOf returns a pool's history, oldest first.
func (sp *sampler) historyOf(pool string) History {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	h := History{StepSeconds: SampleInterval.Seconds(), Time: []int64{}, RequestsPerSecond: []float64{}, P95Seconds: []*float64{}, InFlight: []float64{}}
	emit := func(e historyEntry) {
		hp, ok := e.pools[pool]
		if !ok {
			return
		}
		h.Time = append(h.Time, e.at.Unix())
		h.RequestsPerSecond = append(h.RequestsPerSecond, round(float64(hp.rps), 1))
		if hp.p95 < 0 {
			h.P95Seconds = append(h.P95Seconds, nil)
		} else {
			h.P95Seconds = append(h.P95Seconds, ptr(roundSig(float64(hp.p95))))
		}
		h.InFlight = append(h.InFlight, float64(hp.inflight))
	}
	if sp.full {
		for _, e := range sp.history[sp.next:] {
			emit(e)
		}
	}
	for _, e := range sp.history[:sp.next] {
		emit(e)
	}
	return h
}

// diffReq returns cur - prev, counter by counter. A counter that went back
// (the route or pool was rebuilt under the same name with fresh counters)
// counts from zero.
func diffReq(cur, prev *reqReading) reqReading {
	d := reqReading{
		total:    sub(cur.total, prev.total),
		errors:   sub(cur.errors, prev.errors),
		degraded: sub(cur.degraded, prev.degraded),
		shed:     sub(cur.shed, prev.shed),
		latCount: sub(cur.latCount, prev.latCount),
	}
	if cur.latCount < prev.latCount {
		d.latCum = cur.latCum
		return d
	}
	for i := range d.latCum {
		d.latCum[i] = sub(cur.latCum[i], prev.latCum[i])
	}
	return d
}

func sub(cur, prev uint64) uint64 {
	if cur < prev {
		return cur
	}
	return cur - prev
}

// quantile estimates the q-quantile of the latency histogram in seconds, as
// Prometheus's histogram_quantile does: linear interpolation within the bucket
// that holds it; the highest finite bound when it falls in the +Inf bucket.
func (d *reqReading) quantile(q float64) (float64, bool) {
	if d.latCount == 0 {
		return 0, false
	}
	rank := q * float64(d.latCount)
	lower, below := 0.0, uint64(0)
	for i, ub := range proxy.LatencyBuckets {
		if float64(d.latCum[i]) >= rank {
			in := d.latCum[i] - below
			if in == 0 {
				return ub, true
			}
			return lower + (ub-lower)*(rank-float64(below))/float64(in), true
		}
		lower, below = ub, d.latCum[i]
	}
	return proxy.LatencyBuckets[len(proxy.LatencyBuckets)-1], true
}

// Run takes a reading of the counters every SampleInterval until ctx is done,
// so that the status page has rates and five minutes of history as soon as it
// is opened. It returns nil. Without Run, the status endpoint samples when it
// is polled, and the history covers only the time it was being polled. Run it
// once, in its own goroutine.
func (s *Server) Run(ctx context.Context) error {
	t := time.NewTicker(SampleInterval)
	defer t.Stop()
	s.sampler.refresh(s.now())
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.sampler.refresh(s.now())
		}
	}
}
