package admin

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/floodgate/floodgate/degrade"
)

// Degrade is the part of *degrade.Monitor the API drives: the mode endpoints
// and the modes on the status page.
type Degrade interface {
	Status(pool string) (degrade.Status, bool)
	Statuses() []degrade.Status
	SetOverride(pool string, o degrade.Override) error
}

// errNoDegrade answers the mode endpoints when degraded mode is not wired.
var errNoDegrade = errors.New("degraded mode is not configured in this floodgate")

// ModeStatus is a pool's degraded-mode state: the answer of GET and PUT
// /api/v1/pools/{pool}/mode, and PoolStatus.Mode.
type ModeStatus struct {
	// Pool is the pool's name.
	Pool string `json:"pool"`
	// Mode is the effective mode: normal or degraded.
	Mode string `json:"mode"`
	// Override is the admin override: auto (the signals decide), degraded or
	// normal.
	Override string `json:"override"`
	// Auto is the mode the signals indicate on their own.
	Auto string `json:"auto"`
	// Level is the admission level: normal, shed-low, shed-normal or
	// critical-only.
	Level string `json:"level"`
	// Reason says why the pool is in Mode (the signal that crossed its
	// threshold, the calm that ended it, or the override); empty for a pool
	// that has always been normal. Since is when it got there.
	Reason string     `json:"reason"`
	Since  *time.Time `json:"since,omitempty"`
	// Transitions counts the pool's mode changes.
	Transitions uint64 `json:"transitions"`
	// Signals are the latest window's.
	Signals SignalsStatus `json:"signals"`
}

// SignalsStatus are a pool's saturation signals over the monitor's latest
// window; see docs/degraded-mode.md for each.
type SignalsStatus struct {
	// At is the end of the window (absent before the first one) and
	// WindowSeconds its length.
	At            *time.Time `json:"at,omitempty"`
	WindowSeconds float64    `json:"window_seconds"`
	// InflightRatio is Inflight over Capacity (0 without a connection limit).
	InflightRatio float64 `json:"inflight_ratio"`
	Inflight      int64   `json:"inflight"`
	Capacity      int64   `json:"capacity"`
	// QueueDepth is the queue at the end of the window, QueueWaitSeconds the
	// mean wait of the waits that ended in it.
	QueueDepth       int     `json:"queue_depth"`
	QueueWaitSeconds float64 `json:"queue_wait_seconds"`
	// Refused counts requests the balancer refused for want of a slot.
	Refused uint64 `json:"refused"`
	// Forwarded and Failed are the requests sent to the pool in the window;
	// P95LatencySeconds and ErrorRate are 0 when Forwarded is below the
	// pool's minimum.
	Forwarded         uint64  `json:"forwarded"`
	Failed            uint64  `json:"failed"`
	P95LatencySeconds float64 `json:"p95_latency_seconds"`
	ErrorRate         float64 `json:"error_rate"`
	// Diverted counts the requests degraded mode answered without the pool,
	// and Demand is (Forwarded+Diverted)/Forwarded.
	Diverted uint64  `json:"diverted"`
	Demand   float64 `json:"demand"`
	// HealthyCapacity is the up backends' weight over the configured weight.
	HealthyCapacity float64 `json:"healthy_capacity"`
}

func modeStatus(st degrade.Status) *ModeStatus {
	sig := st.Signals
	m := &ModeStatus{
		Pool: st.Pool, Mode: st.Mode.String(), Override: st.Override.String(), Auto: st.Auto.String(),
		Level: st.Level.String(), Reason: st.Reason, Transitions: st.Transitions,
		Signals: SignalsStatus{
			WindowSeconds: round(sig.Window.Seconds(), 3), InflightRatio: round(sig.InflightRatio, 4), Inflight: sig.Inflight,
			Capacity: sig.Capacity, QueueDepth: sig.QueueDepth, QueueWaitSeconds: roundSig(sig.QueueWait.Seconds()),
			Refused: sig.Refused, Forwarded: sig.Forwarded, Failed: sig.Failed,
			P95LatencySeconds: roundSig(sig.P95Latency.Seconds()), ErrorRate: round(sig.ErrorRate, 4),
			Diverted: sig.Diverted, Demand: round(sig.Demand, 3), HealthyCapacity: round(sig.HealthyCapacity, 4),
		},
	}
	if !st.Since.IsZero() {
		m.Since = ptr(st.Since.UTC())
	}
	if !sig.At.IsZero() {
		m.Signals.At = ptr(sig.At.UTC())
	}
	return m
}

// modeRequest is the body of PUT /api/v1/pools/{pool}/mode.
type modeRequest struct {
	Mode *string `json:"mode"`
}

func (s *Server) getMode(w http.ResponseWriter, r *http.Request) {
	pool := r.PathValue("pool")
	if !s.degradePool(w, pool) {
		return
	}
	st, ok := s.opts.Degrade.Status(pool)
	if !ok {
		writeError(w, http.StatusNotFound, "pool "+pool+" is not known to degraded mode yet")
		return
	}
	writeJSON(w, http.StatusOK, modeStatus(st))
}

func (s *Server) setMode(w http.ResponseWriter, r *http.Request) {
	pool := r.PathValue("pool")
	var req modeRequest
	if !decode(w, r, &req, false) {
		return
	}
	if req.Mode == nil {
		writeError(w, http.StatusBadRequest, `"mode" is required: auto, degraded or normal`)
		return
	}
	o, err := degrade.ParseOverride(*req.Mode)
	if err != nil {
		writeError(w, http.StatusBadRequest, "mode "+strconv.Quote(*req.Mode)+": want auto, degraded or normal")
		return
	}
	if !s.degradePool(w, pool) {
		return
	}
	if err := s.opts.Degrade.SetOverride(pool, o); err != nil {
		s.writeErr(w, err)
		return
	}
	s.log.Info("admin: pool mode override", "pool", pool, "mode", o.String())
	st, ok := s.opts.Degrade.Status(pool)
	if !ok { // dropped by a concurrent reload
		writeError(w, http.StatusConflict, "pool "+pool+" was removed by a concurrent change")
		return
	}
	writeJSON(w, http.StatusOK, modeStatus(st))
}

// degradePool answers 404 for a pool the generation in service does not have
// and 409 without degraded mode, and reports whether the handler may go on.
func (s *Server) degradePool(w http.ResponseWriter, pool string) bool {
	if !s.knownPool(w, pool) {
		return false
	}
	if s.opts.Degrade == nil {
		s.writeErr(w, errNoDegrade)
		return false
	}
	return true
}

// knownPool answers 404 and returns false when the generation in service has
// no such pool.
func (s *Server) knownPool(w http.ResponseWriter, pool string) bool {
	if s.opts.Registry.View().Pool(pool) == nil {
		writeError(w, http.StatusNotFound, "no such pool: "+pool)
		return false
	}
	return true
}
