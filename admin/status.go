package admin

import (
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/generation"
)

// Status is the answer of GET /api/v1/status, what the status page and
// `floodgate status` show: every pool with its mode, backends, queue and
// recent traffic, the routes, the cache and the capture journal. Rates are
// computed over the last WindowSeconds from counters the request path keeps
// anyway; they are null until two readings exist.
type Status struct {
	// Time is when the answer was made.
	Time time.Time `json:"time"`
	// Generation is the routing generation in service.
	Generation uint64 `json:"generation"`
	// WindowSeconds is the span the rates cover; 0 when there is no rate yet.
	WindowSeconds float64 `json:"window_seconds"`
	// Pools in config file order.
	Pools []PoolStatus `json:"pools"`
	// Routes of the generation in service; empty when route statistics are
	// not wired.
	Routes []RouteStatus `json:"routes"`
	// Cache is null when floodgate runs without a response cache.
	Cache *CacheStatus `json:"cache"`
	// Captures is null when order capture is not configured.
	Captures *CaptureStatus `json:"captures"`
}

// PoolStatus is one pool of a Status.
type PoolStatus struct {
	// Name is the pool's name.
	Name string `json:"name"`
	// Health is the active check: http, tcp or none.
	Health string `json:"health"`
	// Mode is the pool's degraded-mode state; null when degraded mode is not
	// wired.
	Mode *ModeStatus `json:"mode"`
	// RequestsPerSecond counts the responses to clients of the pool's routes
	// (from the backends, the cache or a degraded action).
	RequestsPerSecond *float64 `json:"requests_per_second"`
	// ErrorRate is the share of those responses that were 5xx, refusals of
	// degraded mode included.
	ErrorRate *float64 `json:"error_rate"`
	// P95Seconds is the 95th percentile of their time to response header;
	// null when there was no response in the window.
	P95Seconds *float64 `json:"p95_seconds"`
	// DegradedPerSecond counts the answers of the routes' degraded actions
	// (stale, static, shed, capture); RefusedPerSecond those of them that
	// refuse by design (shed and static: 503, or 429), which ErrorRate
	// includes when they are 503.
	DegradedPerSecond *float64 `json:"degraded_per_second"`
	RefusedPerSecond  *float64 `json:"refused_per_second"`
	// InFlight is the requests in flight to the pool's backends now.
	InFlight int64 `json:"in_flight"`
	// Capacity is the connection slots of the backends that take new
	// requests (up, weight above 0): the sum of each one's limit (its own
	// max_conns, else max_conns_per_backend); 0 when one of them has no
	// limit.
	Capacity int64 `json:"capacity"`
	// Queue is the wait queue in front of the pool.
	Queue QueueStatus `json:"queue"`
	// Backends in balancing order.
	Backends []BackendStatus `json:"backends"`
	// History is the last HistoryLen seconds, one point per second.
	History History `json:"history"`
}

// QueueStatus is a pool's wait queue.
type QueueStatus struct {
	// Depth is the requests waiting now; Max the queue's size (0: no queue).
	Depth int `json:"depth"`
	Max   int `json:"max"`
	// TimeoutSeconds is the longest wait allowed.
	TimeoutSeconds float64 `json:"timeout_seconds"`
	// WaitSeconds is the mean wait of the waits that ended in the window;
	// null when none did.
	WaitSeconds *float64 `json:"wait_seconds"`
	// TimeoutsPerSecond and RejectedPerSecond are the waits that timed out
	// and the requests refused because the queue was full (both 503).
	TimeoutsPerSecond *float64 `json:"timeouts_per_second"`
	RejectedPerSecond *float64 `json:"rejected_per_second"`
	// Timeouts and Rejected are totals since start.
	Timeouts uint64 `json:"timeouts"`
	Rejected uint64 `json:"rejected"`
}

// BackendStatus is one backend of a PoolStatus.
type BackendStatus struct {
	// Address is host:port.
	Address string `json:"address"`
	// State is up, down (active health check failing), ejected (passive
	// health check) or draining (no new requests by choice: drain flag,
	// DELETE in progress, weight 0).
	State string `json:"state"`
	// Warming is true during slow start: the backend came up less than the
	// pool's slow_start ago and gets EffectiveWeight, not Weight.
	Warming bool `json:"warming"`
	// Weight is the weight set by the file or the API.
	Weight int `json:"weight"`
	// EffectiveWeight is the weight in service now: 0 while draining, ramped
	// from 10% to 100% of Weight during slow start.
	EffectiveWeight float64 `json:"effective_weight"`
	// Source is config or api.
	Source string `json:"source"`
	// InFlight is the requests in flight to it; Limit its connection limit:
	// its own max_conns, else the pool's max_conns_per_backend (0: no
	// limit).
	InFlight int64 `json:"in_flight"`
	Limit    int   `json:"limit"`
	// RequestsPerSecond counts requests forwarded to it that got an
	// outcome; ErrorRate is the share of those that failed (connect errors,
	// resets, timeouts, 5xx).
	RequestsPerSecond *float64 `json:"requests_per_second"`
	ErrorRate         *float64 `json:"error_rate"`
	// Requests and Failures are totals since it was added.
	Requests uint64 `json:"requests"`
	Failures uint64 `json:"failures"`
	// UpSince is when it last came up; EjectedUntil the end of a current
	// ejection.
	UpSince      *time.Time `json:"up_since,omitempty"`
	EjectedUntil *time.Time `json:"ejected_until,omitempty"`
	// CheckError is the last active health check's error, if it failed.
	CheckError string `json:"check_error,omitempty"`
}

// History is a pool's recent past, one point per SampleInterval, oldest
// first; the slices have the same length.
type History struct {
	// StepSeconds is the interval between points.
	StepSeconds float64 `json:"step_seconds"`
	// Time holds each point's Unix time in seconds.
	Time []int64 `json:"t"`
	// RequestsPerSecond, P95Seconds (null where there was no response) and
	// InFlight are as in PoolStatus.
	RequestsPerSecond []float64  `json:"requests_per_second"`
	P95Seconds        []*float64 `json:"p95_seconds"`
	InFlight          []float64  `json:"in_flight"`
}

// RouteStatus is one route of a Status.
type RouteStatus struct {
	// Name and Pool identify the route.
	Name string `json:"name"`
	Pool string `json:"pool"`
	// Requests is the responses since start; RequestsPerSecond, ErrorRate
	// (5xx share) and P95Seconds are over the window.
	Requests          uint64   `json:"requests"`
	RequestsPerSecond *float64 `json:"requests_per_second"`
	ErrorRate         *float64 `json:"error_rate"`
	P95Seconds        *float64 `json:"p95_seconds"`
	// DegradedPerSecond counts answers of the route's degraded action
	// (stale, static, shed, capture); RefusedPerSecond those that refuse by
	// design (shed, static).
	DegradedPerSecond *float64 `json:"degraded_per_second"`
	RefusedPerSecond  *float64 `json:"refused_per_second"`
}

// CacheStatus is the response cache of a Status.
type CacheStatus struct {
	// Bytes is what the stored responses take of MaxBytes, the budget
	// (cache.max_bytes; 0 when not given to the admin API).
	Bytes    int64 `json:"bytes"`
	MaxBytes int64 `json:"max_bytes"`
	// Objects is the stored responses.
	Objects int64 `json:"objects"`
	// HitRatio is the share of lookups answered from the cache (fresh or
	// stale) over the window, of those that could be (bypasses left out);
	// HitRatioTotal the same since start.
	HitRatio      *float64 `json:"hit_ratio"`
	HitRatioTotal *float64 `json:"hit_ratio_total"`
	// LookupsPerSecond counts hits, stale answers, revalidations and misses.
	LookupsPerSecond *float64 `json:"lookups_per_second"`
	// Evicted counts entries evicted to make room since start.
	Evicted uint64 `json:"evicted"`
}

// CaptureStatus is the order capture journal of a Status.
type CaptureStatus struct {
	// Backlog is the captured requests waiting for replay, BacklogByPool
	// the same per pool (pools with none left out).
	Backlog       int            `json:"backlog"`
	BacklogByPool map[string]int `json:"backlog_by_pool"`
	// DeadLetters is the number of dead letters awaiting retry or discard;
	// Dead lists the oldest of them (at most 20).
	DeadLetters int          `json:"dead_letters"`
	Dead        []DeadLetter `json:"dead"`
	// Captured and Delivered are totals since start; CapturedPerSecond and
	// DeliveredPerSecond over the window.
	Captured           uint64   `json:"captured"`
	Delivered          uint64   `json:"delivered"`
	CapturedPerSecond  *float64 `json:"captured_per_second"`
	DeliveredPerSecond *float64 `json:"delivered_per_second"`
	// PausedPools are the pools whose replay is paused.
	PausedPools []string `json:"paused_pools"`
	// Bytes and Segments are the journal's files.
	Bytes    int64 `json:"bytes"`
	Segments int   `json:"segments"`
}

// maxDeadInStatus bounds the dead letters listed in a Status.
const maxDeadInStatus = 20

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	if !decode(w, r, nil, true) {
		return
	}
	writeJSONCompact(w, http.StatusOK, s.buildStatus())
}

// buildStatus reads the live state and the sampler's readings.
func (s *Server) buildStatus() Status {
	now := s.now()
	cur, base := s.sampler.refresh(now)
	v := s.opts.Registry.View()
	out := Status{Time: now.UTC(), Generation: v.Gen, Pools: make([]PoolStatus, 0, len(v.Pools)), Routes: []RouteStatus{}}
	var secs float64
	if base != nil {
		secs = cur.at.Sub(base.at).Seconds()
		out.WindowSeconds = round(secs, 1)
	}
	rate := func(c, b uint64) *float64 {
		if base == nil || secs <= 0 {
			return nil
		}
		return ptr(round(float64(sub(c, b))/secs, 1))
	}
	modes := map[string]degrade.Status{}
	if s.opts.Degrade != nil {
		for _, st := range s.opts.Degrade.Statuses() {
			modes[st.Pool] = st
		}
	}
	for _, p := range v.Pools {
		out.Pools = append(out.Pools, s.poolStatus(p, now, cur, base, rate, modes))
	}
	for key, rr := range cur.routes {
		name, pool, _ := strings.Cut(key, "\x00")
		rs := RouteStatus{Name: name, Pool: pool, Requests: rr.total}
		if base != nil {
			old := base.routes[key]
			if old == nil {
				old = &reqReading{}
			}
			d := diffReq(rr, old)
			rs.RequestsPerSecond = rate(d.total, 0)
			rs.DegradedPerSecond = rate(d.degraded, 0)
			rs.RefusedPerSecond = rate(d.shed, 0)
			rs.ErrorRate = ratio(d.errors, d.total)
			if q, ok := d.quantile(0.95); ok {
				rs.P95Seconds = ptr(roundSig(q))
			}
		}
		out.Routes = append(out.Routes, rs)
	}
	slices.SortFunc(out.Routes, func(a, b RouteStatus) int {
		if c := strings.Compare(a.Pool, b.Pool); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	if s.opts.Cache != nil && cur.cache != nil {
		st := cur.cache
		cs := &CacheStatus{Bytes: st.Bytes, MaxBytes: s.opts.CacheMaxBytes, Objects: st.Objects, Evicted: st.Evicted,
			HitRatioTotal: ratio(st.Hits+st.Stale, st.Hits+st.Stale+st.Revalidated+st.Misses)}
		if base != nil && base.cache != nil {
			b := base.cache
			hits := sub(st.Hits, b.Hits) + sub(st.Stale, b.Stale)
			lookups := hits + sub(st.Revalidated, b.Revalidated) + sub(st.Misses, b.Misses)
			cs.HitRatio = ratio(hits, lookups)
			cs.LookupsPerSecond = rate(lookups, 0)
		}
		out.Cache = cs
	}
	if s.opts.Captures != nil {
		out.Captures = s.captureStatus(v, cur, base, rate)
	}
	return out
}

func (s *Server) poolStatus(p *generation.PoolView, now time.Time, cur, base *reading, rate func(c, b uint64) *float64, modes map[string]degrade.Status) PoolStatus {
	hc := p.Config.Health.Type
	if hc == "" {
		hc = "none"
	}
	q := p.State.QueueStats()
	ps := PoolStatus{Name: p.Name, Health: hc, Backends: make([]BackendStatus, 0, len(p.Backends)),
		Queue: QueueStatus{Depth: q.Depth, Max: p.Config.QueueMax, TimeoutSeconds: p.Config.QueueTimeout.Seconds(),
			Timeouts: q.Timeouts, Rejected: q.Rejected}}
	if st, ok := modes[p.Name]; ok {
		ps.Mode = modeStatus(st)
	}
	unlimited := false
	for _, b := range p.Backends {
		bs := s.backendStatus(b, p.Config, now)
		bs.Limit = int(b.Limit)
		ps.InFlight += bs.InFlight
		if bs.State == generation.StatusUp {
			if b.Limit > 0 {
				ps.Capacity += b.Limit
			} else {
				unlimited = true
			}
		}
		key := p.Name + "\x00" + b.Address
		if c, ok := cur.backends[key]; ok && base != nil {
			old := base.backends[key]
			bs.RequestsPerSecond = rate(c.requests, old.requests)
			bs.ErrorRate = ratio(sub(c.failures, old.failures), sub(c.requests, old.requests))
		}
		ps.Backends = append(ps.Backends, bs)
	}
	if unlimited {
		ps.Capacity = 0 // a backend up without a limit: the pool has none
	}
	if pr := cur.pools[p.Name]; pr != nil && base != nil {
		old := base.pools[p.Name]
		if old == nil {
			old = &poolReading{}
		}
		d := diffReq(&pr.req, &old.req)
		ps.RequestsPerSecond = rate(d.total, 0)
		ps.DegradedPerSecond = rate(d.degraded, 0)
		ps.RefusedPerSecond = rate(d.shed, 0)
		ps.ErrorRate = ratio(d.errors, d.total)
		if v, ok := d.quantile(0.95); ok {
			ps.P95Seconds = ptr(roundSig(v))
		}
		if waits := sub(pr.queueWaits, old.queueWaits); waits > 0 {
			ps.Queue.WaitSeconds = ptr(roundSig(float64(sub(pr.queueWaitNanos, old.queueWaitNanos)) / float64(waits) / 1e9))
		}
		ps.Queue.TimeoutsPerSecond = rate(pr.queueTimeouts, old.queueTimeouts)
		ps.Queue.RejectedPerSecond = rate(pr.queueRejected, old.queueRejected)
	}
	ps.History = s.sampler.historyOf(p.Name)
	return ps
}

// backendStatus is a backend's live state. The slow-start ramp is the
// balancer's (10% + 90% * elapsed / slow_start of the weight), computed from
// the time the backend came up, which is when the balancer starts its ramp.
func (s *Server) backendStatus(b *generation.BackendView, cfg generation.PoolSettings, now time.Time) BackendStatus {
	st := b.State.Stats()
	bs := BackendStatus{Address: b.Address, Weight: b.Weight, Source: string(b.Source), InFlight: st.Inflight,
		Requests: st.Requests, Failures: st.Failures, EffectiveWeight: float64(b.EffectiveWeight())}
	switch {
	case b.EffectiveWeight() == 0:
		bs.State = generation.StatusDraining
	case st.Ejected:
		bs.State = StatusEjected
	case !st.ProbeUp:
		bs.State = generation.StatusDown
	default:
		bs.State = generation.StatusUp
	}
	if !st.UpSince.IsZero() {
		bs.UpSince = ptr(st.UpSince.UTC())
		if elapsed := now.Sub(st.UpSince); cfg.SlowStart > 0 && elapsed < cfg.SlowStart && bs.State == generation.StatusUp {
			ramp := 0.1 + 0.9*max(0, elapsed.Seconds())/cfg.SlowStart.Seconds()
			bs.Warming = true
			bs.EffectiveWeight = round(float64(b.Weight)*ramp, 1)
		}
	}
	if st.Ejected {
		bs.EjectedUntil = ptr(st.EjectedUntil.UTC())
	}
	if s.opts.Health != nil && cfg.Health.Type != "" && cfg.Health.Type != "none" {
		if hs, ok := s.opts.Health.Status(b.Pool, b.Address); ok && hs.ConsecutiveFail > 0 {
			bs.CheckError = hs.LastErr
		}
	}
	return bs
}

// StatusEjected is the state of a backend kept out by passive health checks,
// in the status endpoint (GET /api/v1/pools reports it as down).
const StatusEjected = "ejected"

func (s *Server) captureStatus(v *generation.View, cur, base *reading, rate func(c, b uint64) *float64) *CaptureStatus {
	st := s.opts.Captures.Stats()
	cs := &CaptureStatus{Backlog: st.Pending, BacklogByPool: st.Backlog, DeadLetters: st.DeadLetters, Dead: []DeadLetter{},
		Captured: st.Appended, Delivered: st.Delivered, Bytes: st.Bytes, Segments: st.Segments, PausedPools: []string{}}
	if cs.BacklogByPool == nil {
		cs.BacklogByPool = map[string]int{}
	}
	if st.DeadLetters > 0 {
		for i, d := range s.opts.Captures.DeadLetters() {
			if i == maxDeadInStatus {
				break
			}
			cs.Dead = append(cs.Dead, deadLetterJSON(d))
		}
	}
	if base != nil && cur.capture != nil && base.capture != nil {
		cs.CapturedPerSecond = rate(cur.capture.appended, base.capture.appended)
		cs.DeliveredPerSecond = rate(cur.capture.delivered, base.capture.delivered)
	}
	for _, p := range v.Pools {
		if s.opts.Captures.ReplayPaused(p.Name) {
			cs.PausedPools = append(cs.PausedPools, p.Name)
		}
	}
	return cs
}

// ratio is n/d rounded to 4 places, nil when d is 0.
func ratio(n, d uint64) *float64 {
	if d == 0 {
		return nil
	}
	return ptr(round(float64(n)/float64(d), 4))
}

func round(v float64, places int) float64 {
	p := math.Pow10(places)
	return math.Round(v*p) / p
}

// roundSig rounds to 3 significant digits: latencies from 0.000123 to 12.3 s.
func roundSig(v float64) float64 {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	places := 2 - int(math.Floor(math.Log10(math.Abs(v))))
	return round(v, places)
}
