package cache

import (
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"
)

// staticFetcher answers like a typical static-asset backend.
func staticFetcher(body []byte, extra ...string) Fetcher {
	return func(_ *fasthttp.Request, resp *fasthttp.Response) error {
		resp.SetStatusCode(fasthttp.StatusOK)
		resp.Header.SetContentType("application/javascript")
		resp.Header.Set("Cache-Control", "public, max-age=3600")
		resp.Header.Set("ETag", `"5f3a-1a2b3c"`)
		resp.Header.Set("Last-Modified", "Wed, 12 Mar 2025 10:00:00 GMT")
		for _, h := range extra {
			k, v, _ := strings.Cut(h, ": ")
			resp.Header.Set(k, v)
		}
		resp.SetBody(body)
		return nil
	}
}

func newCtx(uri string, hdrs ...string) *fasthttp.RequestCtx {
	ctx := &fasthttp.RequestCtx{}
	ctx.Request.Header.SetMethod("GET")
	ctx.Request.SetRequestURI(uri)
	ctx.Request.Header.SetHost("www.example.com")
	ctx.Request.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36")
	ctx.Request.Header.Set("Accept", "*/*")
	for _, h := range hdrs {
		k, v, _ := strings.Cut(h, ": ")
		ctx.Request.Header.Add(k, v)
	}
	return ctx
}

// TestHitAllocatesNothing is the zero-allocation budget of the request path
// (enforced, not only benchmarked): a fresh hit, with and without Vary, a 304 to a
// conditional request and a range must not allocate in steady state.
func TestHitAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	c, err := New(Options{MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := c.NewPolicy(PolicyOptions{Route: "static"})
	body := []byte(strings.Repeat("x", 4096))
	tests := []struct {
		name  string
		fetch Fetcher
		hdrs  []string
		want  int
	}{
		{"plain", staticFetcher(body), nil, 200},
		{"vary", staticFetcher(body, "Vary: Accept-Encoding, Origin"), []string{"Accept-Encoding: gzip, br", "Origin: https://a.example"}, 200},
		{"if-none-match", staticFetcher(body), []string{`If-None-Match: "5f3a-1a2b3c"`}, 304},
		{"range", staticFetcher(body), []string{"Range: bytes=100-199"}, 206},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := newCtx("/assets/app-"+strconv.Itoa(i)+".js?v=3", tt.hdrs...)
			if r := c.Serve(ctx, p, tt.fetch); r != Miss {
				t.Fatalf("first request: %v, want miss", r)
			}
			serve := func() {
				ctx.Response.Reset()
				if r := c.Serve(ctx, p, tt.fetch); r != Hit {
					t.Fatalf("result %v, want hit", r)
				}
			}
			serve()
			if ctx.Response.StatusCode() != tt.want {
				t.Fatalf("status %d, want %d", ctx.Response.StatusCode(), tt.want)
			}
			if n := testing.AllocsPerRun(1000, serve); n != 0 {
				t.Fatalf("hit allocates %v times, want 0", n)
			}
		})
	}
}

// BenchmarkHit measures a fresh hit on one hot URL from every core: the
// worst case for contention (one shard, one entry).
func BenchmarkHit(b *testing.B) {
	c, err := New(Options{MaxBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	p := c.NewPolicy(PolicyOptions{Route: "static"})
	fetch := staticFetcher([]byte(strings.Repeat("x", 4096)))
	c.Serve(newCtx("/assets/app.js"), p, fetch)
	var misses atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := newCtx("/assets/app.js")
		for pb.Next() {
			ctx.Response.Reset()
			if c.Serve(ctx, p, fetch) != Hit {
				misses.Add(1)
			}
		}
	})
	if misses.Load() != 0 {
		b.Fatalf("%d requests were not hits", misses.Load())
	}
}

// BenchmarkHitSerial measures one hit at a time on one core: the latency
// the cache adds to a request.
func BenchmarkHitSerial(b *testing.B) {
	c, err := New(Options{MaxBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	p := c.NewPolicy(PolicyOptions{Route: "static"})
	fetch := staticFetcher([]byte(strings.Repeat("x", 4096)))
	ctx := newCtx("/assets/app.js")
	c.Serve(ctx, p, fetch)
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset()
		if c.Serve(ctx, p, fetch) != Hit {
			b.Fatal("not a hit")
		}
	}
}

// BenchmarkHitSpread measures hits spread over 4096 URLs, the usual case.
func BenchmarkHitSpread(b *testing.B) {
	const n = 4096
	c, err := New(Options{MaxBytes: 256 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	p := c.NewPolicy(PolicyOptions{Route: "static"})
	fetch := staticFetcher([]byte(strings.Repeat("x", 4096)))
	uris := make([]string, n)
	for i := range uris {
		uris[i] = "/assets/chunk-" + strconv.Itoa(i) + ".js"
		c.Serve(newCtx(uris[i]), p, fetch)
	}
	var seq atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(seq.Add(997))
		ctxs := make([]*fasthttp.RequestCtx, 64)
		for j := range ctxs {
			ctxs[j] = newCtx(uris[(i+j*61)%n])
		}
		j := 0
		for pb.Next() {
			ctx := ctxs[j%len(ctxs)]
			j++
			ctx.Response.Reset()
			if c.Serve(ctx, p, fetch) != Hit {
				b.Error("not a hit")
			}
		}
	})
}

// BenchmarkHitVary measures a hit on a URL whose response varies on two
// request fields.
func BenchmarkHitVary(b *testing.B) {
	c, err := New(Options{MaxBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	p := c.NewPolicy(PolicyOptions{Route: "static"})
	fetch := staticFetcher([]byte(strings.Repeat("x", 4096)), "Vary: Accept-Encoding, Origin")
	hdrs := []string{"Accept-Encoding: gzip, deflate, br", "Origin: https://a.example"}
	c.Serve(newCtx("/api/list", hdrs...), p, fetch)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := newCtx("/api/list", hdrs...)
		for pb.Next() {
			ctx.Response.Reset()
			if c.Serve(ctx, p, fetch) != Hit {
				b.Error("not a hit")
			}
		}
	})
}

// BenchmarkMissStore measures a miss that stores a 4 KiB response (each
// iteration a new URL), eviction included once the budget is full.
func BenchmarkMissStore(b *testing.B) {
	c, err := New(Options{MaxBytes: 16 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	p := c.NewPolicy(PolicyOptions{Route: "static"})
	fetch := staticFetcher([]byte(strings.Repeat("x", 4096)))
	ctx := newCtx("/")
	var buf []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		buf = strconv.AppendInt(append(buf[:0], "/m/"...), int64(i), 10)
		ctx.Request.SetRequestURIBytes(buf)
		ctx.Response.Reset()
		c.Serve(ctx, p, fetch)
	}
}
