package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/balancer"
	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/internal/httpwire"
	"github.com/floodgate/floodgate/internal/panics"
	"github.com/floodgate/floodgate/proxy/cache"
)

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

// parseError answers requests that fasthttp itself could not parse: 400 (or 413 for
// an oversized body, 414 for an overlong request line, 431 for oversized headers)
// and the connection is closed, since the stream can no longer be trusted. A head
// with bare LF line endings fails its read (errBareLF) and gets its 400 here.
func (s *Server) parseError(ctx *fasthttp.RequestCtx, err error) {
	defer s.recoverRequest(ctx)
	status := fasthttp.StatusBadRequest
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status = fasthttp.StatusRequestEntityTooLarge
	case errors.As(err, &small):
		status = fasthttp.StatusRequestHeaderFieldsTooLarge
		if c := clientConn(ctx); c != nil && c.head.lineOpen() {
			status = fasthttp.StatusRequestURITooLong // the request line alone is over the limit
		}
	case isTimeout(err):
		status = fasthttp.StatusRequestTimeout
	}
	ctx.Response.Reset()
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(fasthttp.StatusMessage(status) + "\n")
	ctx.SetConnectionClose()
	// Counted and logged like any refused request.
	s.unrouted.record(status, 0)
	if s.opts.AccessLog != nil {
		var info reqInfo
		s.logAccess(ctx, nil, &info, time.Now(), 0)
	}
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

// badRequest answers a request that failed validation and closes the connection.
func badRequest(ctx *fasthttp.RequestCtx) {
	ctx.Response.Reset()
	ctx.SetStatusCode(fasthttp.StatusBadRequest)
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.Response.SetBodyString("400 Bad Request\n")
	ctx.SetConnectionClose()
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

// reqInfo collects, on the caller's stack, what the access log says beyond the
// request and response themselves.
type reqInfo struct {
	backend     string
	cache       string
	degraded    string
	client      netip.Addr // the client after trusted_proxies, when clientKnown
	clientKnown bool
	forwarded   bool // a backend was tried: the degraded-mode recorder counts it
	bodyRead    bool // the request body was read to its end
	failed      bool // ... and failed (error or 5xx)
}

// logAccess writes the request's access log line.
func (s *Server) logAccess(ctx *fasthttp.RequestCtx, rt *route, info *reqInfo, start time.Time, d time.Duration) {
	var ipBuf, clientBuf [64]byte
	var peer []byte
	if c := clientConn(ctx); c != nil {
		peer = c.peerIPText()
	} else {
		peer = appendAddr(ipBuf[:0], ctx.RemoteAddr())
	}
	client := peer
	if len(s.opts.TrustedProxies) > 0 {
		// The client as the guards see it: after the trusted proxies.
		ip := info.client
		if !info.clientKnown {
			ip = clientIP(ctx.RemoteAddr(), ctx.Request.Header.RawHeaders(), s.opts.TrustedProxies)
		}
		if ip.IsValid() {
			client = ip.AppendTo(clientBuf[:0])
		} else {
			client = append(clientBuf[:0], "unknown"...)
		}
	}
	e := entry{
		start: start, dur: d,
		client:   client,
		peer:     peer,
		method:   ctx.Request.Header.Method(),
		target:   ctx.Request.Header.RequestURI(),
		route:    "-",
		pool:     "-",
		backend:  info.backend,
		status:   ctx.Response.StatusCode(),
		bytesIn:  max(ctx.Request.Header.ContentLength(), -1),
		cache:    info.cache,
		degraded: info.degraded,
	}
	if rt != nil {
		e.route, e.pool = rt.name, rt.pool.name
	}
	if ctx.Response.IsBodyStream() {
		e.bytesOut = max(ctx.Response.Header.ContentLength(), -1)
	} else {
		e.bytesOut = len(ctx.Response.Body())
	}
	s.opts.AccessLog.log(&e)
}

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
		s.tunnel(ctx, rt)
		return rt
	}
	s.forward(ctx, rt, fr, info)
	return rt
}

var strSlash = []byte("/")

// refuseHead answers a request head that is over a limit (414, 431) and closes
// the connection.
func refuseHead(ctx *fasthttp.RequestCtx, status int) {
	ctx.Response.Reset()
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.Response.SetBodyString(strconv.Itoa(status) + " " + fasthttp.StatusMessage(status) + "\n")
	ctx.SetConnectionClose()
}

// redirectHTTPS answers 308 Permanent Redirect (method and body kept, unlike 301)
// to the https:// form of the request.
func redirectHTTPS(ctx *fasthttp.RequestCtx, port int) {
	h := &ctx.Request.Header
	b := append(make([]byte, 0, 128), "https://"...)
	b = append(b, httpwire.HostOnly(h.Host())...)
	if port != 0 && port != 443 {
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(port), 10)
	}
	b = append(b, h.RequestURI()...)
	ctx.Response.Reset()
	ctx.SetStatusCode(fasthttp.StatusPermanentRedirect)
	ctx.Response.Header.SetBytesV("Location", b)
}

// guard applies a route's access list and rate limit; it answers and returns false
// when the request may not go on.
func (s *Server) guard(ctx *fasthttp.RequestCtx, rt *route, now time.Time, info *reqInfo) bool {
	ip := clientIP(ctx.RemoteAddr(), ctx.Request.Header.RawHeaders(), s.opts.TrustedProxies)
	info.client, info.clientKnown = ip, true
	if rt.acl != nil && !rt.acl.admits(ip) {
		rt.stats.denied.Add(1)
		writeError(ctx, rt.name, ErrForbidden)
		return false
	}
	if l := rt.limit; l != nil {
		var ok bool
		if l.spec.Header == "" {
			ok = l.allowIP(limitIP(ip), now)
		} else {
			key, single := limitKey(ctx.Request.Header.RawHeaders(), l.spec.Header)
			if !single {
				badRequest(ctx)
				return false
			}
			ok = l.allowKey(key, now)
		}
		if !ok {
			rt.stats.rateLimited.Add(1)
			writeError(ctx, rt.name, ErrRateLimited)
			ctx.Response.Header.Set("Retry-After", strconv.Itoa(l.retryAfter()))
			return false
		}
	}
	return true
}

// limitIP is the rate-limit key of a client address: an IPv4 address, or the /64
// of an IPv6 one. Any IPv6 client can use every address of its /64 (the smallest
// prefix delegated to a network), so counting per address would give it 2^64
// buckets.
func limitIP(ip netip.Addr) netip.Addr {
	if ip.Is6() {
		b := ip.As16()
		clear(b[8:])
		return netip.AddrFrom16(b)
	}
	return ip
}

// isIdempotent reports whether a request with this method may be sent twice
// (RFC 9110 §9.2.2). POST and PATCH never are.
func isIdempotent(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE":
		return true
	}
	return false
}

// forward sends the request to a backend of the route's pool and relays the answer,
// through the route's cache when it has one.
func (s *Server) forward(ctx *fasthttp.RequestCtx, rt *route, fr framing, info *reqInfo) {
	req := &ctx.Request
	c := clientConn(ctx)
	o := outbound{fr: fr, peer: ctx.RemoteAddr(), tls: ctx.IsTLS(), parsed: fr.rehost}
	if c != nil {
		o.peerIP = c.peerIPText()
	}
	if len(req.Header.Host()) == 0 && len(rt.pool.upstreams) > 0 { // an empty pool answers 503 below
		o.host = []byte(rt.pool.upstreams[0].addr)
	}
	if fr.Chunked || fr.ContentLength {
		bp := s.copyBufs.Get().(*[]byte)
		defer s.copyBufs.Put(bp)
		o.copyBuf = *bp
		if c != nil {
			c.startBody(s.opts.MaxRequestBody)
			defer c.endBody()
		}
	}
	if !req.Header.IsHTTP11() {
		defer closeDelimited(ctx)
	}
	if rt.cache != nil {
		s.serveCached(ctx, rt, &o, info)
		return
	}
	if c != nil && c.quiet && req.Header.IsHTTP11() {
		// Interim answers straight to the client connection; not on cached
		// routes, whose fetches may outlive the request (background refresh).
		o.interim = ctx.Conn()
	}
	err := s.exchange(o.peer, rt, req, &o, &ctx.Response, bufferedBodyMax, info)
	info.bodyRead = err == nil
	if err != nil {
		none := noBackend(err)
		if none && rt.pool.gate.Degraded() {
			// Every slot is taken while the pool is degraded: the route's
			// degraded answer, not a bare 503.
			s.refuse(ctx, rt, info)
			return
		}
		if none && rt.action == degrade.ActionCapture && rt.captured(req.Header.Method()) && s.capture(ctx, rt, info) {
			// No backend can take an order: journal it rather than lose it,
			// degraded mode or not.
			s.divert(rt, degrade.OutcomeCapture, info)
			return
		}
		if cerr := clientError(err, o.peer, fr.Chunked); cerr != nil {
			// The client, not the backend, failed: a broken chunk, a body over
			// the limit, a stalled upload. The stream cannot be trusted further.
			ctx.SetConnectionClose()
			err = cerr
		}
		writeError(ctx, rt.name, err)
		return
	}
	if !ctx.Response.IsBodyStream() {
		// The whole response is in hand, so fasthttp will write it in one go and
		// then read the next request: that write may be held (hold.go).
		if c != nil {
			c.holdNext = true
		}
	}
}

// noBackend reports whether err means that no backend could take the request:
// every slot busy until the queue gave up, or none up. Nothing was sent.
func noBackend(err error) bool {
	return errors.Is(err, balancer.ErrSaturated) || errors.Is(err, balancer.ErrNoHealthyBackend)
}

// exchange sends req to a backend of the route's pool, retrying where that is
// safe, and fills out with the answer: whole when its body is at most bufferMax
// bytes of known length, else with a body stream that releases the backend when
// closed. It returns the last error when no backend answered.
func (s *Server) exchange(peer net.Addr, rt *route, req *fasthttp.Request, o *outbound, out *fasthttp.Response, bufferMax int, info *reqInfo) error {
	head := req.Header.IsHead()
	p := rt.pool
	retryable := isIdempotent(req.Header.Method())
	var skip *balancer.Backend
	critical := rt.prio == degrade.PriorityCritical
	for attempt := 0; ; attempt++ {
		var b *balancer.Backend
		var err error
		if critical {
			b, err = p.bal.AcquireCritical(skip) // may use the slots reserved for critical routes
		} else {
			b, err = p.bal.Acquire(skip)
		}
		if err != nil {
			return err
		}
		resp := s.acquireResponse()
		info.backend, info.forwarded = b.Address, true
		bc, err := p.upstreams[b.Index].roundTrip(req, resp, head, o, bufferMax)
		info.failed = err != nil || resp.StatusCode() >= 500
		if err == nil {
			b.State.Report(resp.StatusCode() < 500)
			s.relay(out, resp, b, bc, rt.stats)
			return nil
		}
		s.releaseResponse(resp)
		b.Release()
		if clientError(err, peer, o.fr.Chunked) != nil {
			// Not the backend's failure: neither its health nor the pool's
			// degraded-mode recorder hears of it.
			info.failed, info.forwarded = false, false
			return err
		}
		b.State.Report(false)
		// Retry only what cannot have reached the backend's application twice:
		// idempotent methods whose body, if any, was not consumed, or anything
		// that never got a connection. Never POST (RFC 9110 §9.2.2).
		canRetry := retryable && attempt < p.retries &&
			(isDialError(err) || (!req.IsBodyStream() && isClosedBeforeResponse(err)))
		if !canRetry {
			s.log.Debug("forward failed", "route", rt.name, "backend", b.Address, "err", err)
			return err
		}
		if len(p.upstreams) > 1 {
			skip = b
		}
	}
}

// clientConn returns floodgate's wrapper of the client connection, under TLS too.
func clientConn(ctx *fasthttp.RequestCtx) *conn {
	switch c := ctx.Conn().(type) {
	case *conn:
		return c
	case interface{ NetConn() net.Conn }:
		pc, _ := c.NetConn().(*conn)
		return pc
	}
	return nil
}

// isClosedBeforeResponse reports whether the backend closed the connection before
// sending any byte of a response.
func isClosedBeforeResponse(err error) bool {
	return errors.Is(err, errClosedBeforeResponse)
}

// clientError returns the client-side error that err stands for, or nil when the
// failure was the backend's. Reads from the client's connection fail with a
// *net.OpError that carries the client's address: the same net.Addr value that the
// connection reports, so the comparison costs nothing.
func clientError(err error, client net.Addr, chunked bool) error {
	var bc fasthttp.ErrBrokenChunk
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge), errors.Is(err, errBodyLimit):
		return ErrBodyTooLarge
	case errors.As(err, &bc):
		return ErrClientBody
	}
	var cb *clientBodyError
	if errors.As(err, &cb) {
		switch {
		case errors.Is(cb.err, fasthttp.ErrBodyTooLarge), errors.Is(cb.err, errBodyLimit):
			return ErrBodyTooLarge
		case isTimeout(cb.err):
			return ErrClientTimeout
		}
		return ErrClientBody
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		if oe.Op == "read" && oe.Addr != nil && client != nil &&
			(oe.Addr == client || oe.Addr.String() == client.String()) {
			if oe.Timeout() {
				return ErrClientTimeout
			}
			return ErrClientBody
		}
		return nil
	}
	// fasthttp reports a malformed chunk size or chunk terminator in the client's
	// body with plain errors; anything else that is not about the backend's
	// connection or response, while a chunked body was being relayed, is one.
	if chunked && !isDialError(err) && !isTimeout(err) && !isClosedBeforeResponse(err) &&
		!strings.Contains(err.Error(), "response") {
		return ErrClientBody
	}
	return nil
}

// isReset reports a connection reset or broken pipe.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// acquireResponse returns a Response for a backend's answer. These Responses keep
// their body buffer across uses (KeepBodyBuffer), where fasthttp's own pool hands
// it back to its byte buffer pool on every release, which costs as much as the
// rest of the release.
func (s *Server) acquireResponse() *fasthttp.Response {
	resp := s.resps.Get().(*fasthttp.Response)
	resp.Header.SetNoDefaultContentType(true)
	resp.Header.DisableNormalizing()
	return resp
}

// releaseResponse resets resp for the next acquireResponse. A body buffer grown
// well beyond what a buffered answer takes (capture's replay buffers up to 1 MiB)
// is dropped, so the pool keeps at most 2*bufferedBodyMax per idle Response.
func (s *Server) releaseResponse(resp *fasthttp.Response) {
	resp.ReleaseBody(2 * bufferedBodyMax)
	resp.Reset()
	s.resps.Put(resp)
}

// relay hands the backend's response to the client. A streamed body keeps the
// backend connection and the in-flight slot until fasthttp has written the last
// byte, or failed to; a small body was read whole and both are released now.
func (s *Server) relay(out *fasthttp.Response, resp *fasthttp.Response, b *balancer.Backend, bc *bconn, st *RouteStats) {
	copyResponseHeader(&out.Header, &resp.Header)
	if bc == nil {
		out.SetBody(resp.Body())
		s.releaseResponse(resp)
		b.Release()
		return
	}
	r := s.relays.Get().(*bodyRelay)
	r.s, r.resp, r.b, r.bc, r.st = s, resp, b, bc, st
	cl := -1 // chunked or read-to-close from the backend: chunked to the client
	if bc.body.Mode() == httpwire.BodyFixed {
		cl = int(bc.body.Remaining())
	}
	out.SetBodyStream(r, cl)
}

// bodyRelay is the response body stream handed to fasthttp. Close returns the
// backend connection, the in-flight slot and the relay itself to their pools.
//
// A body that fails midway (the backend closed or reset in the middle, or broke
// the chunked framing) fails the Read: fasthttp then stops writing, sends no last
// chunk and closes the client connection, and the cache does not store it. The
// route counts it (Truncated).
type bodyRelay struct {
	s      *Server
	resp   *fasthttp.Response
	b      *balancer.Backend
	bc     *bconn
	st     *RouteStats
	failed bool
}

func (r *bodyRelay) Read(p []byte) (int, error) {
	n, err := r.bc.body.Read(p)
	if err != nil && err != io.EOF && !r.failed {
		r.failed = true
		r.st.truncated.Add(1)
	}
	return n, err
}

func (r *bodyRelay) Close() error {
	if r.failed {
		r.b.State.Report(false)
	}
	// The connection is reusable only if the body was read to its exact end and
	// the backend did not ask to close; a body ended by the backend closing the
	// connection (no length, no chunking) never is.
	r.bc.done(r.bc.body.Complete() && !r.failed && !r.resp.Header.ConnectionClose() && r.bc.body.Mode() != httpwire.BodyToClose)
	r.bc.body = httpwire.BodyReader{}
	s := r.s
	s.releaseResponse(r.resp)
	r.b.Release()
	*r = bodyRelay{}
	s.relays.Put(r)
	return nil
}
