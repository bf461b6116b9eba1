package proxy

import (
	"sync/atomic"
	"time"

	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/proxy/cache"
)

// LatencyBuckets are the upper bounds, in seconds, of the request duration
// histogram (floodgate_request_duration_seconds). Do not modify.
var LatencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// numBuckets is len(LatencyBuckets), as a constant for array sizes.
const numBuckets = 14

// latencyBounds are LatencyBuckets in nanoseconds, for comparisons on the request
// path without float conversion.
var latencyBounds = func() (b [numBuckets]int64) {
	for i, s := range LatencyBuckets {
		b[i] = int64(s * 1e9)
	}
	return b
}()

// RouteStats counts the requests of one route: by status code, and a latency
// histogram from the request's arrival to its response header (the time to first
// byte, as HAProxy's Tr and nginx's $upstream_header_time measure). The counters
// are atomic: the request path adds, scrapes read, nobody locks. A route's
// counters outlive config generations as long as its name and pool stay the
// same, so Prometheus counters never go backwards on reload.
//
// A RouteStats belongs to one generation and is immutable (its counters are
// not): building the next generation makes a new one over the same counters,
// so that a build never writes anything the generation in service reads.
type RouteStats struct {
	Route, Pool string
	Priority    string // the route's priority, for floodgate_shed_total's label

	*routeCounters
}

// routeCounters are the counters of a route, shared by its generations.
type routeCounters struct {
	codes   [600]atomic.Uint64 // by status code; index 0 counts out-of-range codes
	buckets [numBuckets + 1]atomic.Uint64
	count   atomic.Uint64
	sumNS   atomic.Uint64

	rateLimited atomic.Uint64
	denied      atomic.Uint64
	truncated   atomic.Uint64                // backend responses cut short while relayed
	degraded    [degradedKinds]atomic.Uint64 // by outcome: stale, static, shed, capture

	// service is the route's expected service time in nanoseconds: an
	// exponentially weighted moving average (weight 1/8) of how long its
	// requests hold a backend slot, from the slot taken to the response head
	// (or the whole body, when it is read whole). The queue orders waiters of
	// a class by it and predicts waits from it. Updated with a load and a
	// store: two requests finishing together may drop a sample, never corrupt
	// the average.
	service atomic.Int64
}

// observeService adds one service time to the route's moving average.
func (r *routeCounters) observeService(d time.Duration) {
	x := max(int64(d), 1)
	old := r.service.Load()
	if old == 0 {
		r.service.Store(x)
		return
	}
	r.service.Store(old + (x-old)/8)
}

// ExpectedService returns the route's expected service time: the moving
// average of how long its requests held a backend slot (0 before the first).
func (r *routeCounters) ExpectedService() time.Duration {
	return time.Duration(r.service.Load())
}

const degradedKinds = 5 // indexed by degrade.Outcome

// Degraded returns how many requests got a degraded answer of each kind while the
// route's pool was degraded: "stale", "static", "shed", "capture".
func (r *routeCounters) Degraded() map[string]uint64 {
	return map[string]uint64{
		"stale":   r.degraded[degrade.OutcomeStale].Load(),
		"static":  r.degraded[degrade.OutcomeStatic].Load(),
		"shed":    r.degraded[degrade.OutcomeShed].Load(),
		"capture": r.degraded[degrade.OutcomeCapture].Load(),
	}
}

// Shed returns how many requests were shed (floodgate_shed_total).
func (r *routeCounters) Shed() uint64 { return r.degraded[degrade.OutcomeShed].Load() }

// RateLimited returns how many requests the route's rate limit refused (429).
func (r *routeCounters) RateLimited() uint64 { return r.rateLimited.Load() }

// Denied returns how many requests the route's allow/deny lists refused (403).
func (r *routeCounters) Denied() uint64 { return r.denied.Load() }

// Truncated returns how many backend responses ended before their body was
// complete (the backend closed or failed mid-body) while being relayed: the client
// connection was closed without passing the body off as whole.
func (r *RouteStats) Truncated() uint64 { return r.truncated.Load() }

// CodeCount is the number of responses with one status code.
type CodeCount struct {
	Code  int
	Count uint64
}

// Codes returns the status codes seen so far with their counts, in code order.
func (r *routeCounters) Codes() []CodeCount {
	var out []CodeCount
	for i := range r.codes {
		if n := r.codes[i].Load(); n > 0 {
			out = append(out, CodeCount{Code: i, Count: n})
		}
	}
	return out
}

// Latency returns the histogram: total count, sum in seconds, and the cumulative
// count at each bound of LatencyBuckets (Prometheus's convention).
func (r *routeCounters) Latency() (count uint64, sumSeconds float64, cumulative []uint64) {
	cumulative = make([]uint64, len(LatencyBuckets))
	var acc uint64
	for i := range LatencyBuckets {
		acc += r.buckets[i].Load()
		cumulative[i] = acc
	}
	return r.count.Load(), float64(r.sumNS.Load()) / 1e9, cumulative
}

// record adds one response. It allocates nothing.
func (r *routeCounters) record(code int, d time.Duration) {
	if code < 0 || code >= len(r.codes) {
		code = 0
	}
	r.codes[code].Add(1)
	ns := int64(d)
	i := 0
	for i < len(latencyBounds) && ns > latencyBounds[i] {
		i++
	}
	r.buckets[i].Add(1)
	r.count.Add(1)
	if ns > 0 {
		r.sumNS.Add(uint64(ns))
	}
}

// routeStatsLocked returns a route's stats for a new generation, over the counters
// of the generation in service when its name and pool are unchanged, else over
// new counters, which Swap records. It writes nothing. s.upMu must be held.
func (s *Server) routeStatsLocked(route, pool, priority string) *RouteStats {
	c := s.stats[routeKey(route, pool)]
	if c == nil {
		c = new(routeCounters)
	}
	return &RouteStats{Route: route, Pool: pool, Priority: priority, routeCounters: c}
}

// routeKey is the key of a route's counters: its name and its pool.
func routeKey(route, pool string) string { return route + "\x00" + pool }

// pruneRoutes records the counters, rate limiters and cache policies of the
// routes of cur, the snapshot just swapped in, for the next generations to
// reuse, and forgets those of routes that cur no longer has (or has without a
// rate limit or a cache), so that reloads renaming routes do not grow these
// tables for ever. Counters of a route that stays go on counting.
func (s *Server) pruneRoutes(cur *Snapshot) {
	stats := make(map[*routeCounters]bool, len(cur.routes))
	limiters := make(map[*limiter]bool)
	policies := make(map[*cache.Policy]bool)
	s.upMu.Lock()
	defer s.upMu.Unlock()
	for _, r := range cur.routes {
		stats[r.stats.routeCounters] = true
		s.stats[routeKey(r.name, r.pool.name)] = r.stats.routeCounters
		if r.limit != nil {
			limiters[r.limit] = true
			s.limiters[r.name] = r.limit
		}
		if r.cache != nil {
			policies[r.cache] = true
			s.policies[r.name] = r.cache
		}
	}
	for k, c := range s.stats {
		if !stats[c] {
			delete(s.stats, k)
		}
	}
	for k, l := range s.limiters {
		if !limiters[l] {
			delete(s.limiters, k)
		}
	}
	for k, p := range s.policies {
		if !policies[p] {
			delete(s.policies, k)
		}
	}
}

// RouteStats returns the stats of the routes of the current generation, plus
// those of requests that matched no route or were refused before routing (Route
// "-", Pool "-"). Safe for concurrent use.
func (s *Server) RouteStats() []*RouteStats {
	out := []*RouteStats{s.unrouted}
	if snap := s.snap.Load(); snap != nil {
		for _, r := range snap.routes {
			out = append(out, r.stats)
		}
	}
	return out
}
