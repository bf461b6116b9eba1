package admin

import (
	"context"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// TestRequestPathAllocatesNothingWithStatusPolled is the request path's
// zero-allocation budget (proxy's TestHandlerAllocatesNothing, metrics'
// TestRequestPathAllocatesNothingWithMetrics) with the status page's sources
// wired and its JSON polled while traffic flows: the page reads counters the
// request path keeps anyway and adds nothing to it.
//
// Allocations are counted for the whole process, so the polls, which
// allocate, run between the measured windows; TestStatusPolledDuringTraffic
// runs them truly concurrently under the race detector, and
// BenchmarkProxyGETWithStatusPolled reports allocs/op with a poller running.
func TestRequestPathAllocatesNothingWithStatusPolled(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector; CI runs this test without it")
	}
	s := newStack(t, stackOptions{backends: []string{fastBackend(t), fastBackend(t)}})
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://shop.example/product/42?ref=tv")
	do := func() {
		if err := s.client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			t.Fatalf("%v %d", err, resp.StatusCode())
		}
	}
	for i := 0; i < 500; i++ { // warm pools and connections
		do()
	}
	const runs = 10000
	for round := 0; round < 3; round++ {
		s.clock.Add(time.Second)
		if st := s.status(t); len(st.Pools) == 0 {
			t.Fatal("no pools")
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := 0; i < runs; i++ {
			do()
		}
		runtime.ReadMemStats(&after)
		perReq := float64(after.Mallocs-before.Mallocs) / runs
		t.Logf("round %d: %.4f allocations per request, whole loop", round, perReq)
		// As in metrics: what remains is sync.Pool refills after a GC that
		// the polls between windows trigger, a handful per thousand
		// requests, none of it per request.
		if perReq >= 0.02 {
			t.Fatalf("request path allocates %.3f times per request with the status page polled, want 0", perReq)
		}
	}
}

// TestStatusPolledDuringTraffic polls the status endpoint, with the sampler
// running, while requests flow: for the race detector, and to check that the
// counters the page shows add up.
func TestStatusPolledDuringTraffic(t *testing.T) {
	s := newStack(t, stackOptions{backends: []string{fastBackend(t)}})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = s.srv.Run(ctx) }()
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			s.clock.Add(time.Second)
			req, _ := http.NewRequest("GET", s.url+"/api/v1/status", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
		}
	}()
	const n = 300
	var cw sync.WaitGroup
	for g := 0; g < 3; g++ {
		cw.Add(1)
		go func() {
			defer cw.Done()
			s.send(t, "/", n)
		}()
	}
	cw.Wait()
	cancel()
	wg.Wait()
	var site uint64
	for _, r := range s.status(t).Routes {
		if r.Name == "site" {
			site = r.Requests
		}
	}
	if site != 3*n {
		t.Fatalf("site: %d requests, want %d", site, 3*n)
	}
}

// BenchmarkProxyGETWithStatusPolled is metrics' BenchmarkProxyGETWithMetrics
// with the status page polled ten times a second (a page polls once) and the
// sampler running: allocs/op stays 0.
func BenchmarkProxyGETWithStatusPolled(b *testing.B) {
	s := newStack(b, stackOptions{backends: []string{fastBackend(b), fastBackend(b), fastBackend(b)}})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	defer func() { cancel(); wg.Wait() }()
	go func() { defer wg.Done(); _ = s.srv.Run(ctx) }()
	go func() {
		defer wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = s.srv.buildStatus()
			}
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://shop.example/product/42?ref=tv")
		for pb.Next() {
			if err := s.client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				b.Errorf("%v %d", err, resp.StatusCode())
				return
			}
		}
	})
}
