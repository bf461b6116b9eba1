package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/balancer"
	"github.com/floodgate/floodgate/proxy/cache"
)

// cachedProxy is a proxy whose one route caches, in front of a raw backend.
func cachedProxy(t *testing.T, reply func(string, []byte) string) (*testProxy, *rawBackend) {
	t.Helper()
	c, err := cache.New(cache.Options{MaxBytes: 1 << 20, ErrorHandler: CacheError, Forwarded: CacheForwarded})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	be := newRawBackend(t, reply)
	px := newTestProxy(t, Options{Cache: c}, PoolSpec{}, be.addr())
	snap, err := px.s.Build(Spec{Gen: 2, Pools: []PoolSpec{{Pool: px.s.Current().Pool("p")}},
		Routes: []RouteSpec{{Name: "r", PathPrefix: "/", Pool: "p", Cache: &cache.PolicyOptions{MaxObjectBytes: 1 << 20, MaxStale: time.Hour}}}})
	if err != nil {
		t.Fatal(err)
	}
	px.s.Swap(snap)
	return px, be
}

func TestCachedRouteHitsAndMisses(t *testing.T) {
	px, be := cachedProxy(t, func(head string, _ []byte) string {
		return "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 5\r\n\r\nhello"
	})
	for i, want := range []string{"fwd=uri-miss", "hit"} {
		resp, _ := exchange(t, px.addr, "GET /page?q=1 HTTP/1.1\r\nHost: shop.example\r\n\r\n", 300*time.Millisecond)
		if statusOfRaw(resp) != 200 || !strings.HasSuffix(resp, "hello") || !strings.Contains(resp, "Cache-Status: floodgate; "+want) {
			t.Fatalf("request %d: want 200 with Cache-Status %q, got %q", i, want, resp)
		}
	}
	if n := len(be.requests()); n != 1 {
		t.Fatalf("backend saw %d requests, want 1 (the second was a hit)", n)
	}
	// A POST to the same URI goes through and invalidates it.
	exchange(t, px.addr, "POST /page?q=1 HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 1\r\n\r\nx", 300*time.Millisecond)
	resp, _ := exchange(t, px.addr, "GET /page?q=1 HTTP/1.1\r\nHost: shop.example\r\n\r\n", 300*time.Millisecond)
	if !strings.Contains(resp, "fwd=") {
		t.Fatalf("after a POST the entry should be gone: %q", resp)
	}
	if n := len(be.requests()); n != 3 {
		t.Fatalf("backend saw %d requests, want 3", n)
	}
}

// TestCachedRevalidationCarriesValidators: the cache edits the request it sends
// (If-None-Match); the outbound writer must send those edits, not the client's lines.
func TestCachedRevalidationCarriesValidators(t *testing.T) {
	px, be := cachedProxy(t, func(head string, _ []byte) string {
		if strings.Contains(head, "If-None-Match: \"v1\"") {
			return "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nCache-Control: max-age=0\r\n\r\n"
		}
		return "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nCache-Control: max-age=0\r\nContent-Length: 5\r\n\r\nhello"
	})
	exchange(t, px.addr, "GET /doc HTTP/1.1\r\nHost: x\r\n\r\n", 300*time.Millisecond)
	resp, _ := exchange(t, px.addr, "GET /doc HTTP/1.1\r\nHost: x\r\nX-Client: 1\r\n\r\n", 300*time.Millisecond)
	if statusOfRaw(resp) != 200 || !strings.HasSuffix(resp, "hello") || !strings.Contains(resp, "fwd-status=304") {
		t.Fatalf("want a revalidated 200 from the stored body, got %q", resp)
	}
	reqs := be.requests()
	if len(reqs) != 2 || !strings.Contains(reqs[1], "If-None-Match: \"v1\"") || !strings.Contains(reqs[1], "X-Forwarded-For: 127.0.0.1") {
		t.Fatalf("revalidation request lacks the validator or forwarding headers: %q", reqs)
	}
}

func TestCacheHitAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	c, err := cache.New(cache.Options{MaxBytes: 1 << 20, ErrorHandler: CacheError, Forwarded: CacheForwarded})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	be := newRawBackend(t, func(string, []byte) string {
		return "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
	})
	px := newTestProxy(t, Options{Cache: c}, PoolSpec{}, be.addr())
	snap, err := px.s.Build(Spec{Gen: 2, Pools: []PoolSpec{{Pool: px.s.Current().Pool("p")}},
		Routes: []RouteSpec{{Name: "r", PathPrefix: "/", Pool: "p", Cache: &cache.PolicyOptions{MaxObjectBytes: 1 << 20}}}})
	if err != nil {
		t.Fatal(err)
	}
	px.s.Swap(snap)
	h := newHandlerRun(px.s)
	for i := 0; i < 100; i++ {
		h.do(t)
	}
	if n := len(be.requests()); n != 1 {
		t.Fatalf("backend saw %d requests, want 1", n)
	}
	if n := steadyAllocs(func() { h.do(t) }); n != 0 {
		t.Fatalf("a cache hit through the handler allocates %.2f times, want 0", n)
	}
}

// cachedProxyPolicy is cachedProxy with the route's cache policy given, and the
// pool, whose backends' in-flight counts show leaked slots.
func cachedProxyPolicy(t *testing.T, po cache.PolicyOptions, reply func(string, []byte) string) (*testProxy, *rawBackend, *balancer.Pool) {
	t.Helper()
	c, err := cache.New(cache.Options{MaxBytes: 8 << 20, ErrorHandler: CacheError, Forwarded: CacheForwarded})
	if err != nil {
		t.Fatal(err)
	}
	be := newRawBackend(t, reply)
	px := newTestProxy(t, Options{Cache: c}, PoolSpec{}, be.addr())
	t.Cleanup(c.Close) // after the proxy's shutdown: waits for background refreshes
	pool := px.s.Current().Pool("p")
	snap, err := px.s.Build(Spec{Gen: 2, Pools: []PoolSpec{{Pool: pool}},
		Routes: []RouteSpec{{Name: "r", PathPrefix: "/", Pool: "p", Cache: &po}}})
	if err != nil {
		t.Fatal(err)
	}
	px.s.Swap(snap)
	return px, be, pool
}

// awaitIdle waits until no backend of pool holds an in-flight slot.
func awaitIdle(t *testing.T, pool *balancer.Pool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := int64(0)
		for _, b := range pool.Backends() {
			n += b.State.Inflight()
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d backend slots still held 5s after the last answer", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCachedStaleWhileRevalidateUnderLoad (issue 13, item 1): a backend answering
// "max-age=0, stale-while-revalidate=60" makes every GET after the first a stale
// hit that starts a background refresh. The refresh used the request's pooled
// fetcher after the request ended: the process crashed (nil route or context) or
// wrote into another request's state. Under concurrent load, with -race.
func TestCachedStaleWhileRevalidateUnderLoad(t *testing.T) {
	var n atomic.Int64
	px, be, pool := cachedProxyPolicy(t, cache.PolicyOptions{MaxObjectBytes: 1 << 20},
		func(head string, _ []byte) string {
			body := "v" + strconv.FormatInt(n.Add(1), 10)
			return "HTTP/1.1 200 OK\r\nCache-Control: max-age=0, stale-while-revalidate=60\r\nContent-Length: " +
				strconv.Itoa(len(body)) + "\r\n\r\n" + body
		})
	first, _ := exchange(t, px.addr, "GET /swr HTTP/1.1\r\nHost: x\r\n\r\n", 200*time.Millisecond)
	if statusOfRaw(first) != 200 {
		t.Fatalf("first GET: %q", first)
	}
	const clients, each = 8, 40
	var wg sync.WaitGroup
	errs := make(chan string, clients*each)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", px.addr)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer c.Close()
			br := bufio.NewReader(c)
			for range each {
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.WriteString(c, "GET /swr HTTP/1.1\r\nHost: x\r\nX-Other: "+strings.Repeat("y", 100)+"\r\n\r\n"); err != nil {
					errs <- err.Error()
					return
				}
				var resp fasthttp.Response
				if err := resp.Read(br); err != nil {
					errs <- "read: " + err.Error()
					return
				}
				if resp.StatusCode() != 200 || !strings.HasPrefix(string(resp.Body()), "v") {
					errs <- fmt.Sprintf("answer %d %q", resp.StatusCode(), resp.Body())
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	awaitIdle(t, pool)
	if got := len(be.requests()); got < 2 {
		t.Fatalf("backend saw %d requests: no background refresh ran", got)
	}
}

// TestCachedRefreshReleasesStreamedBody (issue 13, item 1): a background refresh
// whose new body is too large to store gets it as a stream that holds the
// backend's connection and in-flight slot; the refresh dropped it without closing
// it, so the slot was never given back.
func TestCachedRefreshReleasesStreamedBody(t *testing.T) {
	var n atomic.Int64
	big := strings.Repeat("b", 256<<10)
	px, be, pool := cachedProxyPolicy(t, cache.PolicyOptions{MaxObjectBytes: 64 << 10},
		func(head string, _ []byte) string {
			body := "small"
			if n.Add(1) > 1 {
				body = big
			}
			return "HTTP/1.1 200 OK\r\nCache-Control: max-age=0, stale-while-revalidate=60\r\nContent-Length: " +
				strconv.Itoa(len(body)) + "\r\n\r\n" + body
		})
	exchange(t, px.addr, "GET /grow HTTP/1.1\r\nHost: x\r\n\r\n", 100*time.Millisecond)
	resp, _ := exchange(t, px.addr, "GET /grow HTTP/1.1\r\nHost: x\r\n\r\n", 100*time.Millisecond)
	if !strings.Contains(resp, "stale-while-revalidate") || !strings.HasSuffix(resp, "small") {
		t.Fatalf("second GET: want the stored response served stale, got %.200q", resp)
	}
	// The refresh ran (the backend saw it) and its slot came back.
	deadline := time.Now().Add(5 * time.Second)
	for len(be.requests()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no background refresh reached the backend")
		}
		time.Sleep(5 * time.Millisecond)
	}
	awaitIdle(t, pool)
}

// TestCacheVaryUsesForwardedRequest (issue 13, item 4): "Vary: X-Forwarded-For"
// selects on the value floodgate forwards (the client's list plus the peer's
// address), not on the client's header: two clients without the header, from
// different addresses, are two variants. The backend answers with the
// X-Forwarded-For it received, so the body also shows that CacheForwarded agrees
// with what writeRequest sends.
func TestCacheVaryUsesForwardedRequest(t *testing.T) {
	px, be, _ := cachedProxyPolicy(t, cache.PolicyOptions{MaxObjectBytes: 1 << 20},
		func(head string, _ []byte) string {
			xff, proto := "", ""
			for _, l := range strings.Split(head, "\r\n") {
				if v, ok := strings.CutPrefix(l, "X-Forwarded-For: "); ok {
					xff = v
				}
				if v, ok := strings.CutPrefix(l, "X-Forwarded-Proto: "); ok {
					proto = v
				}
			}
			body := xff + "|" + proto
			return "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nVary: X-Forwarded-For, X-Forwarded-Proto, Connection, X-Dropped\r\nContent-Length: " +
				strconv.Itoa(len(body)) + "\r\n\r\n" + body
		})
	get := func(local, extra string) string {
		t.Helper()
		d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		c, err := d.Dial("tcp", px.addr)
		if err != nil {
			t.Skipf("cannot dial from %s: %v", local, err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET /v HTTP/1.1\r\nHost: x\r\n"+extra+"\r\n")
		var resp fasthttp.Response
		if err := resp.Read(bufio.NewReader(c)); err != nil {
			t.Fatal(err)
		}
		return string(resp.Body()) + " " + string(resp.Header.Peek("Cache-Status"))
	}
	for i, tc := range []struct{ local, extra, body, status string }{
		{"127.0.0.1", "", "127.0.0.1|http", "fwd=uri-miss"},
		{"127.0.0.2", "", "127.0.0.2|http", "fwd=vary-miss"}, // was: hit with 127.0.0.1's answer
		{"127.0.0.1", "", "127.0.0.1|http", "hit"},
		{"127.0.0.2", "", "127.0.0.2|http", "hit"},
		// The client's own list is kept, the peer appended: another variant.
		{"127.0.0.1", "X-Forwarded-For: 127.0.0.2\r\n", "127.0.0.2, 127.0.0.1|http", "fwd=vary-miss"},
		// A client cannot pose as another by sending what floodgate forwards for it.
		{"127.0.0.1", "X-Forwarded-Proto: https\r\n", "127.0.0.1|http", "hit"},
		// Connection and the fields it names never reach the backend.
		{"127.0.0.1", "Connection: X-Dropped\r\nX-Dropped: 1\r\n", "127.0.0.1|http", "hit"},
	} {
		got := get(tc.local, tc.extra)
		if !strings.HasPrefix(got, tc.body+" ") || !strings.Contains(got, tc.status) {
			t.Errorf("request %d from %s: got %q, want body %q and %q", i, tc.local, got, tc.body, tc.status)
		}
	}
	if n := len(be.requests()); n != 3 {
		t.Errorf("backend saw %d requests, want 3", n)
	}
}

// TestCacheVaryHitAllocatesNothing: a hit on a response that varies on fields
// floodgate rewrites (X-Forwarded-For, Connection) computes their forwarded
// values without allocating.
func TestCacheVaryHitAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	px, be, _ := cachedProxyPolicy(t, cache.PolicyOptions{MaxObjectBytes: 1 << 20}, func(string, []byte) string {
		return "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nVary: X-Forwarded-For, Accept-Encoding, Connection, X-Forwarded-Proto\r\nContent-Length: 5\r\n\r\nhello"
	})
	h := newHandlerRun(px.s)
	for i := 0; i < 100; i++ {
		h.do(t)
	}
	if n := len(be.requests()); n != 1 {
		t.Fatalf("backend saw %d requests, want 1", n)
	}
	if n := steadyAllocs(func() { h.do(t) }); n != 0 {
		t.Fatalf("a Vary hit through the handler allocates %.2f times, want 0", n)
	}
}
