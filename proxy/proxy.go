package proxy

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/balancer"
	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/internal/httpwire"
	"github.com/floodgate/floodgate/internal/panics"
	"github.com/floodgate/floodgate/proxy/cache"
)

// The Server: its options, lifecycle (New, Swap, Serve, Shutdown) and the entry of
// the request path (serve, handle); the guard, the forward and the access log have
// their own files.

// Options are the listener-wide settings of the data plane. Zero values take the
// defaults documented on each field.
type Options struct {
	Logger            *slog.Logger   // nil discards
	ReadHeaderTimeout time.Duration  // request line and headers (slowloris); 0 = 10s
	BodyIdleTimeout   time.Duration  // between reads of a request body; 0 = 60s
	WriteIdleTimeout  time.Duration  // between writes of a response; 0 = 60s
	IdleTimeout       time.Duration  // keep-alive wait for the next request; 0 = 60s
	MaxRequestBody    int64          // 0 = 64 MiB; larger bodies get 413
	MaxHeaderBytes    int            // request line plus headers; 0 = 16 KiB
	MaxHeaderFields   int            // header fields of a request; 0 = 100; more get 431
	MaxConns          int            // concurrent client connections; 0 = 10000
	MaxConnsPerIP     int            // 0 = unlimited
	TrustedProxies    []netip.Prefix // X-Forwarded-For is believed only from these peers
	// Cache is the response cache shared by the routes that enable caching; nil
	// when no route caches. Build it with ErrorHandler set to Server.CacheError, so
	// that its errors become statuses the way the rest of the proxy's do.
	Cache *cache.Cache
	// AccessLog, when set, gets one line per request.
	AccessLog *AccessLog
	// RedirectHTTPS answers plain-HTTP requests with 308 to the same target on
	// https://, on HTTPSPort (443 when 0, and then omitted from the URL).
	RedirectHTTPS bool
	HTTPSPort     int
	// Capture journals the requests of routes whose degraded action is capture;
	// nil = those requests are shed.
	Capture *Capture
}

func (o *Options) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.ReadHeaderTimeout, 10*time.Second)
	def(&o.BodyIdleTimeout, 60*time.Second)
	def(&o.WriteIdleTimeout, 60*time.Second)
	def(&o.IdleTimeout, 60*time.Second)
	if o.MaxRequestBody <= 0 {
		o.MaxRequestBody = 64 << 20
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 16 << 10
	}
	if o.MaxHeaderFields <= 0 {
		o.MaxHeaderFields = 100
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 10000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Server is the public listener. Its routing state is the current *Snapshot, swapped
// atomically by the control plane. Safe for concurrent use.
type Server struct {
	opts  Options
	log   *slog.Logger
	srv   *fasthttp.Server
	clock *clock
	snap  atomic.Pointer[Snapshot]

	lnMu     sync.Mutex
	shutdown bool           // Shutdown was called: Serve refuses new listeners
	lns      []net.Listener // every listener Serve was given, closed by Shutdown

	upMu      sync.Mutex
	upstreams map[string]*upstream      // by backend ID, for reuse across generations
	live      map[*upstream]bool        // every upstream not yet closed
	stats     map[string]*routeCounters // by route and pool, reused across generations
	limiters  map[string]*limiter       // by route name, reused across generations
	policies  map[string]*cache.Policy
	cache     *cache.Cache
	fetches   sync.Pool // *cacheFetch
	unrouted  *RouteStats

	limits   *connLimits
	relays   sync.Pool  // *bodyRelay
	resps    sync.Pool  // *fasthttp.Response for backend answers, see acquireResponse
	holdBufs *sync.Pool // held writes, see hold.go
	copyBufs sync.Pool  // *[]byte, request body copy buffers

	// requestHook, when set (by tests), runs at the start of every request:
	// the containment test makes it panic.
	requestHook func(*fasthttp.RequestCtx)
}

// New returns a Server that answers 503 until the first Swap.
func New(opts Options) *Server {
	opts.setDefaults()
	s := &Server{opts: opts, log: opts.Logger, clock: newClock(), upstreams: make(map[string]*upstream), live: make(map[*upstream]bool),
		stats: make(map[string]*routeCounters), limiters: make(map[string]*limiter), policies: make(map[string]*cache.Policy), cache: opts.Cache, unrouted: &RouteStats{Route: "-", Pool: "-", routeCounters: new(routeCounters)}}
	s.relays.New = func() any { return new(bodyRelay) }
	s.resps.New = func() any { return &fasthttp.Response{KeepBodyBuffer: true} }
	s.copyBufs.New = func() any { b := make([]byte, 32<<10); return &b }
	s.holdBufs = newHolderPool()
	s.limits = &connLimits{max: opts.MaxConns, perIP: opts.MaxConnsPerIP, byIP: make(map[netip.Addr]int)}
	s.fetches.New = func() any { return new(cacheFetch) }
	s.srv = &fasthttp.Server{
		Handler:        s.serve,
		ErrorHandler:   s.parseError,
		HeaderReceived: s.headerReceived,
		ExpectHandler:  s.expect,
		// Header and keep-alive timeouts are enforced by conn (conn.go), more
		// cheaply than fasthttp's two deadlines per request.
		MaxRequestBodySize:           int(min(opts.MaxRequestBody, int64(^uint(0)>>1))),
		ReadBufferSize:               opts.MaxHeaderBytes,
		WriteBufferSize:              32 << 10, // a response up to 32 KB leaves in one write (and can be held, hold.go)
		Concurrency:                  1 << 30,  // the listener enforces MaxConns, with an answer and a count
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		NoDefaultServerHeader:        true,
		NoDefaultDate:                true,
		NoDefaultContentType:         true,
		CloseOnShutdown:              true,
		LazyRequestTime:              true, // a clock read per request that nothing here uses
		SecureErrorLogMessage:        true,
		Logger:                       fasthttpLogger{opts.Logger},
	}
	return s
}

// Swap installs snap as the current generation and returns the previous one (nil at
// first). Requests already running keep the snapshot they loaded.
func (s *Server) Swap(snap *Snapshot) *Snapshot {
	old := s.snap.Swap(snap)
	s.retireUpstreams(snap)
	s.pruneRoutes(snap)
	return old
}

// Current returns the snapshot in service, or nil before the first Swap.
func (s *Server) Current() *Snapshot { return s.snap.Load() }

// Serve accepts connections on ln until Shutdown. It returns nil after a Shutdown,
// also when Shutdown came first.
func (s *Server) Serve(ln net.Listener) error {
	return s.serveOn(ln, s.wrap(ln))
}

// serveOn runs fasthttp on wrapped, a listener built over ln. fasthttp's
// Shutdown closes only the listeners its Serve has registered, so a Shutdown
// that runs before this goroutine gets that far (a signal at start-up, a test
// that stops at once) would leave Serve accepting forever; ln is therefore
// registered here first and closed by Shutdown too.
func (s *Server) serveOn(ln, wrapped net.Listener) error {
	s.lnMu.Lock()
	if s.shutdown {
		s.lnMu.Unlock()
		ln.Close()
		return nil
	}
	s.lns = append(s.lns, ln)
	s.lnMu.Unlock()
	if _, plain := wrapped.(*listener); !plain {
		wrapped = plainHeadListener{wrapped} // TLS: watch request heads in plain text
	}
	err := s.srv.Serve(wrapped)
	s.lnMu.Lock()
	down := s.shutdown
	s.lnMu.Unlock()
	if down {
		return nil
	}
	return err
}

// wrap gives a listener floodgate's connection handling and limits.
func (s *Server) wrap(ln net.Listener) net.Listener {
	return &listener{Listener: ln, clock: s.clock, writeIdle: s.opts.WriteIdleTimeout, bodyIdle: s.opts.BodyIdleTimeout,
		header: s.opts.ReadHeaderTimeout, idle: s.opts.IdleTimeout, holdBufs: s.holdBufs, limits: s.limits}
}

// Shutdown stops accepting, waits for in-flight requests until ctx ends, then closes
// what is left. It returns ctx's error if requests were cut.
func (s *Server) Shutdown(ctx context.Context) error {
	s.lnMu.Lock()
	s.shutdown = true
	lns := s.lns
	s.lnMu.Unlock()
	err := s.srv.ShutdownWithContext(ctx)
	for _, ln := range lns {
		ln.Close() // already closed by fasthttp unless its Serve had not started
	}
	s.clock.Close()
	s.upMu.Lock()
	for u := range s.live {
		u.close()
	}
	s.upMu.Unlock()
	return err
}

// fasthttpLogger sends fasthttp's own messages to slog at debug level: they are
// about single connections (a client that went away), not about the service.
type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	if f.l.Enabled(context.Background(), slog.LevelDebug) {
		f.l.Debug("fasthttp", "msg", format, "args", args)
	}
}

// recoverRequest contains a panic of the request path (fasthttp has no panic
// handler of its own): the panic is counted and logged with its stack, the
// request gets a 500 and its connection is closed, since whatever it was doing
// with the stream was cut short. Resetting the response closes a body stream
// already set, which gives back the backend connection and slot it holds;
// every other request and connection carries on.
func (s *Server) recoverRequest(ctx *fasthttp.RequestCtx) {
	v := recover()
	if v == nil {
		return
	}
	panics.Contain(s.log, "request", v)
	ctx.Response.Reset()
	ctx.SetStatusCode(fasthttp.StatusInternalServerError)
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString("500 Internal Server Error\n")
	ctx.SetConnectionClose()
	s.unrouted.record(fasthttp.StatusInternalServerError, 0)
}

// headerReceived runs when a request head has been read, before fasthttp reads
// any of the body. A declared body over the limit is refused by handle at once;
// fasthttp would first wait for up to 8 KB of it (and for a client waiting on
// 100 Continue, or sending slowly, that is the header timeout). Setting the
// length to 0 makes fasthttp read none: handle sees the declared length in the
// raw header and answers 413 with the connection closed, so the body never
// reaches the next request's parser.
func (s *Server) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if int64(h.ContentLength()) > s.opts.MaxRequestBody {
		h.SetContentLength(0)
	}
	return fasthttp.RequestConfig{}
}

// expect decides the answer to Expect: 100-continue: 100 unless the declared body
// is over the limit (headerReceived), then 413 without a 100, and fasthttp closes
// the connection. Everything else is decided after the 100, as before.
func (s *Server) expect(ctx *fasthttp.RequestCtx) int {
	if n, ok := httpwire.DeclaredLength(ctx.Request.Header.RawHeaders()); ok && n > s.opts.MaxRequestBody {
		ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("413 Request Entity Too Large: request body too large\n")
		s.unrouted.record(fasthttp.StatusRequestEntityTooLarge, 0)
		if s.opts.AccessLog != nil {
			ctx.SetStatusCode(fasthttp.StatusRequestEntityTooLarge)
			var info reqInfo
			s.logAccess(ctx, nil, &info, time.Now(), 0)
		}
		return fasthttp.StatusRequestEntityTooLarge
	}
	return fasthttp.StatusContinue
}

// serve is the request path.
func (s *Server) serve(ctx *fasthttp.RequestCtx) {
	defer s.recoverRequest(ctx)
	if s.requestHook != nil {
		s.requestHook(ctx)
	}
	c := clientConn(ctx)
	if c != nil {
		c.served()
	}
	t0 := time.Since(epoch)
	var info reqInfo
	rt := s.handle(ctx, t0, &info)
	if ctx.Request.Header.ContentLength() == -1 {
		// A chunked request is the last on its connection: fasthttp ends a
		// trailer section at a bare-LF blank line, and the trailer bytes are in
		// its buffer where no check of ours sees them, so a front proxy that
		// reads only CRLF could pass a second request behind it.
		ctx.SetConnectionClose()
	}
	if c != nil && !ctx.Response.ConnectionClose() {
		// The next bytes start a request head if this request had no body or
		// its body was read to the end (headwatch.go).
		if cl := ctx.Request.Header.ContentLength(); cl == 0 || cl == -2 || info.bodyRead {
			c.head.arm()
		}
	}
	st := s.unrouted
	if rt != nil {
		st = rt.stats
	}
	d := time.Since(epoch) - t0
	st.record(ctx.Response.StatusCode(), d)
	if info.forwarded && rt != nil {
		rt.pool.rec.Observe(d, info.failed)
	}
	if s.opts.AccessLog != nil {
		// The wall clock only for the log line, where it is printed.
		s.logAccess(ctx, rt, &info, time.Now().Add(-d), d)
	}
}

// epoch anchors the request path's timing: time.Since(epoch) reads only the
// monotonic clock, one vDSO call, where time.Now reads the wall clock too.
var epoch = time.Now()

// handle answers one request and returns its route, or nil when none matched.
// t0 is the request's arrival, as time.Since(epoch).
func (s *Server) handle(ctx *fasthttp.RequestCtx, t0 time.Duration, info *reqInfo) *route {
	snap := s.snap.Load()
	req := &ctx.Request
	h := &req.Header
	target := h.RequestURI()
	if err := httpwire.ValidateRequestLine(h.Method(), target, h.Protocol()); err != nil {
		badRequest(ctx)
		return nil
	}
	head, err := httpwire.ValidateHeaders(h.RawHeaders(), h.IsHTTP11())
	if err != nil {
		badRequest(ctx)
		return nil
	}
	fr := framing{RequestHead: head}
	if fr.Fields > s.opts.MaxHeaderFields {
		refuseHead(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge)
		return nil
	}
	if fr.ContentLength && fr.Length > s.opts.MaxRequestBody {
		// Refused before any of the body is read (the server's HeaderReceived
		// hook kept fasthttp from waiting for it, and no 100 Continue went
		// out): the body may be on its way, so the connection is closed.
		ctx.SetConnectionClose()
		writeError(ctx, "", ErrBodyTooLarge)
		return nil
	}
	if target[0] != '/' && target[0] != '*' {
		// Absolute-form (RFC 9112 §3.2.2): the authority replaces Host, for
		// routing, the guards, the cache and the backend, which gets the
		// origin-form. When the client's Host line says something else, the
		// request is written from the parsed header, with the new Host.
		authority, rest, _ := httpwire.SplitAbsolute(target)
		if !bytes.Equal(h.Host(), authority) {
			if fr.Upgrade {
				badRequest(ctx) // the tunnel writes the client's lines as sent
				return nil
			}
			h.SetHostBytes(authority)
			fr.rehost = true
		}
		h.SetRequestURIBytes(rest) // copies within the same buffer: memmove
		target = h.RequestURI()
	}
	path := httpwire.PathOf(target)
	if target[0] == '*' {
		path = target[:0] // OPTIONS *: the server as a whole, the "/" routes
	}
	mayDiffer, err := httpwire.CheckPath(path)
	if err != nil {
		badRequest(ctx)
		return nil
	}
	if s.opts.RedirectHTTPS && !ctx.IsTLS() {
		redirectHTTPS(ctx, s.opts.HTTPSPort)
		return nil
	}
	if snap == nil {
		writeError(ctx, "", balancer.ErrNoHealthyBackend)
		return nil
	}
	// Routing matches the path exactly as it is forwarded. Where a backend may
	// read it otherwise (decoding, case, path parameters, merged slashes), the
	// route that reading picks must be the same one, or the request could
	// reach a backend as another route's path, past that route's guards.
	//
	// The host is matched in the cache key's canonical form (case, trailing
	// dots, IPv6 spelling): a spelling the cache stores as another host's
	// ("A.example..") must reach that host's route, or one route's answers
	// would be served on another's, past its guards.
	var hostBuf [256]byte
	host := httpwire.AppendHostName(hostBuf[:0], httpwire.HostOnly(h.Host()))
	if len(path) == 0 {
		path = strSlash
	}
	rt := snap.match(host, path, false)
	if mayDiffer {
		var buf [httpwire.CanonicalPathMax]byte
		if rc := snap.match(host, httpwire.CanonicalPath(buf[:0], path), true); !sameRoute(rc, rt) {
			badRequest(ctx)
			return nil
		}
	}
	if rt == nil {
		writeError(ctx, "", ErrNoRoute)
		return nil
	}
	if !rt.allows(h.Method()) {
		writeError(ctx, rt.name, ErrMethodNotAllowed)
		return rt
	}
	if rt.acl != nil || rt.limit != nil {
		if !s.guard(ctx, rt, epoch.Add(t0), info) {
			return rt
		}
	}
	if g := rt.pool.gate; g != nil {
		if lvl := g.Level(); lvl != degrade.LevelNormal && s.degraded(ctx, rt, lvl, info) {
			return rt
		}
	}
	if rt.action == degrade.ActionCapture && s.opts.Capture != nil && rt.captured(h.Method()) && s.opts.Capture.known(ctx, rt) {
		info.degraded = "capture"
		return rt
	}
	if fr.Upgrade {
		s.tunnel(ctx, rt, info)
		return rt
	}
	s.forward(ctx, rt, fr, info)
	return rt
}

var strSlash = []byte("/")
