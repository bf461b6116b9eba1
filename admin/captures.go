package admin

import (
	"errors"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/floodgate/floodgate/degrade/capture"
)

// Captures is the part of *capture.Journal the API drives: the captures
// endpoints and the capture section of the status page.
type Captures interface {
	Stats() capture.Stats
	DeadLetters() []capture.DeadLetter
	Pending(pool string, max int) []*capture.Record
	Get(id string) (*capture.Record, capture.Status, bool)
	Retry(id string) error
	Discard(id string) error
	PauseReplay(pool string)
	ResumeReplay(pool string)
	ReplayPaused(pool string) bool
}

// errNoCapture answers the captures endpoints when the journal is not wired.
var errNoCapture = errors.New("order capture is not configured in this floodgate (no capture section)")

// DeadLetter is a captured request that replay gave up on.
type DeadLetter struct {
	// ID is the capture id; Pool and Route where it was captured.
	ID    string `json:"id"`
	Pool  string `json:"pool"`
	Route string `json:"route"`
	// Reason says why, e.g. "backend answered 422".
	Reason string `json:"reason"`
	// Attempts is how many times it was sent.
	Attempts int `json:"attempts"`
	// Captured is when it was captured, DeadAt when it was dead-lettered.
	Captured time.Time `json:"captured"`
	DeadAt   time.Time `json:"dead_at"`
}

func deadLetterJSON(d capture.DeadLetter) DeadLetter {
	return DeadLetter{ID: d.ID, Pool: d.Pool, Route: d.Route, Reason: d.Reason, Attempts: d.Attempts,
		Captured: d.Captured.UTC(), DeadAt: d.Time.UTC()}
}

// capturesJSON is the answer of GET /api/v1/captures.
type capturesJSON struct {
	Pending       int            `json:"pending"`
	BacklogByPool map[string]int `json:"backlog_by_pool"`
	DeadLetters   []DeadLetter   `json:"dead_letters"`
	Captured      uint64         `json:"captured"`
	Delivered     uint64         `json:"delivered"`
	Fsyncs        uint64         `json:"fsyncs"`
	Bytes         int64          `json:"bytes"`
	Segments      int            `json:"segments"`
	PausedPools   []string       `json:"paused_pools"`
}

func (s *Server) listCaptures(w http.ResponseWriter, r *http.Request) {
	if s.opts.Captures == nil {
		s.writeErr(w, errNoCapture)
		return
	}
	st := s.opts.Captures.Stats()
	out := capturesJSON{Pending: st.Pending, BacklogByPool: st.Backlog, DeadLetters: []DeadLetter{}, Captured: st.Appended,
		Delivered: st.Delivered, Fsyncs: st.Fsyncs, Bytes: st.Bytes, Segments: st.Segments, PausedPools: []string{}}
	if out.BacklogByPool == nil {
		out.BacklogByPool = map[string]int{}
	}
	for _, d := range s.opts.Captures.DeadLetters() {
		out.DeadLetters = append(out.DeadLetters, deadLetterJSON(d))
	}
	for _, p := range s.opts.Registry.View().Pools {
		if s.opts.Captures.ReplayPaused(p.Name) {
			out.PausedPools = append(out.PausedPools, p.Name)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// recordJSON is one captured request.
type recordJSON struct {
	ID     string    `json:"id"`
	Status string    `json:"status,omitempty"`
	Pool   string    `json:"pool"`
	Route  string    `json:"route"`
	Method string    `json:"method"`
	Target string    `json:"target"`
	Client string    `json:"client"`
	Time   time.Time `json:"time"`
	// IdempotencyKey is the client's key, if it sent one.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	BodyBytes      int    `json:"body_bytes"`
	// Header and Body are given by GET /api/v1/captures/{id} only; Body as
	// text when it is UTF-8, else BodyBase64.
	Header     string `json:"header,omitempty"`
	Body       string `json:"body,omitempty"`
	BodyBase64 []byte `json:"body_base64,omitempty"`
}

func recordOf(rec *capture.Record, full bool) recordJSON {
	out := recordJSON{ID: rec.ID, Pool: rec.Pool, Route: rec.Route, Method: rec.Method, Target: rec.Target, Client: rec.Client,
		Time: rec.Time.UTC(), IdempotencyKey: rec.IdemKey, BodyBytes: len(rec.Body)}
	if full {
		out.Header = string(rec.Header)
		if utf8.Valid(rec.Body) {
			out.Body = string(rec.Body)
		} else {
			out.BodyBase64 = rec.Body
		}
	}
	return out
}

// maxPendingList bounds GET /api/v1/pools/{pool}/captures.
const maxPendingList = 1000

// pendingJSON is the answer of GET /api/v1/pools/{pool}/captures.
type pendingJSON struct {
	Pool    string       `json:"pool"`
	Backlog int          `json:"backlog"`
	Records []recordJSON `json:"records"`
}

func (s *Server) listPending(w http.ResponseWriter, r *http.Request) {
	pool := r.PathValue("pool")
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPendingList {
			writeError(w, http.StatusBadRequest, "limit: want 1 to "+strconv.Itoa(maxPendingList))
			return
		}
		limit = n
	}
	if !s.capturePool(w, pool) {
		return
	}
	out := pendingJSON{Pool: pool, Backlog: s.opts.Captures.Stats().Backlog[pool], Records: []recordJSON{}}
	for _, rec := range s.opts.Captures.Pending(pool, limit) {
		out.Records = append(out.Records, recordOf(rec, false))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getCapture(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if s.opts.Captures == nil {
		s.writeErr(w, errNoCapture)
		return
	}
	rec, st, ok := s.opts.Captures.Get(id)
	switch {
	case !ok:
		writeError(w, http.StatusNotFound, "no such capture: "+id)
		return
	case rec == nil:
		writeError(w, http.StatusInternalServerError, "capture "+id+" ("+st.String()+") cannot be read back from the journal; see the log")
		return
	}
	out := recordOf(rec, true)
	out.Status = st.String()
	writeJSON(w, http.StatusOK, out)
}

// captureChange is the answer of a retry or a discard.
type captureChange struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

func (s *Server) retryCapture(w http.ResponseWriter, r *http.Request) {
	s.changeCapture(w, r, r.PathValue("id"), "retried", capture.StatusPending, func(id string) error { return s.opts.Captures.Retry(id) })
}

func (s *Server) discardCapture(w http.ResponseWriter, r *http.Request) {
	s.changeCapture(w, r, r.PathValue("id"), "discarded", capture.StatusDiscarded, func(id string) error { return s.opts.Captures.Discard(id) })
}

func (s *Server) changeCapture(w http.ResponseWriter, r *http.Request, id, verb string, to capture.Status, change func(string) error) {
	if !decode(w, r, nil, true) {
		return
	}
	if s.opts.Captures == nil {
		s.writeErr(w, errNoCapture)
		return
	}
	if err := change(id); err != nil {
		s.writeErr(w, err)
		return
	}
	s.log.Info("admin: dead letter "+verb, "id", id)
	writeJSON(w, http.StatusOK, captureChange{ID: id, Status: to.String()})
}

// replayJSON is the answer of GET and PUT /api/v1/pools/{pool}/replay.
type replayJSON struct {
	Pool    string `json:"pool"`
	Paused  bool   `json:"paused"`
	Backlog int    `json:"backlog"`
}

// replayRequest is the body of PUT /api/v1/pools/{pool}/replay.
type replayRequest struct {
	Paused *bool `json:"paused"`
}

func (s *Server) getReplay(w http.ResponseWriter, r *http.Request) {
	pool := r.PathValue("pool")
	if !s.capturePool(w, pool) {
		return
	}
	s.writeReplay(w, pool)
}

func (s *Server) setReplay(w http.ResponseWriter, r *http.Request) {
	pool := r.PathValue("pool")
	var req replayRequest
	if !decode(w, r, &req, false) {
		return
	}
	if req.Paused == nil {
		writeError(w, http.StatusBadRequest, `"paused" is required: true or false`)
		return
	}
	if !s.capturePool(w, pool) {
		return
	}
	if *req.Paused {
		s.opts.Captures.PauseReplay(pool)
		s.log.Info("admin: replay paused", "pool", pool)
	} else {
		s.opts.Captures.ResumeReplay(pool)
		s.log.Info("admin: replay resumed", "pool", pool)
	}
	s.writeReplay(w, pool)
}

// capturePool answers 409 without a journal, 404 for a pool that is neither
// in service nor holding a backlog (a pool removed by a reload keeps its
// captured requests), and reports whether the handler may go on.
func (s *Server) capturePool(w http.ResponseWriter, pool string) bool {
	if s.opts.Captures == nil {
		s.writeErr(w, errNoCapture)
		return false
	}
	if s.opts.Registry.View().Pool(pool) == nil && s.opts.Captures.Stats().Backlog[pool] == 0 {
		writeError(w, http.StatusNotFound, "no such pool: "+pool)
		return false
	}
	return true
}

func (s *Server) writeReplay(w http.ResponseWriter, pool string) {
	writeJSON(w, http.StatusOK, replayJSON{Pool: pool, Paused: s.opts.Captures.ReplayPaused(pool),
		Backlog: s.opts.Captures.Stats().Backlog[pool]})
}
