package proxy

import (
	"strings"
	"testing"
	"time"

	"github.com/floodgate/floodgate/proxy/cache"
)

// cachedProxy is a proxy whose one route caches, in front of a raw backend.
func cachedProxy(t *testing.T, reply func(string, []byte) string) (*testProxy, *rawBackend) {
	t.Helper()
	c, err := cache.New(cache.Options{MaxBytes: 1 << 20, ErrorHandler: CacheError})
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
	c, err := cache.New(cache.Options{MaxBytes: 1 << 20, ErrorHandler: CacheError})
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
