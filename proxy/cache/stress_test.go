package cache

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// checkInvariants verifies that the accounting matches the index: every
// entry in a variant chain is in exactly one LRU list, the lists' byte and
// entry counts match, and the global byte count is their sum.
func (c *Cache) checkInvariants(t *testing.T) {
	t.Helper()
	var total, objects int64
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		var bytes [2]int64
		var n [2]int
		inList := map[*entry]bool{}
		for seg := range 2 {
			for e := s.lists[seg].head; e != nil; e = e.next {
				bytes[seg] += e.size
				n[seg]++
				inList[e] = true
				if e.seg != uint8(seg) {
					t.Errorf("shard %d: entry in list %d says segment %d", i, seg, e.seg)
				}
			}
		}
		if bytes != s.bytes || n != s.n {
			t.Errorf("shard %d: lists hold %v bytes / %v entries, counters say %v / %v", i, bytes, n, s.bytes, s.n)
		}
		chained := 0
		for k, head := range s.m {
			if k != head.keyString() {
				t.Errorf("shard %d: map key %q heads a chain for %q", i, k, head.keyString())
			}
			for v := head; v != nil; v = v.alt {
				chained++
				if !inList[v] {
					t.Errorf("shard %d: %q is indexed but not in a list", i, v.key())
				}
				if !v.isMarker() {
					objects++
				}
			}
		}
		if chained != len(inList) {
			t.Errorf("shard %d: %d entries indexed, %d listed", i, chained, len(inList))
		}
		total += bytes[0] + bytes[1]
		s.mu.RUnlock()
	}
	if total != c.bytes.Load() || objects != c.objects.Load() {
		t.Errorf("index holds %d bytes / %d objects, accounted %d / %d", total, objects, c.bytes.Load(), c.objects.Load())
	}
	if c.bytes.Load() > c.max {
		t.Errorf("accounted %d > budget %d", c.bytes.Load(), c.max)
	}
}

// TestStress runs hits, misses, variants, invalidations, purges, degraded
// reads and evictions from many goroutines at once (run it with -race),
// then checks the index is consistent and every answer was well-formed.
func TestStress(t *testing.T) {
	for _, wait := range []time.Duration{-1, 0} {
		t.Run("coalesce "+wait.String(), func(t *testing.T) { stress(t, wait) })
	}
}

func stress(t *testing.T, coalesce time.Duration) {
	c, err := New(Options{MaxBytes: 96 << 10, CoalesceWait: coalesce})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := c.NewPolicy(PolicyOptions{Route: "stress", MaxStale: 60_000_000_000})
	fetch := func(req *fasthttp.Request, resp *fasthttp.Response) error {
		uri := string(req.Header.RequestURI())
		resp.Header.Set("Cache-Control", "max-age=60")
		resp.Header.Set("ETag", `"`+uri+`"`)
		if strings.HasPrefix(uri, "/v/") {
			resp.Header.Set("Vary", "Accept-Language")
		}
		resp.SetBodyString("body of " + uri + " " + string(req.Header.Peek("Accept-Language")) + strings.Repeat(".", len(uri)*20))
		return nil
	}
	const workers = 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			ctx := newCtx("/")
			for range 3000 {
				n := rng.IntN(300)
				uri := "/s/" + strconv.Itoa(n)
				if n%3 == 0 {
					uri = "/v/" + strconv.Itoa(n)
				}
				ctx.Request.Reset()
				ctx.Request.Header.SetMethod("GET")
				ctx.Request.SetRequestURI(uri)
				ctx.Request.Header.SetHost("www.example.com")
				lang := []string{"en", "fr", "de"}[rng.IntN(3)]
				ctx.Request.Header.Set("Accept-Language", lang)
				ctx.Response.Reset()
				switch op := rng.IntN(100); {
				case op < 85:
					c.Serve(ctx, p, fetch)
					body := string(ctx.Response.Body())
					if !strings.HasPrefix(body, "body of "+uri+" ") {
						t.Errorf("GET %s got %.40q", uri, body)
					}
					if strings.HasPrefix(uri, "/v/") && !strings.HasPrefix(body, "body of "+uri+" "+lang) {
						t.Errorf("GET %s (%s) got another variant %.40q", uri, lang, body)
					}
				case op < 92:
					ctx.Request.Header.SetMethod("POST")
					c.Serve(ctx, p, fetch)
				case op < 97:
					if c.ServeStale(ctx, p) && !strings.HasPrefix(string(ctx.Response.Body()), "body of "+uri) {
						t.Errorf("ServeStale %s got %.40q", uri, ctx.Response.Body())
					}
				case op < 99:
					c.PurgeKey("www.example.com", uri)
				default:
					c.Purge("www.example.com", "/s/1")
				}
			}
		}()
	}
	wg.Wait()
	c.checkInvariants(t)
	if st := c.Stats(); st.Evicted == 0 || st.Hits == 0 {
		t.Errorf("stress did not exercise eviction and hits: %+v", st)
	}
}
