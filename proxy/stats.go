package proxy

import (
	"sync/atomic"
	"time"

	"github.com/floodgate/floodgate/degrade"
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
// are atomic: the request path adds, scrapes read, nobody locks. A route's stats
// outlive config generations as long as its name and pool stay the same, so
// Prometheus counters never go backwards on reload.
type RouteStats struct {
	Route, Pool string
	Priority    string // the route's priority, for floodgate_shed_total's label

	codes   [600]atomic.Uint64 // by status code; index 0 counts out-of-range codes
	buckets [numBuckets + 1]atomic.Uint64
	count   atomic.Uint64
	sumNS   atomic.Uint64

	rateLimited atomic.Uint64
	denied      atomic.Uint64
	truncated   atomic.Uint64                // backend responses cut short while relayed
	degraded    [degradedKinds]atomic.Uint64 // by outcome: stale, static, shed, capture
}

const degradedKinds = 5 // indexed by degrade.Outcome

// Degraded returns how many requests got a degraded answer of each kind while the
// route's pool was degraded: "stale", "static", "shed", "capture".
func (r *RouteStats) Degraded() map[string]uint64 {
	return map[string]uint64{
		"stale":   r.degraded[degrade.OutcomeStale].Load(),
		"static":  r.degraded[degrade.OutcomeStatic].Load(),
		"shed":    r.degraded[degrade.OutcomeShed].Load(),
		"capture": r.degraded[degrade.OutcomeCapture].Load(),
	}
}

// Shed returns how many requests were shed (floodgate_shed_total).
func (r *RouteStats) Shed() uint64 { return r.degraded[degrade.OutcomeShed].Load() }

// RateLimited returns how many requests the route's rate limit refused (429).
func (r *RouteStats) RateLimited() uint64 { return r.rateLimited.Load() }

// Denied returns how many requests the route's allow/deny lists refused (403).
func (r *RouteStats) Denied() uint64 { return r.denied.Load() }

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
func (r *RouteStats) Codes() []CodeCount {
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
func (r *RouteStats) Latency() (count uint64, sumSeconds float64, cumulative []uint64) {
	cumulative = make([]uint64, len(LatencyBuckets))
	var acc uint64
	for i := range LatencyBuckets {
		acc += r.buckets[i].Load()
		cumulative[i] = acc
	}
	return r.count.Load(), float64(r.sumNS.Load()) / 1e9, cumulative
}

// record adds one response. It allocates nothing.
func (r *RouteStats) record(code int, d time.Duration) {
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

// routeStatsLocked returns the stats for a route, reusing those of the previous
// generations. s.upMu must be held.
func (s *Server) routeStatsLocked(route, pool string) *RouteStats {
	key := route + "\x00" + pool
	if st := s.stats[key]; st != nil {
		return st
	}
	st := &RouteStats{Route: route, Pool: pool}
	s.stats[key] = st
	return st
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
