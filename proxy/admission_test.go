package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/balancer"
	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/degrade/capture"
	"github.com/floodgate/floodgate/proxy/cache"
)

// The tests below run the work-conserving admission of issue 15 through a real
// proxy in front of a backend that holds every request until the test lets it
// go, so that which request reaches the backend next, and when, is decided by
// the proxy alone.

// heldRequest is one request at a heldBackend, waiting for release.
type heldRequest struct {
	method, path, captureID string
	release                 chan struct{}
}

// heldBackend announces each request on arrivals and answers it (200, its
// path as the body) only once the test closes its release channel.
type heldBackend struct {
	addr     string
	arrivals chan heldRequest
	quit     chan struct{}
}

func newHeldBackend(t *testing.T) *heldBackend {
	t.Helper()
	b := &heldBackend{arrivals: make(chan heldRequest, 64), quit: make(chan struct{})}
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		r := heldRequest{method: string(ctx.Method()), path: string(ctx.Path()),
			captureID: string(ctx.Request.Header.Peek("Floodgate-Capture-Id")), release: make(chan struct{})}
		select {
		case b.arrivals <- r:
		case <-b.quit:
			return
		}
		select {
		case <-r.release:
		case <-b.quit:
		}
		ctx.SetBodyString(r.path)
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	go srv.Serve(ln) //nolint:errcheck
	t.Cleanup(func() { close(b.quit); _ = srv.Shutdown() })
	return b
}

// next returns the next request to reach the backend.
func (b *heldBackend) next(t *testing.T) heldRequest {
	t.Helper()
	select {
	case r := <-b.arrivals:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no request reached the backend in 10s")
		return heldRequest{}
	}
}

type reply struct {
	status           int
	body, retryAfter string
	captureID        string
	err              error
}

// send makes one request through the proxy in a goroutine.
func send(px *testProxy, method, path string) <-chan reply {
	out := make(chan reply, 1)
	go func() {
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader(`{"items":[1]}`)
		}
		req, _ := http.NewRequest(method, "http://"+px.addr+path, body)
		c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Do(req)
		if err != nil {
			out <- reply{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		out <- reply{status: resp.StatusCode, body: string(b), retryAfter: resp.Header.Get("Retry-After"), captureID: resp.Header.Get("Floodgate-Capture-Id")}
	}()
	return out
}

func await(t *testing.T, ch <-chan reply) reply {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("no answer in 20s")
		return reply{}
	}
}

// admissionProxy is a proxy with one pool "p" of one heldBackend, a degrade
// gate (forced to degraded when degraded is set) and the given routes.
func admissionProxy(t *testing.T, opts Options, po balancer.PoolOptions, degraded bool, routes ...RouteSpec) (*testProxy, *balancer.Pool, *degrade.Monitor, *heldBackend) {
	t.Helper()
	be := newHeldBackend(t)
	mon := degrade.NewMonitor(degrade.MonitorOptions{})
	t.Cleanup(mon.Close)
	if err := mon.Configure([]degrade.PoolConfig{{Name: "p"}}); err != nil {
		t.Fatal(err)
	}
	ps := PoolSpec{MaxConnsPerBackend: int(po.MaxConnsPerBackend)}
	px, pool := weightedProxyOpts(t, opts, ps, po, []string{be.addr}, []int{1})
	ps.Pool, ps.Gate, ps.Recorder = pool, mon.Gate("p"), mon.Recorder("p")
	snap, err := px.s.Build(Spec{Gen: 2, Pools: []PoolSpec{ps}, Routes: routes})
	if err != nil {
		t.Fatal(err)
	}
	px.s.Swap(snap)
	if degraded {
		mon.SetOverride("p", degrade.OverrideDegraded)
	}
	return px, pool, mon, be
}

// train teaches the proxy a route's service time: one request that the
// backend takes hold to answer (the backend's own time, not a wait for
// anything), which sets the route's average.
func train(t *testing.T, px *testProxy, be *heldBackend, method, path string, hold time.Duration) {
	t.Helper()
	r := send(px, method, path)
	h := be.next(t)
	time.Sleep(hold) // the backend's service time
	close(h.release)
	if got := await(t, r); got.status != 200 {
		t.Fatalf("training %s %s: %d", method, path, got.status)
	}
}

// queueDepth waits until n requests wait in the pool's queue.
func queueDepth(t *testing.T, pool *balancer.Pool, n int) {
	t.Helper()
	waitUntil(t, "the queue to hold the requests", func() bool { return pool.State().QueueDepth() == n })
}

// TestDegradedLowServedWithFreeSlot: while the pool is degraded, a low
// request on a shed route is served when a slot is free (before issue 15 the
// admission level shed it, and the slots idled); once no slot is free it is
// shed at once, without queueing.
func TestDegradedLowServedWithFreeSlot(t *testing.T) {
	shed, _ := degrade.NewShed(503, 7*time.Second)
	px, pool, _, be := admissionProxy(t, Options{}, balancer.PoolOptions{MaxConnsPerBackend: 2, QueueMax: 10, QueueTimeout: 10 * time.Second}, true,
		RouteSpec{Name: "search", PathPrefix: "/search", Pool: "p", Priority: degrade.PriorityLow, Action: degrade.ActionShed, Shed: shed},
		RouteSpec{Name: "site", PathPrefix: "/", Pool: "p"})
	var held []heldRequest
	for range 2 {
		r := send(px, "GET", "/search?q=lamp")
		select {
		case h := <-be.arrivals:
			held = append(held, h)
		case got := <-r:
			t.Fatalf("low request with a free slot while degraded: %d %q, want it served", got.status, got.body)
		}
		defer func(r <-chan reply) {
			if got := await(t, r); got.status != 200 {
				t.Errorf("served low request: %d", got.status)
			}
		}(r)
	}
	// Both slots busy: shed at once, never queued.
	if got := await(t, send(px, "GET", "/search?q=chair")); got.status != 503 || got.retryAfter != "7" {
		t.Fatalf("low request with no free slot: %d Retry-After %q, want the shed answer", got.status, got.retryAfter)
	}
	if st := pool.State().QueueStats(); st.Enqueued != 0 {
		t.Fatalf("queue stats %+v: a refused request must not queue", st)
	}
	for _, h := range held {
		close(h.release)
	}
	for _, st := range px.s.RouteStats() {
		if st.Route == "search" && st.Shed() != 1 {
			t.Errorf("search shed %d, want 1", st.Shed())
		}
	}
}

// TestCheapOvertakesDearInClass: within a priority, the queue serves the
// request whose route has the shortest expected service first: a page miss
// arriving behind queued dear requests of the same priority gets the next
// slot (before issue 15 it waited behind them, first in, first out).
func TestCheapOvertakesDearInClass(t *testing.T) {
	px, pool, _, be := admissionProxy(t, Options{}, balancer.PoolOptions{MaxConnsPerBackend: 1, QueueMax: 10, QueueTimeout: 20 * time.Second}, false,
		RouteSpec{Name: "orders", PathPrefix: "/orders", Pool: "p"},
		RouteSpec{Name: "pages", PathPrefix: "/", Pool: "p"})
	train(t, px, be, "GET", "/orders/1", 60*time.Millisecond)
	train(t, px, be, "GET", "/page/1", 0)

	first := send(px, "GET", "/orders/2")
	a := be.next(t)
	dear := []<-chan reply{send(px, "GET", "/orders/3")}
	queueDepth(t, pool, 1)
	dear = append(dear, send(px, "GET", "/orders/4"))
	queueDepth(t, pool, 2)
	cheap := send(px, "GET", "/page/2")
	queueDepth(t, pool, 3)

	close(a.release)
	var order []string
	for range 3 {
		h := be.next(t)
		order = append(order, h.path)
		close(h.release)
	}
	if strings.Join(order, " ") != "/page/2 /orders/3 /orders/4" {
		t.Fatalf("backend served %v after the slot freed, want the page first, then the orders in arrival order", order)
	}
	for _, r := range append(dear, first, cheap) {
		if got := await(t, r); got.status != 200 {
			t.Errorf("status %d", got.status)
		}
	}
}

// TestHighOvertakesQueuedLow: a high-priority request arriving behind queued
// low ones gets the next slot.
func TestHighOvertakesQueuedLow(t *testing.T) {
	px, pool, _, be := admissionProxy(t, Options{}, balancer.PoolOptions{MaxConnsPerBackend: 1, QueueMax: 10, QueueTimeout: 20 * time.Second}, false,
		RouteSpec{Name: "checkout", PathPrefix: "/checkout", Pool: "p", Priority: degrade.PriorityHigh},
		RouteSpec{Name: "search", PathPrefix: "/search", Pool: "p", Priority: degrade.PriorityLow})
	var replies []<-chan reply
	replies = append(replies, send(px, "GET", "/search/1"))
	a := be.next(t)
	for i, path := range []string{"/search/2", "/search/3"} {
		replies = append(replies, send(px, "GET", path))
		queueDepth(t, pool, i+1)
	}
	replies = append(replies, send(px, "GET", "/checkout/1"))
	queueDepth(t, pool, 3)
	close(a.release)
	var order []string
	for range 3 {
		h := be.next(t)
		order = append(order, h.path)
		close(h.release)
	}
	if strings.Join(order, " ") != "/checkout/1 /search/2 /search/3" {
		t.Fatalf("backend served %v after the slot freed, want the high request first", order)
	}
	for _, r := range replies {
		if got := await(t, r); got.status != 200 {
			t.Errorf("status %d", got.status)
		}
	}
}

// TestPredictedWaitAnsweredAtArrival: a request whose predicted wait (the
// expected service of the requests queued ahead of it over the pool's slots)
// exceeds the queue timeout gets its route's degraded answer at arrival;
// before issue 15 it queued, waited the whole timeout, and then got it.
func TestPredictedWaitAnsweredAtArrival(t *testing.T) {
	shed, _ := degrade.NewShed(503, 7*time.Second)
	px, pool, _, be := admissionProxy(t, Options{}, balancer.PoolOptions{MaxConnsPerBackend: 1, QueueMax: 10, QueueTimeout: 3 * time.Second}, true,
		RouteSpec{Name: "reports", PathPrefix: "/", Pool: "p", Priority: degrade.PriorityHigh, Action: degrade.ActionShed, Shed: shed})
	train(t, px, be, "GET", "/report/0", 1100*time.Millisecond)

	replies := []<-chan reply{send(px, "GET", "/report/1")}
	a := be.next(t)
	// 0, 1.1s and 2.2s of work ahead: each is expected within the 3s.
	for i := range 3 {
		replies = append(replies, send(px, "GET", "/report/q"))
		queueDepth(t, pool, i+1)
	}
	// 3.3s ahead: more than the queue timeout. Answered at once with the
	// route's degraded answer, while the three ahead still wait.
	got := await(t, send(px, "GET", "/report/late"))
	st := pool.State().QueueStats()
	if got.status != 503 || got.retryAfter != "7" {
		t.Fatalf("request predicted to outwait the queue: %d Retry-After %q, want the route's shed answer", got.status, got.retryAfter)
	}
	if st.Timeouts != 0 || st.Depth != 3 || st.Enqueued != 3 {
		t.Fatalf("queue %+v when the late request was answered: want it never queued and nothing timed out", st)
	}
	close(a.release)
	for range 3 {
		close(be.next(t).release)
	}
	for _, r := range replies {
		if got := await(t, r); got.status != 200 {
			t.Errorf("status %d", got.status)
		}
	}
	if st := pool.State().QueueStats(); st.Predicted != 1 || st.Timeouts != 0 {
		t.Fatalf("queue %+v, want one refusal at arrival and no timeout", st)
	}
}

// TestOrderCapturedWhenItWouldWait: an order whose predicted wait exceeds its
// route's max wait is journalled and confirmed at once instead of queueing,
// and replayed once, after the pool recovers.
func TestOrderCapturedWhenItWouldWait(t *testing.T) {
	j, c := openCapture(t)
	px, pool, mon, be := admissionProxy(t, Options{Capture: c}, balancer.PoolOptions{MaxConnsPerBackend: 1, QueueMax: 10, QueueTimeout: 20 * time.Second}, true,
		RouteSpec{Name: "checkout", PathPrefix: "/checkout", Pool: "p", Priority: degrade.PriorityHigh, Action: degrade.ActionCapture,
			CaptureMaxWait: 100 * time.Millisecond},
		RouteSpec{Name: "account", PathPrefix: "/account", Pool: "p", Priority: degrade.PriorityHigh})
	train(t, px, be, "POST", "/checkout", 300*time.Millisecond)
	train(t, px, be, "GET", "/account/0", 150*time.Millisecond)

	first := send(px, "GET", "/account/1")
	a := be.next(t)
	queued := send(px, "GET", "/account/2")
	queueDepth(t, pool, 1)
	// 150ms of work ahead of the order, more than its 100ms: captured now.
	got := await(t, send(px, "POST", "/checkout"))
	if got.status != 202 || got.captureID == "" {
		t.Fatalf("order predicted to wait past max_wait: %d %q, want 202 with a capture id", got.status, got.body)
	}
	if st := pool.State().QueueStats(); st.Depth != 1 || st.Enqueued != 1 || st.Predicted != 1 {
		t.Fatalf("queue %+v: the order must not have queued", st)
	}
	close(a.release)
	if h := be.next(t); h.path != "/account/2" {
		t.Fatalf("backend got %s %s, want the queued account page (the order is in the journal)", h.method, h.path)
	} else {
		close(h.release)
	}
	for _, r := range []<-chan reply{first, queued} {
		if got := await(t, r); got.status != 200 {
			t.Errorf("status %d", got.status)
		}
	}
	if st := j.Stats(); st.Backlog["p"] != 1 {
		t.Fatalf("backlog %v, want the captured order", st.Backlog)
	}

	mon.SetOverride("p", degrade.OverrideNormal)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := j.StartReplay(ctx, px.s.Sender(), capture.ReplayOptions{Ready: px.s.PoolReady})
	defer stop()
	h := be.next(t)
	if h.method != "POST" || h.path != "/checkout" || h.captureID != got.captureID {
		t.Fatalf("replayed %s %s (capture id %q), want POST /checkout with %q", h.method, h.path, h.captureID, got.captureID)
	}
	close(h.release)
	waitUntil(t, "the order delivered", func() bool { return j.Stats().Backlog["p"] == 0 })
	stop()
	select {
	case h := <-be.arrivals:
		t.Fatalf("backend got %s %s (capture id %q) after the replay: replayed twice?", h.method, h.path, h.captureID)
	default:
	}
}

// TestCriticalKeepsReserveUnderLowFlood: however many low requests hold or
// wait for the shared slots, a critical request takes a reserved slot at once.
func TestCriticalKeepsReserveUnderLowFlood(t *testing.T) {
	for _, degraded := range []bool{false, true} {
		t.Run(map[bool]string{false: "normal", true: "degraded"}[degraded], func(t *testing.T) {
			px, pool, _, be := admissionProxy(t, Options{}, balancer.PoolOptions{MaxConnsPerBackend: 4, Reserved: degrade.Reserve(4, 0.1),
				QueueMax: 5, QueueTimeout: 20 * time.Second}, degraded,
				RouteSpec{Name: "search", PathPrefix: "/search", Pool: "p", Priority: degrade.PriorityLow, Action: degrade.ActionShed},
				RouteSpec{Name: "office", PathPrefix: "/admin", Pool: "p", Priority: degrade.PriorityCritical})
			var replies []<-chan reply
			var held []heldRequest
			for range 3 {
				replies = append(replies, send(px, "GET", "/search"))
				held = append(held, be.next(t))
			}
			// The flood: queued while normal (up to the queue's 5, the rest
			// refused), shed at once while degraded.
			shed := 0
			for i := range 8 {
				r := send(px, "GET", "/search")
				if degraded || i >= 5 {
					if got := await(t, r); got.status != 503 {
						t.Fatalf("flood request %d: %d, want 503", i, got.status)
					}
					shed++
					continue
				}
				replies = append(replies, r)
				queueDepth(t, pool, i+1)
			}
			office := send(px, "GET", "/admin/orders")
			h := be.next(t)
			if h.path != "/admin/orders" {
				t.Fatalf("backend got %s, want the critical request", h.path)
			}
			close(h.release)
			if got := await(t, office); got.status != 200 {
				t.Fatalf("critical request under a flood of low: %d", got.status)
			}
			for _, h := range held {
				close(h.release)
			}
			for range len(replies) - len(held) {
				close(be.next(t).release)
			}
			for _, r := range replies {
				if got := await(t, r); got.status != 200 {
					t.Errorf("status %d", got.status)
				}
			}
		})
	}
}

// TestDegradedStaleMissTakesFreeSlot: on a stale route whose priority the
// level refuses, a page the cache does not hold goes to a free slot rather
// than getting the busy answer; with no slot free it gets the busy answer at
// once.
func TestDegradedStaleMissTakesFreeSlot(t *testing.T) {
	c, err := cache.New(cache.Options{MaxBytes: 1 << 20, ErrorHandler: CacheError})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	shed, _ := degrade.NewShed(503, 7*time.Second)
	px, pool, _, be := admissionProxy(t, Options{Cache: c}, balancer.PoolOptions{MaxConnsPerBackend: 1, QueueMax: 10, QueueTimeout: 20 * time.Second}, true,
		RouteSpec{Name: "search", PathPrefix: "/", Pool: "p", Priority: degrade.PriorityLow, Action: degrade.ActionStale, Shed: shed,
			Cache: &cache.PolicyOptions{MaxObjectBytes: 1 << 20, MaxStale: time.Hour}})
	r := send(px, "GET", "/search?q=lamp")
	var h heldRequest
	select {
	case h = <-be.arrivals:
	case got := <-r:
		t.Fatalf("stale miss with a free slot while degraded: %d, want it forwarded", got.status)
	}
	if got := await(t, send(px, "GET", "/search?q=chair")); got.status != 503 || got.retryAfter != "7" {
		t.Fatalf("stale miss with no slot free: %d Retry-After %q, want the busy answer", got.status, got.retryAfter)
	}
	if st := pool.State().QueueStats(); st.Enqueued != 0 {
		t.Fatalf("queue %+v: a refused miss must not queue", st)
	}
	close(h.release)
	if got := await(t, r); got.status != 200 {
		t.Fatalf("forwarded miss: %d", got.status)
	}
}
