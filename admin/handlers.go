package admin

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/degrade/capture"
	"github.com/floodgate/floodgate/generation"
	"github.com/floodgate/floodgate/registry"
)

// poolsJSON is the answer of GET /api/v1/pools.
type poolsJSON struct {
	Generation uint64     `json:"generation"`
	Pools      []poolJSON `json:"pools"`
}

type poolJSON struct {
	Name     string        `json:"name"`
	Health   string        `json:"health"`
	Queue    queueJSON     `json:"queue"`
	Backends []backendJSON `json:"backends"`
}

type queueJSON struct {
	Depth    int    `json:"depth"`
	Enqueued uint64 `json:"enqueued"`
	Served   uint64 `json:"served"`
	Timeouts uint64 `json:"timeouts"`
	Rejected uint64 `json:"rejected"`
	// Predicted counts requests refused at arrival on their predicted wait.
	Predicted uint64 `json:"predicted"`
}

type backendJSON struct {
	Pool         string      `json:"pool"`
	Address      string      `json:"address"`
	Weight       int         `json:"weight"`
	MaxConns     int         `json:"max_conns"`
	Limit        int64       `json:"limit"`
	State        string      `json:"state"`
	Source       string      `json:"source"`
	Drain        bool        `json:"drain"`
	Removing     bool        `json:"removing,omitempty"`
	Overridden   bool        `json:"overridden,omitempty"`
	InFlight     int64       `json:"in_flight"`
	Requests     uint64      `json:"requests"`
	Failures     uint64      `json:"failures"`
	Ejections    uint64      `json:"ejections"`
	EjectedUntil *time.Time  `json:"ejected_until,omitempty"`
	UpSince      *time.Time  `json:"up_since,omitempty"`
	Check        *healthJSON `json:"check,omitempty"`
}

type healthJSON struct {
	LastCheck       *time.Time `json:"last_check,omitempty"`
	LastError       string     `json:"last_error,omitempty"`
	ConsecutiveOK   int        `json:"consecutive_ok"`
	ConsecutiveFail int        `json:"consecutive_fail"`
}

func (s *Server) backendJSON(b *generation.BackendView, activeCheck bool) backendJSON {
	st := b.State.Stats()
	out := backendJSON{
		Pool: b.Pool, Address: b.Address, Weight: b.Weight, MaxConns: b.MaxConns, Limit: b.Limit, State: b.Status(), Source: string(b.Source),
		Drain: b.Drain, Removing: b.Removing, Overridden: b.Overridden,
		InFlight: st.Inflight, Requests: st.Requests, Failures: st.Failures, Ejections: st.Ejections,
	}
	if st.Ejected {
		out.EjectedUntil = ptr(st.EjectedUntil.UTC())
	}
	if !st.UpSince.IsZero() {
		out.UpSince = ptr(st.UpSince.UTC())
	}
	if activeCheck && s.opts.Health != nil {
		if hs, ok := s.opts.Health.Status(b.Pool, b.Address); ok {
			h := &healthJSON{LastError: hs.LastErr, ConsecutiveOK: hs.ConsecutiveOK, ConsecutiveFail: hs.ConsecutiveFail}
			if !hs.LastCheck.IsZero() {
				h.LastCheck = ptr(hs.LastCheck.UTC())
			}
			out.Check = h
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func (s *Server) listPools(w http.ResponseWriter, r *http.Request) {
	v := s.opts.Registry.View()
	out := poolsJSON{Generation: v.Gen, Pools: make([]poolJSON, 0, len(v.Pools))}
	for _, p := range v.Pools {
		q := p.State.QueueStats()
		hc := p.Config.Health.Type
		if hc == "" {
			hc = "none"
		}
		pj := poolJSON{Name: p.Name, Health: hc, Backends: make([]backendJSON, 0, len(p.Backends)),
			Queue: queueJSON{Depth: q.Depth, Enqueued: q.Enqueued, Served: q.Served, Timeouts: q.Timeouts, Rejected: q.Rejected, Predicted: q.Predicted}}
		for _, b := range p.Backends {
			pj.Backends = append(pj.Backends, s.backendJSON(b, hc != "none"))
		}
		out.Pools = append(out.Pools, pj)
	}
	writeJSON(w, http.StatusOK, out)
}

// registerRequest is the body of POST /api/v1/pools/{pool}/backends.
type registerRequest struct {
	Address  string `json:"address"`
	Weight   *int   `json:"weight"`
	MaxConns *int   `json:"max_conns"`
}

func (s *Server) registerBackend(w http.ResponseWriter, r *http.Request) {
	pool := r.PathValue("pool")
	var req registerRequest
	if !decode(w, r, &req, false) {
		return
	}
	// One spelling per backend: the answer, the log and the lookups below
	// use the address as the registry stores it.
	addr, err := registry.CanonicalAddress(req.Address)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	req.Address = addr
	created, err := s.opts.Registry.Register(r.Context(), pool, req.Address, registry.BackendUpdate{Weight: req.Weight, MaxConns: req.MaxConns})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		s.log.Info("admin: backend registered", "pool", pool, "backend", req.Address)
	}
	s.writeBackend(w, status, pool, req.Address)
}

// updateRequest is the body of PATCH .../backends/{address}.
type updateRequest struct {
	Weight   *int  `json:"weight"`
	MaxConns *int  `json:"max_conns"`
	Drain    *bool `json:"drain"`
}

func (s *Server) updateBackend(w http.ResponseWriter, r *http.Request) {
	var req updateRequest
	if !decode(w, r, &req, false) {
		return
	}
	pool, address := r.PathValue("pool"), canonicalAddress(r.PathValue("address"))
	err := s.opts.Registry.Update(r.Context(), pool, address, registry.BackendUpdate{Weight: req.Weight, MaxConns: req.MaxConns, Drain: req.Drain})
	if err != nil {
		s.writeErr(w, err)
		return
	}
	s.log.Info("admin: backend changed", "pool", pool, "backend", address)
	s.writeBackend(w, http.StatusOK, pool, address)
}

// writeBackend answers with one backend as it is in service now.
func (s *Server) writeBackend(w http.ResponseWriter, status int, pool, address string) {
	v := s.opts.Registry.View()
	b := v.Backend(pool, address)
	if b == nil { // removed by a concurrent reload in the meantime
		writeError(w, http.StatusConflict, "backend "+address+" of pool "+pool+" was removed by a concurrent change")
		return
	}
	writeJSON(w, status, s.backendJSON(b, v.Pool(pool).Config.Health.Type != "" && v.Pool(pool).Config.Health.Type != "none"))
}

// canonicalAddress returns the {address} path parameter in the registry's
// spelling, when it is a valid address at all (an invalid one is simply not
// found).
func canonicalAddress(address string) string {
	if c, err := registry.CanonicalAddress(address); err == nil {
		return c
	}
	return address
}

// removal is the answer of DELETE .../backends/{address}.
type removal struct {
	Pool          string  `json:"pool"`
	Address       string  `json:"address"`
	Removed       bool    `json:"removed"`
	Drained       bool    `json:"drained"`
	InFlight      int64   `json:"in_flight"`
	WaitedSeconds float64 `json:"waited_seconds"`
}

func (s *Server) removeBackend(w http.ResponseWriter, r *http.Request) {
	if !decode(w, r, nil, true) {
		return
	}
	pool, address := r.PathValue("pool"), canonicalAddress(r.PathValue("address"))
	res, err := s.opts.Registry.Remove(r.Context(), pool, address, s.opts.DrainTimeout())
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if res.Drained {
		s.log.Info("admin: backend removed", "pool", pool, "backend", address, "waited", res.Waited)
	} else {
		s.log.Warn("admin: backend removed before its requests finished: drain timeout", "pool", pool,
			"backend", address, "in_flight", res.Inflight, "waited", res.Waited)
	}
	writeJSON(w, http.StatusOK, removal{Pool: pool, Address: address, Removed: true, Drained: res.Drained,
		InFlight: res.Inflight, WaitedSeconds: res.Waited.Seconds()})
}

// reloadError is the answer of a refused reload.
type reloadError struct {
	Error    string   `json:"error"`
	Problems []string `json:"problems"`
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	if !decode(w, r, nil, true) {
		return
	}
	if s.opts.Reloader == nil {
		s.writeErr(w, ErrNoConfigFile)
		return
	}
	res, err := s.opts.Reloader.Reload(r.Context())
	var ce *ConfigError
	switch {
	case errors.As(err, &ce):
		writeJSON(w, http.StatusBadRequest, reloadError{Error: ce.Error(), Problems: ce.Problems})
		return
	case err != nil:
		s.writeErr(w, err)
		return
	}
	if res.RestartRequired == nil {
		res.RestartRequired = []string{}
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.opts.Metrics == nil {
		writeError(w, http.StatusNotFound, "metrics are not enabled")
		return
	}
	s.opts.Metrics.ServeHTTP(w, r)
}

type healthzJSON struct {
	Status     string `json:"status"`
	Generation uint64 `json:"generation"`
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	gen := s.opts.Registry.View().Gen
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, healthzJSON{Status: "draining", Generation: gen})
		return
	}
	writeJSON(w, http.StatusOK, healthzJSON{Status: "ok", Generation: gen})
}

// writeErr answers err with its status: the only place errors become statuses.
func (s *Server) writeErr(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, registry.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, registry.ErrNotFound), errors.Is(err, degrade.ErrUnknownPool), errors.Is(err, capture.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, registry.ErrConflict), errors.Is(err, ErrNoConfigFile), errors.Is(err, errNoDegrade),
		errors.Is(err, errNoCapture), errors.Is(err, capture.ErrState), errors.Is(err, errNoCache):
		status = http.StatusConflict
	case errors.Is(err, registry.ErrClosed), errors.Is(err, degrade.ErrClosed), errors.Is(err, capture.ErrClosed),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		status = http.StatusServiceUnavailable
	}
	if status >= 500 {
		s.log.Error("admin: request failed", "error", err.Error())
	}
	writeError(w, status, err.Error())
}
