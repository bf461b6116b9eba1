package cache

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// The harness runs the whole path over real sockets:
//
//	fasthttp client ──► front server (handler: Cache.Serve) ──► Fetcher (HostClient) ──► origin server
//
// The origin answers with whatever each test step scripts, headers written
// byte for byte; the cache's clock is a fake the steps advance, so
// freshness is tested without sleeping.

// fakeClock is a settable clock. Safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

func newClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// httpDate formats the clock's time plus off seconds as an IMF-fixdate.
func (c *fakeClock) httpDate(off int64) string {
	return c.Now().Add(time.Duration(off) * time.Second).UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT")
}

// originResp is a scripted origin answer. Header values starting with "@"
// are replaced by an HTTP-date that many seconds from the fake clock's now
// ("@0", "@-86400", "@+3600").
type originResp struct {
	status  int
	reason  string
	headers []string // "Name: value", sent in order, duplicates allowed
	body    string
	// hold, if set, makes the origin wait for it to be closed before
	// answering.
	hold chan struct{}
}

// seenReq is what the origin received.
type seenReq struct {
	method  string
	uri     string
	headers map[string][]string // lower-case names
}

func (r seenReq) get(name string) string {
	v := r.headers[strings.ToLower(name)]
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

type harness struct {
	t      testing.TB
	clock  *fakeClock
	cache  *Cache
	policy *Policy
	reg    *prometheus.Registry

	mu     sync.Mutex
	script func(n int, req seenReq) originResp // n counts origin requests from 1
	seen   []seenReq
	hits   atomic.Int64
	failN  atomic.Int64 // fetches that fail with errFetch before reaching the origin

	origin, front *fasthttp.Server
	originAddr    string
	frontAddr     string
	client        *fasthttp.HostClient
	backend       *fasthttp.HostClient
	lns           []net.Listener
}

var errFetch = errors.New("test: backend unreachable")

type harnessOpts struct {
	policy   PolicyOptions
	maxBytes int64
	coalesce time.Duration
}

func newHarness(t testing.TB, o harnessOpts) *harness {
	t.Helper()
	h := &harness{t: t, clock: newClock(), reg: prometheus.NewRegistry()}
	if o.maxBytes == 0 {
		o.maxBytes = 64 << 20
	}
	c, err := New(Options{MaxBytes: o.maxBytes, Now: h.clock.Now, CoalesceWait: o.coalesce})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.reg.Register(c.Collector()); err != nil {
		t.Fatal(err)
	}
	h.cache = c
	if o.policy.Route == "" {
		o.policy.Route = "test"
	}
	h.policy = c.NewPolicy(o.policy)
	h.script = func(n int, _ seenReq) originResp { return originResp{body: "body-" + strconv.Itoa(n)} }

	h.origin = &fasthttp.Server{
		Handler:               h.serveOrigin,
		NoDefaultDate:         true,
		NoDefaultContentType:  true,
		NoDefaultServerHeader: true,
		ReadTimeout:           10 * time.Second,
		IdleTimeout:           10 * time.Second,
	}
	h.originAddr = h.listen(h.origin)
	h.backend = &fasthttp.HostClient{Addr: h.originAddr, MaxConns: 2000, ReadTimeout: 10 * time.Second}

	h.front = &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			res := h.cache.Serve(ctx, h.policy, h.fetch)
			ctx.Response.Header.Set("X-Result", res.String())
		},
		NoDefaultDate:         true,
		NoDefaultContentType:  true,
		NoDefaultServerHeader: true,
		ReadTimeout:           10 * time.Second,
		IdleTimeout:           10 * time.Second,
	}
	h.frontAddr = h.listen(h.front)
	h.client = &fasthttp.HostClient{Addr: h.frontAddr, MaxConns: 2000, ReadTimeout: 10 * time.Second}
	t.Cleanup(func() {
		// Closing the listeners and the clients' idle connections ends
		// the servers without Shutdown's 100ms polling.
		for _, ln := range h.lns {
			_ = ln.Close()
		}
		h.client.CloseIdleConnections()
		h.backend.CloseIdleConnections()
		h.cache.Close()
	})
	return h
}

func (h *harness) listen(s *fasthttp.Server) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	h.lns = append(h.lns, ln)
	go func() { _ = s.Serve(ln) }()
	return ln.Addr().String()
}

func (h *harness) fetch(req *fasthttp.Request, resp *fasthttp.Response) error {
	if h.failN.Load() > 0 && h.failN.Add(-1) >= 0 {
		return errFetch
	}
	return h.backend.Do(req, resp)
}

func (h *harness) serveOrigin(ctx *fasthttp.RequestCtx) {
	n := int(h.hits.Add(1))
	sr := seenReq{method: string(ctx.Method()), uri: string(ctx.RequestURI()), headers: map[string][]string{}}
	for k, v := range ctx.Request.Header.All() {
		lk := strings.ToLower(string(k))
		sr.headers[lk] = append(sr.headers[lk], string(v))
	}
	h.mu.Lock()
	h.seen = append(h.seen, sr)
	script := h.script
	h.mu.Unlock()
	r := script(n, sr)
	if r.hold != nil {
		<-r.hold
	}
	if r.status == 0 {
		r.status = 200
	}
	if r.reason == "" {
		r.reason = fasthttp.StatusMessage(r.status)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", r.status, r.reason)
	for _, hv := range r.headers {
		name, value, _ := strings.Cut(hv, ":")
		value = strings.TrimSpace(value)
		if strings.HasPrefix(value, "@") {
			off, err := strconv.ParseInt(strings.TrimPrefix(value[1:], "+"), 10, 64)
			if err != nil {
				panic(err)
			}
			value = h.clock.httpDate(off)
		}
		fmt.Fprintf(&b, "%s: %s\r\n", name, value)
	}
	bodyOK := r.status != 204 && r.status != 304
	if bodyOK {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(r.body))
	}
	b.WriteString("\r\n")
	if err := ctx.Response.Header.Read(bufio.NewReader(&b)); err != nil {
		panic(err)
	}
	if bodyOK {
		ctx.Response.SetBodyString(r.body)
	}
}

// setScript replaces the origin's behaviour.
func (h *harness) setScript(f func(n int, req seenReq) originResp) {
	h.mu.Lock()
	h.script = f
	h.mu.Unlock()
}

func (h *harness) lastSeen() seenReq {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.seen) == 0 {
		return seenReq{}
	}
	return h.seen[len(h.seen)-1]
}

// answer is what the client received.
type answer struct {
	status  int
	headers map[string][]string // lower-case names
	body    string
	result  string
	origin  int64 // origin requests caused by this request
}

func (a answer) get(name string) string {
	v := a.headers[strings.ToLower(name)]
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// do sends one request through the front server. hdrs are "Name: value".
func (h *harness) do(method, uri string, hdrs ...string) answer {
	h.t.Helper()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI("http://example.test" + uri)
	for _, hv := range hdrs {
		name, value, _ := strings.Cut(hv, ":")
		value = strings.TrimSpace(value)
		if strings.HasPrefix(value, "@") {
			off, _ := strconv.ParseInt(strings.TrimPrefix(value[1:], "+"), 10, 64)
			value = h.clock.httpDate(off)
		}
		req.Header.Add(name, value)
	}
	before := h.hits.Load()
	if err := h.client.Do(req, resp); err != nil {
		h.t.Fatalf("%s %s: %v", method, uri, err)
	}
	a := answer{status: resp.StatusCode(), headers: map[string][]string{}, body: string(resp.Body())}
	for k, v := range resp.Header.All() {
		lk := strings.ToLower(string(k))
		a.headers[lk] = append(a.headers[lk], string(v))
	}
	a.result = a.get("X-Result")
	a.origin = h.hits.Load() - before
	return a
}

func (h *harness) get(uri string, hdrs ...string) answer { return h.do("GET", uri, hdrs...) }
