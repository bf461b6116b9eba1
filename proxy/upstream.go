package proxy

import (
	"errors"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// upstream is the long-lived client of one backend: its fasthttp.HostClient keeps the
// pool of connections, and survives reloads for as long as the backend and its
// transport settings stay the same.
type upstream struct {
	id       string
	addr     string
	connect  time.Duration
	response time.Duration
	maxConns int
	hc       *fasthttp.HostClient
}

// dialError marks a failure to connect: nothing was sent, so any request may be
// retried on another backend.
type dialError struct{ err error }

func (e *dialError) Error() string { return "dial: " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// idleConnTimeout is how long an unused backend connection is kept. It is shorter
// than common backend keep-alive timeouts (nginx 75s, Node.js 5s is the outlier) so
// that we rarely send a request on a connection the backend is closing.
const idleConnTimeout = 4 * time.Second

func newUpstream(id, addr string, ps PoolSpec) *upstream {
	u := &upstream{id: id, addr: addr, connect: ps.ConnectTimeout, response: ps.ResponseTimeout, maxConns: ps.MaxConnsPerBackend}
	if u.connect <= 0 {
		u.connect = 2 * time.Second
	}
	if u.response <= 0 {
		u.response = 30 * time.Second
	}
	maxConns := ps.MaxConnsPerBackend
	if maxConns <= 0 {
		maxConns = 1 << 20 // the balancer enforces limits; fasthttp must never refuse on its own
	}
	dialer := &net.Dialer{Timeout: u.connect}
	u.hc = &fasthttp.HostClient{
		Addr: addr,
		Dial: func(a string) (net.Conn, error) {
			c, err := dialer.Dial("tcp", a)
			if err != nil {
				return nil, &dialError{err}
			}
			return c, nil
		},
		MaxConns:                      maxConns,
		MaxIdleConnDuration:           idleConnTimeout,
		ReadTimeout:                   u.response,
		WriteTimeout:                  u.response,
		MaxIdemponentCallAttempts:     1, // retries are ours: on another backend, and only when safe
		RetryIfErr:                    func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		DisableHeaderNamesNormalizing: true,
		DisablePathNormalizing:        true,
		NoDefaultUserAgentHeader:      true,
		StreamResponseBody:            true,
		ReadBufferSize:                8192,
		WriteBufferSize:               8192,
	}
	return u
}

func (u *upstream) sameSettings(addr string, ps PoolSpec) bool {
	c, r := ps.ConnectTimeout, ps.ResponseTimeout
	if c <= 0 {
		c = 2 * time.Second
	}
	if r <= 0 {
		r = 30 * time.Second
	}
	return u.addr == addr && u.connect == c && u.response == r && u.maxConns == ps.MaxConnsPerBackend
}

// upstreamLocked returns the upstream for a backend ID, reusing the existing one when
// its settings are unchanged. s.upMu must be held.
func (s *Server) upstreamLocked(id, addr string, ps PoolSpec) *upstream {
	if u := s.upstreams[id]; u != nil && u.sameSettings(addr, ps) {
		return u
	}
	u := newUpstream(id, addr, ps)
	s.upstreams[id] = u
	return u
}

// retireUpstreams closes the idle connections of backends that the current snapshot
// no longer uses. Requests still in flight on them finish normally.
func (s *Server) retireUpstreams(cur *Snapshot) {
	used := make(map[*upstream]bool)
	for _, p := range cur.pools {
		for _, u := range p.upstreams {
			used[u] = true
		}
	}
	s.upMu.Lock()
	var gone []*upstream
	for id, u := range s.upstreams {
		if !used[u] {
			delete(s.upstreams, id)
			gone = append(gone, u)
		}
	}
	s.upMu.Unlock()
	for _, u := range gone {
		u.hc.CloseIdleConnections()
	}
}

// isDialError reports whether err means the backend could not be reached at all.
func isDialError(err error) bool {
	var de *dialError
	return errors.As(err, &de)
}
