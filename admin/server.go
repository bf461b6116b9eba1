package admin

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"github.com/floodgate/floodgate/generation"
	"github.com/floodgate/floodgate/health"
	"github.com/floodgate/floodgate/internal/panics"
	"github.com/floodgate/floodgate/proxy"
	"github.com/floodgate/floodgate/proxy/cache"
	"github.com/floodgate/floodgate/registry"
)

// MaxBody caps request bodies. The largest valid one, a registration, is under
// 300 bytes.
const MaxBody = 64 << 10

// Registry is the part of generation.Manager (the registry and the generation
// in service) the API drives.
type Registry interface {
	View() *generation.View
	Register(ctx context.Context, pool, address string, u registry.BackendUpdate) (created bool, err error)
	Update(ctx context.Context, pool, address string, u registry.BackendUpdate) error
	Remove(ctx context.Context, pool, address string, timeout time.Duration) (registry.Removal, error)
}

// Reloader reloads the config file; cmd/floodgate implements it. Reload returns
// a *ConfigError (possibly wrapped) when the file is invalid, and ErrNoConfigFile
// when there is no file to reload.
type Reloader interface {
	Reload(ctx context.Context) (ReloadResult, error)
}

// ReloadResult is the outcome of a reload that applied.
type ReloadResult struct {
	// Generation is the generation in service afterwards.
	Generation uint64 `json:"generation"`
	// Changed is false when the file held nothing new.
	Changed bool `json:"changed"`
	// RestartRequired names the settings that changed in the file but apply
	// only after a restart (listen addresses, for instance).
	RestartRequired []string `json:"restart_required"`
}

// ConfigError is a reload refused because of the config file. Problems holds
// one "PATH:LINE: message" per problem, as floodgate -check prints them.
type ConfigError struct {
	// Problems holds one line per problem.
	Problems []string
}

// Error returns the problems, one per line.
func (e *ConfigError) Error() string { return strings.Join(e.Problems, "\n") }

// ErrNoConfigFile is the Reloader's error when floodgate runs without a config
// file (floodgate demo): there is nothing to reload.
var ErrNoConfigFile = errors.New("floodgate runs without a config file: nothing to reload")

// HealthStatus reports a backend's active health check: *health.Checker.
type HealthStatus interface {
	Status(pool, address string) (health.Status, bool)
}

// CacheStats reads the response cache's counters: *cache.Cache.
type CacheStats interface {
	Stats() cache.Stats
}

// Options configures New. The fields after Logger feed the status page and
// the mode and captures endpoints; each may be left nil (a nil pointer counts
// as nil), and the page then shows that part as not configured.
type Options struct {
	// Registry is required.
	Registry Registry
	// Reloader serves POST /api/v1/reload; nil answers 409.
	Reloader Reloader
	// Health adds the last probe's outcome to each backend; nil leaves it out.
	Health HealthStatus
	// Metrics serves GET /metrics; nil answers 404.
	Metrics http.Handler
	// Token, when non-empty, is the bearer token every endpoint but /healthz
	// requires. Empty means no authentication: only for a loopback listener,
	// which the caller enforces.
	Token []byte
	// DrainTimeout returns how long DELETE waits for a backend's in-flight
	// requests; it is read per request, so a reload can change it. nil means
	// 30s.
	DrainTimeout func() time.Duration
	// Logger receives one line per change and per refused request, never a
	// token. nil discards.
	Logger *slog.Logger

	// Degrade serves GET and PUT /api/v1/pools/{pool}/mode and the pools'
	// modes on the status page: the *degrade.Monitor. nil answers 409.
	Degrade Degrade
	// Captures serves the captures and replay endpoints and the capture
	// section of the status page: the *capture.Journal. nil answers 409.
	Captures Captures
	// Routes returns the per-route counters: proxy.Server.RouteStats. The
	// status page's request rates, error rates and p95 come from them; nil
	// leaves those out.
	Routes func() []*proxy.RouteStats
	// Cache is the response cache, for its hit ratio and size; nil when
	// floodgate runs without one.
	Cache CacheStats
	// CacheMaxBytes is the cache's budget (cache.max_bytes), shown against
	// its size.
	CacheMaxBytes int64
	// Now is the status endpoint's clock; nil means time.Now. Tests set it.
	Now func() time.Time
}

// Server is the admin API's http.Handler. Safe for concurrent use.
type Server struct {
	opts       Options
	log        *slog.Logger
	now        func() time.Time
	tokenHash  [sha256.Size]byte
	sessionKey [sha256.Size]byte
	auth       bool
	draining   atomic.Bool
	sampler    *sampler
	mux        *http.ServeMux
	access     map[string]access // by ServeMux pattern
}

// New returns the API handler. It fails only if opts lacks a Registry.
func New(opts Options) (*Server, error) {
	if opts.Registry == nil {
		return nil, errors.New("admin: Options.Registry is required")
	}
	// A nil *degrade.Monitor, *capture.Journal or *cache.Cache in an
	// interface field is not nil; treat it as the nil it means.
	if isNil(opts.Degrade) {
		opts.Degrade = nil
	}
	if isNil(opts.Captures) {
		opts.Captures = nil
	}
	if isNil(opts.Cache) {
		opts.Cache = nil
	}
	s := &Server{opts: opts, log: opts.Logger, now: opts.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if len(opts.Token) > 0 {
		s.auth = true
		s.tokenHash = sha256.Sum256(opts.Token)
		mac := hmac.New(sha256.New, opts.Token)
		mac.Write([]byte("floodgate admin session key"))
		copy(s.sessionKey[:], mac.Sum(nil))
	}
	s.mux, s.access = s.newMux()
	s.sampler = newSampler(sources{view: opts.Registry.View, routes: opts.Routes, cache: s.opts.Cache, cap: s.opts.Captures})
	if s.opts.DrainTimeout == nil {
		s.opts.DrainTimeout = func() time.Duration { return 30 * time.Second }
	}
	return s, nil
}

func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// SetDraining makes /healthz answer 503 from now on: the process is shutting
// down, and a load balancer in front should stop sending it traffic.
func (s *Server) SetDraining() { s.draining.Store(true) }

// ServeHTTP authenticates, routes and answers one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	defer s.recoverCall(sw, r)
	s.serve(sw, r)
	level := slog.LevelDebug
	if r.Method != http.MethodGet || sw.status >= 400 {
		level = slog.LevelInfo
	}
	if s.log.Enabled(r.Context(), level) {
		s.log.LogAttrs(r.Context(), level, "admin: request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", sw.status), slog.String("remote", r.RemoteAddr),
			slog.Duration("took", time.Since(start)))
	}
}

// recoverCall contains a panic of an admin handler: net/http would recover it
// too, but log it at debug level (the server's ErrorLog) and count nothing. It
// is counted and logged once with its stack; the call gets a 500, or, when
// part of the answer is already out, its connection is closed
// (http.ErrAbortHandler, which net/http closes quietly).
func (s *Server) recoverCall(w *statusWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler { //nolint:errorlint // the sentinel is compared as net/http does
		panic(v)
	}
	panics.Contain(s.log, "admin "+r.Method+" "+r.URL.Path, v)
	if w.status != 0 {
		panic(http.ErrAbortHandler)
	}
	writeError(w, http.StatusInternalServerError, "internal error; see the floodgate log")
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	// Look the route up first, without serving it: its access decides what
	// is checked. An empty pattern is no route (ServeMux's own 404 or 405).
	h, pattern := s.mux.Handler(r)
	acc, routed := s.access[pattern]
	if routed && acc == probe {
		s.mux.ServeHTTP(w, r)
		return
	}
	// What a browser sends from another site's page, or from a page that DNS
	// rebinding passed off as loopback, is refused whatever the credentials.
	if unsafeMethod(r.Method) && crossOrigin(r) {
		writeError(w, http.StatusForbidden, "cross-origin request refused")
		return
	}
	if !s.auth && !loopbackHost(r.Host) {
		writeError(w, http.StatusForbidden, "without admin.token_file the admin API answers only to loopback Host names")
		return
	}
	if routed && acc == public {
		s.mux.ServeHTTP(w, r)
		return
	}
	// Authenticate before saying anything about the path, so that without the
	// token nothing about the API can be learnt.
	kind := s.authenticate(r)
	if kind == authNone {
		if routed && acc == page {
			s.loginPage(w, http.StatusUnauthorized, "")
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="floodgate"`)
		writeError(w, http.StatusUnauthorized, "missing or invalid bearer token")
		return
	}
	if kind == authCookie && unsafeMethod(r.Method) && r.Header.Get(pageHeader) == "" {
		writeError(w, http.StatusForbidden, "a change made with the status page's session needs the "+pageHeader+" header")
		return
	}
	if routed {
		s.mux.ServeHTTP(w, r) // matches again, to set r.PathValue
		return
	}
	h.ServeHTTP(&muxError{ResponseWriter: w, r: r}, r)
}

// authorized checks the bearer token in constant time. Both sides are hashed
// first so that neither the token's content nor its length leaks through
// timing.
func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(got[:], s.tokenHash[:]) == 1
}

// statusWriter records the status for the log line.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
