package cache

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/internal/panics"
)

// doAsync is do for use from other goroutines: it reports errors instead
// of failing the test from the wrong goroutine.
func (h *harness) doAsync(client *fasthttp.HostClient, uri string, hdrs ...string) (answer, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://example.test" + uri)
	for _, hv := range hdrs {
		k, v, _ := strings.Cut(hv, ": ")
		req.Header.Add(k, v)
	}
	if err := client.Do(req, resp); err != nil {
		return answer{}, err
	}
	a := answer{status: resp.StatusCode(), headers: map[string][]string{}, body: string(resp.Body())}
	for k, v := range resp.Header.All() {
		lk := strings.ToLower(string(k))
		a.headers[lk] = append(a.headers[lk], string(v))
	}
	a.result = a.get("X-Result")
	return a, nil
}

// collapse fires n concurrent requests for uri while the origin holds the
// first one, releases it once the other n-1 wait for it, and returns the
// answers.
func collapse(t *testing.T, h *harness, n int, uri string, script func(n int, req seenReq) originResp, hdrs func(i int) []string) []answer {
	t.Helper()
	release := make(chan struct{})
	var waiting atomic.Int32
	allWaiting := make(chan struct{})
	h.cache.onWait = func() {
		if int(waiting.Add(1)) == n-1 {
			close(allWaiting)
		}
	}
	h.setScript(func(k int, req seenReq) originResp {
		r := script(k, req)
		if k == 1 {
			r.hold = release
		}
		return r
	})
	answers := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var extra []string
			if hdrs != nil {
				extra = hdrs(i)
			}
			a, err := h.doAsync(h.client, uri, extra...)
			if err != nil {
				t.Error(err)
			}
			answers[i] = a
		}()
	}
	<-allWaiting
	close(release)
	wg.Wait()
	return answers
}

// TestCollapse covers request collapsing (RFC 9111 §4): 100 concurrent
// misses for one URL make exactly one origin request, and the other 99 are
// answered from the stored response.
func TestCollapse(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	answers := collapse(t, h, 100, "/hot", func(k int, _ seenReq) originResp {
		return originResp{headers: []string{"Cache-Control: max-age=60"}, body: "hot-" + strconv.Itoa(k)}
	}, nil)
	if got := h.hits.Load(); got != 1 {
		t.Fatalf("origin requests = %d, want 1", got)
	}
	results := map[string]int{}
	for _, a := range answers {
		if a.status != 200 || a.body != "hot-1" {
			t.Errorf("answer %d %q, want 200 hot-1", a.status, a.body)
		}
		results[a.result]++
	}
	if results["miss"] != 1 || results["hit"] != 99 {
		t.Errorf("results %v, want 1 miss and 99 hits", results)
	}
	st := h.cache.Stats()
	if st.Hits != 99 || st.Misses != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestCollapseUncacheable checks that when the leader's response cannot be
// stored, every waiter goes to the origin itself and gets its own answer,
// and that the URL is then marked so later misses do not queue at all.
func TestCollapseUncacheable(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	const n = 20
	answers := collapse(t, h, n, "/private", func(k int, _ seenReq) originResp {
		return originResp{headers: []string{"Cache-Control: private, max-age=60"}, body: "user-" + strconv.Itoa(k)}
	}, nil)
	if got := h.hits.Load(); got != n {
		t.Fatalf("origin requests = %d, want %d (each waiter fetches its own)", got, n)
	}
	bodies := map[string]bool{}
	for _, a := range answers {
		if bodies[a.body] {
			t.Errorf("body %q served twice: a private response was shared", a.body)
		}
		bodies[a.body] = true
	}

	// The hit-for-miss marker: concurrent requests now all reach the origin
	// at once instead of queueing behind a leader.
	var waited atomic.Int32
	h.cache.onWait = func() { waited.Add(1) }
	arrived := make(chan struct{}, n)
	release := make(chan struct{})
	h.setScript(func(k int, _ seenReq) originResp {
		arrived <- struct{}{}
		return originResp{headers: []string{"Cache-Control: private"}, body: "x", hold: release}
	})
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.doAsync(h.client, "/private"); err != nil {
				t.Error(err)
			}
		}()
	}
	for range 10 {
		<-arrived // all ten reach the origin while it still holds them
	}
	close(release)
	wg.Wait()
	if waited.Load() != 0 {
		t.Errorf("%d requests waited for a leader despite the marker", waited.Load())
	}
}

// TestCollapseWaitTimeout checks that a waiter stops waiting after
// CoalesceWait and fetches itself.
func TestCollapseWaitTimeout(t *testing.T) {
	h := newHarness(t, harnessOpts{coalesce: 20 * time.Millisecond})
	release := make(chan struct{})
	first := make(chan struct{})
	second := make(chan struct{})
	h.setScript(func(k int, _ seenReq) originResp {
		if k == 1 {
			close(first)
			return originResp{headers: []string{"Cache-Control: max-age=60"}, body: "slow", hold: release}
		}
		close(second)
		return originResp{headers: []string{"Cache-Control: max-age=60"}, body: "own"}
	})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := h.doAsync(h.client, "/slow"); err != nil {
			t.Error(err)
		}
	}()
	// Wait until the leader's request is at the origin, then send the
	// waiter; it gives up after 20ms and reaches the origin itself.
	<-first
	done := make(chan answer, 1)
	go func() {
		a, err := h.doAsync(h.client, "/slow")
		if err != nil {
			t.Error(err)
		}
		done <- a
	}()
	<-second
	a := <-done
	close(release)
	wg.Wait()
	if a.body != "own" || a.result != "miss" {
		t.Errorf("waiter got %q (%s), want its own fetch", a.body, a.result)
	}
}

// TestPrivateNeverShared is brief rule 8: what one client receives because
// of its credentials, its cookies or a private directive never reaches
// another client, sequentially or collapsed.
func TestPrivateNeverShared(t *testing.T) {
	personal := func(k int, req seenReq) originResp {
		user := "anonymous"
		if a := req.get("Authorization"); a != "" {
			user = strings.TrimPrefix(a, "Bearer ")
		}
		if c := req.get("Cookie"); c != "" {
			user = strings.TrimPrefix(c, "session=")
		}
		return originResp{headers: []string{"Cache-Control: max-age=600"}, body: "hello " + user + " #" + strconv.Itoa(k)}
	}
	tests := []struct {
		name   string
		alice  []string
		script func(k int, req seenReq) originResp
	}{
		{"Authorization", []string{"Authorization: Bearer alice"}, personal},
		{"Set-Cookie", []string{"Cookie: session=alice"}, func(k int, req seenReq) originResp {
			r := personal(k, req)
			user := strings.TrimPrefix(req.get("Cookie"), "session=")
			r.headers = append(r.headers, "Set-Cookie: seen="+user+"-"+strconv.Itoa(k))
			return r
		}},
		{"private", []string{"Cookie: session=alice"}, func(k int, req seenReq) originResp {
			r := personal(k, req)
			r.headers = []string{"Cache-Control: private, max-age=600"}
			return r
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{})
			bob := &fasthttp.HostClient{Addr: h.frontAddr}
			defer bob.CloseIdleConnections()
			h.setScript(tt.script)
			a, err := h.doAsync(h.client, "/me", tt.alice...)
			if err != nil {
				t.Fatal(err)
			}
			b, err := h.doAsync(bob, "/me")
			if err != nil {
				t.Fatal(err)
			}
			if b.body == a.body || strings.Contains(b.body, "alice") || strings.Contains(strings.Join(b.headers["set-cookie"], ","), "alice") {
				t.Fatalf("bob got %q %v after alice got %q", b.body, b.headers["set-cookie"], a.body)
			}
			if h.hits.Load() != 2 {
				t.Fatalf("origin requests = %d, want 2", h.hits.Load())
			}

			// Collapsed: bob waits for alice's fetch, then must fetch his own.
			aliceAtOrigin := make(chan struct{})
			release := make(chan struct{})
			bobWaits := make(chan struct{})
			h.cache.onWait = func() { close(bobWaits) }
			h.setScript(func(k int, req seenReq) originResp {
				r := tt.script(k, req)
				if k == 3 {
					close(aliceAtOrigin)
					r.hold = release
				}
				return r
			})
			var wg sync.WaitGroup
			var ca, cb answer
			wg.Add(2)
			go func() {
				defer wg.Done()
				var err error
				if ca, err = h.doAsync(h.client, "/me2", tt.alice...); err != nil {
					t.Error(err)
				}
			}()
			<-aliceAtOrigin
			go func() {
				defer wg.Done()
				var err error
				if cb, err = h.doAsync(bob, "/me2"); err != nil {
					t.Error(err)
				}
			}()
			<-bobWaits
			close(release)
			wg.Wait()
			if cb.body == ca.body || strings.Contains(cb.body, "alice") || strings.Contains(strings.Join(cb.headers["set-cookie"], ","), "alice") {
				t.Fatalf("collapsed: bob got %q %v, alice got %q", cb.body, cb.headers["set-cookie"], ca.body)
			}
			if h.hits.Load() != 4 {
				t.Fatalf("origin requests = %d, want 4", h.hits.Load())
			}
		})
	}
}

// TestBudget inserts far more than MaxBytes and checks the accounted bytes
// never exceed it, while a hot set that keeps being requested survives the
// scan of cold URLs (segmented LRU).
func TestBudget(t *testing.T) {
	const max = 1 << 20
	c, err := New(Options{MaxBytes: max})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := c.NewPolicy(PolicyOptions{Route: "budget"})
	fetch := staticFetcher([]byte(strings.Repeat("b", 1000)))
	hot := make([]*fasthttp.RequestCtx, 20)
	for i := range hot {
		hot[i] = newCtx("/hot/" + strconv.Itoa(i))
		c.Serve(hot[i], p, fetch)
	}
	ctx := newCtx("/")
	for i := range 20000 { // ~25 MB of responses through a 1 MB cache
		ctx.Request.SetRequestURI("/cold/" + strconv.Itoa(i))
		ctx.Response.Reset()
		c.Serve(ctx, p, fetch)
		if b := c.Stats().Bytes; b > max {
			t.Fatalf("after %d inserts: %d bytes accounted, budget %d", i, b, max)
		}
		if i%50 == 0 {
			for _, h := range hot {
				h.Response.Reset()
				c.Serve(h, p, fetch)
			}
		}
	}
	st := c.Stats()
	if st.Evicted == 0 || st.Objects == 0 || st.Bytes > max {
		t.Fatalf("stats %+v", st)
	}
	for i, h := range hot {
		h.Response.Reset()
		if r := c.Serve(h, p, fetch); r != Hit {
			t.Errorf("hot URL %d was evicted by the scan (%v)", i, r)
		}
	}
	// The accounting matches what the index holds.
	st = c.Stats()
	var bytes, objects int64
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		bytes += s.bytes[0] + s.bytes[1]
		for _, head := range s.m {
			for v := head; v != nil; v = v.alt {
				if !v.isMarker() {
					objects++
				}
			}
		}
		s.mu.RUnlock()
	}
	if bytes != st.Bytes || objects != st.Objects {
		t.Errorf("index holds %d bytes / %d objects, accounted %d / %d", bytes, objects, st.Bytes, st.Objects)
	}
}

// TestObjectLimits checks MaxObjectBytes, a budget smaller than the object
// and a streamed body: all passed through unstored.
func TestObjectLimits(t *testing.T) {
	c, err := New(Options{MaxBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	small := c.NewPolicy(PolicyOptions{Route: "limits", MaxObjectBytes: 1000})
	for _, tc := range []struct {
		name  string
		p     *Policy
		fetch Fetcher
	}{
		{"larger than MaxObjectBytes", small, staticFetcher([]byte(strings.Repeat("x", 1001)))},
		{"larger than MaxBytes", c.NewPolicy(PolicyOptions{Route: "limits"}), staticFetcher([]byte(strings.Repeat("x", 100<<10)))},
		{"streamed body", c.NewPolicy(PolicyOptions{Route: "limits"}), func(_ *fasthttp.Request, resp *fasthttp.Response) error {
			resp.Header.Set("Cache-Control", "max-age=3600")
			resp.SetBodyStream(strings.NewReader("streamed"), -1)
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := newCtx("/big/" + tc.name)
			if r := c.Serve(ctx, tc.p, tc.fetch); r != Miss {
				t.Fatalf("first %v", r)
			}
			if ctx.Response.StatusCode() != 200 || (len(ctx.Response.Body()) == 0 && !ctx.Response.IsBodyStream()) {
				t.Fatalf("passed-through response %d %q", ctx.Response.StatusCode(), ctx.Response.Body())
			}
			ctx.Response.Reset()
			if r := c.Serve(ctx, tc.p, tc.fetch); r != Miss {
				t.Fatalf("second %v, want miss (not stored)", r)
			}
		})
	}
}

// TestMillionURLs stores 1,000,000 distinct small URLs through a 64 MB
// budget and reports the heap and RSS afterwards: the measure of the
// per-entry overhead documented in docs/cache.md.
func TestMillionURLs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("slow; run without -short and -race")
	}
	const max = 64 << 20
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	c, err := New(Options{MaxBytes: max})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := c.NewPolicy(PolicyOptions{Route: "million"})
	body := []byte(`{"ok":true}`)
	fetch := func(_ *fasthttp.Request, resp *fasthttp.Response) error {
		resp.Header.SetContentType("application/json")
		resp.Header.Set("Cache-Control", "max-age=3600")
		resp.SetBody(body)
		return nil
	}
	ctx := newCtx("/")
	var uri []byte
	start := time.Now()
	for i := range 1_000_000 {
		uri = strconv.AppendInt(append(uri[:0], "/api/items/"...), int64(i), 10)
		ctx.Request.SetRequestURIBytes(uri)
		ctx.Response.Reset()
		c.Serve(ctx, p, fetch)
	}
	elapsed := time.Since(start)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	st := c.Stats()
	if st.Bytes > max {
		t.Fatalf("accounted %d > budget %d", st.Bytes, max)
	}
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("1,000,000 inserts in %v (%v each); kept %d objects, %d evicted", elapsed.Round(time.Millisecond), elapsed/1_000_000, st.Objects, st.Evicted)
	t.Logf("accounted %.1f MiB (%d B/object); Go heap %.1f MiB (%d B/object); RSS %.1f MiB",
		float64(st.Bytes)/(1<<20), st.Bytes/st.Objects, float64(heap)/(1<<20), heap/st.Objects, float64(rss())/(1<<20))
	debug.FreeOSMemory()
	t.Logf("RSS after returning free memory to the OS: %.1f MiB; entry struct %d B, overhead charged per entry %d B",
		float64(rss())/(1<<20), unsafe.Sizeof(entry{}), entryOverhead)
	if heap > 2*max {
		t.Errorf("heap %d is more than twice the budget", heap)
	}
}

// rss returns the resident set size from /proc, or 0.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// TestPurge covers Purge and PurgeKey.
func TestPurge(t *testing.T) {
	c, err := New(Options{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := c.NewPolicy(PolicyOptions{Route: "purge"})
	fetch := staticFetcher([]byte("x"))
	store := func(host, uri string, hdrs ...string) *fasthttp.RequestCtx {
		ctx := newCtx(uri, hdrs...)
		ctx.Request.Header.SetHost(host)
		ctx.Response.Reset()
		c.Serve(ctx, p, fetch)
		return ctx
	}
	fill := func() {
		store("a.example", "/static/app.js")
		store("a.example", "/static/app.css?v=2")
		store("A.EXAMPLE", "/index.html")
		store("b.example", "/static/app.js")
	}
	fill()
	if got := c.Purge("a.example", "/static/"); got != 2 {
		t.Errorf("Purge(a.example, /static/) = %d, want 2", got)
	}
	if r := c.Serve(store("b.example", "/static/app.js"), p, fetch); r != Hit {
		t.Errorf("other host purged: %v", r)
	}
	if got := c.Purge("", "/static/"); got != 1 {
		t.Errorf("Purge(any, /static/) = %d, want 1", got)
	}
	fill()
	if got := c.PurgeKey("a.example", "/static/app.css?v=2"); got != 1 {
		t.Errorf("PurgeKey = %d, want 1", got)
	}
	if got := c.PurgeKey("a.example", "/static/app.css"); got != 0 {
		t.Errorf("PurgeKey without the query = %d, want 0", got)
	}
	if got := c.Purge("", ""); got != 3 {
		t.Errorf("Purge everything = %d, want 3", got)
	}
	if st := c.Stats(); st.Objects != 0 || st.Bytes != 0 {
		t.Errorf("after purging everything: %+v", st)
	}
	// Variants count one by one, and a hot (lock-free) entry is purged too.
	v := staticFetcher([]byte("v"), "Vary: Accept-Language")
	for _, lang := range []string{"en", "fr", "de"} {
		ctx := newCtx("/v", "Accept-Language: "+lang)
		ctx.Request.Header.SetHost("a.example")
		c.Serve(ctx, p, v)
	}
	hot := store("a.example", "/hot")
	hot.Response.Reset()
	if r := c.Serve(hot, p, fetch); r != Hit {
		t.Fatalf("hot: %v", r)
	}
	if got := c.Purge("a.example", "/"); got != 4 {
		t.Errorf("Purge with variants = %d, want 4", got)
	}
	hot.Response.Reset()
	if r := c.Serve(hot, p, fetch); r != Miss {
		t.Errorf("hot entry served after purge: %v", r)
	}
}

// TestServeStale covers degraded mode: stored responses up to MaxStale past
// their lifetime are served regardless of must-revalidate and no-cache.
func TestServeStale(t *testing.T) {
	h := newHarness(t, harnessOpts{policy: PolicyOptions{MaxStale: 10 * time.Minute}})
	h.setScript(func(int, seenReq) originResp {
		return originResp{headers: []string{"Cache-Control: max-age=10, must-revalidate, no-cache"}, body: "page"}
	})
	h.get("/page")
	degraded := func(uri string) (*fasthttp.RequestCtx, bool) {
		ctx := newCtx(uri)
		ctx.Request.Header.SetHost("example.test")
		return ctx, h.cache.ServeStale(ctx, h.policy)
	}
	h.clock.Advance(5 * time.Minute)
	ctx, ok := degraded("/page")
	if !ok || string(ctx.Response.Body()) != "page" || ctx.Response.StatusCode() != 200 {
		t.Fatalf("ServeStale 5m past expiry: %v %d %q", ok, ctx.Response.StatusCode(), ctx.Response.Body())
	}
	if cs := string(ctx.Response.Header.Peek("Cache-Status")); !strings.HasSuffix(cs, "detail=degraded") || !strings.HasPrefix(cs, "floodgate; hit; ttl=-") {
		t.Errorf("Cache-Status %q", cs)
	}
	if age := string(ctx.Response.Header.Peek("Age")); age != "300" {
		t.Errorf("Age %q, want 300", age)
	}
	if ctx, ok := degraded("/missing"); ok || len(ctx.Response.Body()) != 0 || len(ctx.Response.Header.Peek("Cache-Status")) != 0 {
		t.Errorf("ServeStale without an entry wrote something")
	}
	h.clock.Advance(6 * time.Minute)
	if ctx, ok := degraded("/page"); ok || len(ctx.Response.Body()) != 0 {
		t.Errorf("ServeStale 11m past expiry with max_stale 10m served it")
	}
	if st := h.cache.Stats(); st.Stale != 1 {
		t.Errorf("stale count %d, want 1", st.Stale)
	}
}

// TestServeFresh covers what degraded mode does with a refused request on a
// cached route: a fresh entry is served as an ordinary hit, an expired one is
// not, and nothing is written without an entry.
func TestServeFresh(t *testing.T) {
	h := newHarness(t, harnessOpts{policy: PolicyOptions{MaxStale: 10 * time.Minute}})
	h.setScript(func(int, seenReq) originResp {
		return originResp{headers: []string{"Cache-Control: max-age=10"}, body: "page"}
	})
	h.get("/page")
	refused := func(uri string) (*fasthttp.RequestCtx, bool) {
		ctx := newCtx(uri)
		ctx.Request.Header.SetHost("example.test")
		return ctx, h.cache.ServeFresh(ctx, h.policy)
	}
	h.clock.Advance(4 * time.Second)
	ctx, ok := refused("/page")
	if !ok || string(ctx.Response.Body()) != "page" || ctx.Response.StatusCode() != 200 {
		t.Fatalf("ServeFresh of a fresh entry: %v %d %q", ok, ctx.Response.StatusCode(), ctx.Response.Body())
	}
	if cs := string(ctx.Response.Header.Peek("Cache-Status")); cs != "floodgate; hit; ttl=6" {
		t.Errorf("Cache-Status %q, want an ordinary hit", cs)
	}
	if ctx, ok := refused("/missing"); ok || len(ctx.Response.Body()) != 0 || len(ctx.Response.Header.Peek("Cache-Status")) != 0 {
		t.Errorf("ServeFresh without an entry wrote something")
	}
	h.clock.Advance(7 * time.Second)
	if ctx, ok := refused("/page"); ok || len(ctx.Response.Body()) != 0 {
		t.Errorf("ServeFresh served an entry 1s past expiry")
	}
	if st := h.cache.Stats(); st.Hits != 1 || st.Stale != 0 {
		t.Errorf("hits %d stale %d, want 1 and 0", st.Hits, st.Stale)
	}
}

// TestMetrics checks the Prometheus series and that policies of one route
// share their counters.
func TestMetrics(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.setScript(func(int, seenReq) originResp {
		return originResp{headers: []string{"Cache-Control: max-age=60"}, body: "m"}
	})
	h.get("/m")
	h.get("/m")
	h.do("POST", "/m")
	h.get("/m")
	h.cache.NewPolicy(PolicyOptions{Route: "test", DefaultTTL: time.Second}) // same route, new options
	want := map[string]float64{"hit": 1, "miss": 2, "bypass": 1, "stale": 0, "revalidated": 0}
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{} // name -> index in mfs; the dto types stay unnamed so go.mod needs no new direct dependency
	for i, mf := range mfs {
		got[mf.GetName()] = i
	}
	ri, ok := got["floodgate_cache_requests_total"]
	if !ok {
		t.Fatal("floodgate_cache_requests_total not registered")
	}
	req := mfs[ri]
	for _, m := range req.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["route"] != "test" {
			t.Errorf("unexpected route %q", labels["route"])
		}
		if w := want[labels["result"]]; m.GetCounter().GetValue() != w {
			t.Errorf("%s = %v, want %v", labels["result"], m.GetCounter().GetValue(), w)
		}
	}
	if v := mfs[got["floodgate_cache_objects"]].GetMetric()[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("objects %v, want 1", v)
	}
	if v := mfs[got["floodgate_cache_bytes"]].GetMetric()[0].GetGauge().GetValue(); v <= 0 {
		t.Errorf("bytes %v", v)
	}
	if v := mfs[got["floodgate_cache_max_bytes"]].GetMetric()[0].GetGauge().GetValue(); v != 64<<20 {
		t.Errorf("max bytes %v, want %v", v, 64<<20)
	}
	c2, err := New(Options{MaxBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := h.reg.Register(c2.Collector()); err == nil {
		t.Error("a second cache registered the same metrics")
	}
	if _, err := New(Options{}); !errors.Is(err, ErrInvalidOptions) {
		t.Errorf("MaxBytes 0: %v", err)
	}
}

// TestSweep checks that dead entries (stale beyond any use, no validator)
// are removed by the sweeper while revalidatable ones stay.
func TestSweep(t *testing.T) {
	clock := newClock()
	c, err := New(Options{MaxBytes: 1 << 20, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := c.NewPolicy(PolicyOptions{Route: "sweep"})
	plain := func(_ *fasthttp.Request, resp *fasthttp.Response) error {
		resp.Header.Set("Cache-Control", "max-age=10")
		resp.SetBodyString("x")
		return nil
	}
	for i := range 100 {
		c.Serve(newCtx("/dead/"+strconv.Itoa(i)), p, plain)
	}
	c.Serve(newCtx("/kept"), p, staticFetcher([]byte("k"))) // has a validator
	clock.Advance(10*time.Second + staleGrace*time.Second - time.Second)
	if n := c.sweep(clock.Now().UnixNano()); n != 0 {
		t.Fatalf("swept %d entries still within the grace period", n)
	}
	clock.Advance(2 * time.Second)
	for range 10 { // each pass looks at up to sweepBatch URLs per shard
		c.sweep(clock.Now().UnixNano())
	}
	if st := c.Stats(); st.Objects != 1 || st.Expired != 100 {
		t.Fatalf("stats %+v, want the 100 dead entries expired and 1 kept", st)
	}
}

// TestCloseWaitsForRefresh checks that Close waits for a running
// stale-while-revalidate refresh and that no refresh starts after Close.
func TestCloseWaitsForRefresh(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.setScript(func(int, seenReq) originResp {
		return originResp{headers: []string{"Cache-Control: max-age=1, stale-while-revalidate=600", `ETag: "v1"`}, body: "v1"}
	})
	h.get("/swr")
	h.clock.Advance(5 * time.Second)
	entered := make(chan struct{})
	release := make(chan struct{})
	h.setScript(func(int, seenReq) originResp {
		close(entered)
		return originResp{headers: []string{"Cache-Control: max-age=600", `ETag: "v2"`}, body: "v2", hold: release}
	})
	if a := h.get("/swr"); a.result != "stale" || a.body != "v1" {
		t.Fatalf("got %s %q, want stale v1", a.result, a.body)
	}
	<-entered
	go close(release)
	h.cache.Close()
	// Close returned: the refresh finished and stored v2.
	if a := h.get("/swr"); a.result != "hit" || a.body != "v2" {
		t.Fatalf("after Close: %s %q, want hit v2", a.result, a.body)
	}
	h.cache.Close() // idempotent
}

// TestErrorHandler checks that fetch errors go through Options.ErrorHandler.
func TestErrorHandler(t *testing.T) {
	var got error
	c, err := New(Options{MaxBytes: 1 << 20, ErrorHandler: func(ctx *fasthttp.RequestCtx, err error) {
		got = err
		ctx.Response.SetStatusCode(599)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := c.NewPolicy(PolicyOptions{Route: "err"})
	boom := fmt.Errorf("dial: %w", errFetch)
	for _, method := range []string{"GET", "POST"} {
		got = nil
		ctx := newCtx("/e")
		ctx.Request.Header.SetMethod(method)
		c.Serve(ctx, p, func(*fasthttp.Request, *fasthttp.Response) error { return boom })
		if !errors.Is(got, errFetch) || ctx.Response.StatusCode() != 599 {
			t.Errorf("%s: handler got %v, status %d", method, got, ctx.Response.StatusCode())
		}
	}
	c2, _ := New(Options{MaxBytes: 1 << 20})
	defer c2.Close()
	ctx := newCtx("/e")
	c2.Serve(ctx, c2.NewPolicy(PolicyOptions{}), func(*fasthttp.Request, *fasthttp.Response) error { return fasthttp.ErrTimeout })
	if ctx.Response.StatusCode() != 504 {
		t.Errorf("default handler on a timeout: %d, want 504", ctx.Response.StatusCode())
	}
}

// TestRefreshOnce checks that stale-while-revalidate starts one background
// refresh however many requests see the stale response meanwhile.
func TestRefreshOnce(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.setScript(func(int, seenReq) originResp {
		return originResp{headers: []string{"Cache-Control: max-age=1, stale-while-revalidate=600"}, body: "v1"}
	})
	h.get("/once")
	h.clock.Advance(5 * time.Second)
	entered := make(chan struct{})
	release := make(chan struct{})
	h.setScript(func(int, seenReq) originResp {
		close(entered) // a second refresh would panic here
		return originResp{headers: []string{"Cache-Control: max-age=600"}, body: "v2", hold: release}
	})
	for range 20 {
		if a := h.get("/once"); a.result != "stale" || a.body != "v1" {
			t.Fatalf("got %s %q, want stale v1", a.result, a.body)
		}
	}
	<-entered
	close(release)
	h.cache.bg.Wait()
	if got := h.hits.Load(); got != 2 {
		t.Fatalf("origin requests = %d, want 2 (the first fetch and one refresh)", got)
	}
	if a := h.get("/once"); a.result != "hit" || a.body != "v2" {
		t.Fatalf("after the refresh: %s %q", a.result, a.body)
	}
}

// rawGet sends one GET with the given Host line to the front server on a new
// connection and returns the answer.
func (h *harness) rawGet(uri, host string) *fasthttp.Response {
	h.t.Helper()
	c, err := net.Dial("tcp", h.frontAddr)
	if err != nil {
		h.t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET "+uri+" HTTP/1.1\r\nHost: "+host+"\r\n\r\n"); err != nil {
		h.t.Fatal(err)
	}
	resp := new(fasthttp.Response)
	if err := resp.Read(bufio.NewReader(c)); err != nil {
		h.t.Fatal(err)
	}
	return resp
}

// TestHostSpellingsShareKeysAndPurges (issue 13, item 24): the spellings of
// one host share one stored response, and a purge names the host in any of
// them; a purge by key without a host purges that key on every host.
func TestHostSpellingsShareKeysAndPurges(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.setScript(func(n int, _ seenReq) originResp {
		return originResp{headers: []string{"Cache-Control: max-age=600"}, body: "body-" + strconv.Itoa(n)}
	})
	stored := func(host string) string {
		t.Helper()
		return string(h.rawGet("/p", host).Header.Peek("X-Result"))
	}
	if r := stored("localhost:19001"); r != "miss" {
		t.Fatalf("first GET: %s", r)
	}
	for _, host := range []string{"LOCALHOST:019001", "localhost.:19001", "LocalHost.:0019001"} {
		if r := stored(host); r != "hit" {
			t.Errorf("Host %q: %s, want a hit on the response stored for localhost:19001", host, r)
		}
	}
	for _, host := range []string{"[::FFFF:7F00:1]:80", "[0:0:0:0:0:ffff:127.0.0.1]"} {
		stored(host)
	}
	if r := stored("[::ffff:127.0.0.1]"); r != "hit" {
		t.Errorf("IPv6 spellings: %s, want a hit", r)
	}
	stored("example.test:80")
	if r := stored("example.test"); r != "hit" {
		t.Errorf("default port: %s, want a hit", r)
	}
	if n := h.cache.PurgeKey("LOCALHOST.:019001", "/p"); n != 1 {
		t.Errorf("PurgeKey(LOCALHOST.:019001) = %d, want 1", n)
	}
	stored("localhost:19001")
	if n := h.cache.Purge("localhost.:19001", "/"); n != 1 {
		t.Errorf("Purge(localhost.:19001) = %d, want 1", n)
	}
	stored("localhost:19001")
	if n := h.cache.PurgeKey("", "/p"); n != 3 {
		t.Errorf("PurgeKey without a host = %d, want 3 (every host)", n)
	}
	if r := stored("example.test"); r != "miss" {
		t.Errorf("after purging every host: %s, want a miss", r)
	}
}

// TestBackgroundRefreshPanicIsContained: a panic in a stale-while-revalidate
// refresh (a background goroutine) is recovered and counted
// (floodgate_panics_total), and the stale answer was served all the same.
func TestBackgroundRefreshPanicIsContained(t *testing.T) {
	panics.Allow(t)
	before := panics.Total()
	c, err := New(Options{MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := c.NewPolicy(PolicyOptions{Route: "r"})
	var n atomic.Int32
	fetch := func(req *fasthttp.Request, resp *fasthttp.Response) error {
		if n.Add(1) > 1 {
			panic("backend exploded")
		}
		resp.Header.Set("Cache-Control", "max-age=0, stale-while-revalidate=60")
		resp.SetBodyString("v1")
		return nil
	}
	if r := c.Serve(newCtx("/swr"), p, fetch); r != Miss {
		t.Fatalf("first: %v", r)
	}
	ctx := newCtx("/swr")
	if r := c.Serve(ctx, p, fetch); r != Stale || string(ctx.Response.Body()) != "v1" {
		t.Fatalf("second: %v %q", r, ctx.Response.Body())
	}
	deadline := time.Now().Add(5 * time.Second)
	for panics.Total() == before {
		if time.Now().After(deadline) {
			t.Fatal("the refresh's panic was not contained and counted")
		}
		time.Sleep(time.Millisecond)
	}
}
