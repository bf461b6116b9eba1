package cache

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// Hostile clients and backends against the cache, over the harness's real
// sockets.

// TestRefreshForOneClientKeepsSharedEntry: a client whose own request forbids
// storing the answer (Cache-Control: no-store, or Authorization without a
// response directive that allows sharing it) found a stale entry with
// stale-while-revalidate. The background refresh sent its request, could not
// store the answer for reasons of that request alone, and removed the shared
// entry: any client could empty the cache of such entries, one request each.
func TestRefreshForOneClientKeepsSharedEntry(t *testing.T) {
	for _, hdr := range []string{"Cache-Control: no-store", "Authorization: Bearer x"} {
		t.Run(hdr, func(t *testing.T) {
			h := newHarness(t, harnessOpts{})
			// public for anonymous requests, so that it may serve one with
			// Authorization (RFC 9111 §3.5); the origin's answer to that one
			// is not public.
			h.setScript(func(n int, r seenReq) originResp {
				cc := "max-age=1, stale-while-revalidate=600"
				if r.get("Authorization") == "" {
					cc = "public, " + cc
				}
				return originResp{headers: []string{"Cache-Control: " + cc}, body: "shared"}
			})
			h.get("/s")
			h.clock.Advance(5 * time.Second)
			if a := h.get("/s", hdr); a.result != "stale" || a.body != "shared" {
				t.Fatalf("%s: got %s %q, want the stale response", hdr, a.result, a.body)
			}
			h.cache.bg.Wait()
			if a := h.get("/s"); a.result != "stale" && a.result != "hit" {
				t.Fatalf("after %s's refresh: %s (Cache-Status %q): the shared entry is gone",
					hdr, a.result, a.get("Cache-Status"))
			}
		})
	}
}

// TestValidationForOneClientKeepsSharedEntry: the same through a foreground
// validation: a stale entry with a validator, a client with Authorization or
// no-store, and a 304: the freshened answer could not be stored for that
// request, and the shared entry was removed.
func TestValidationForOneClientKeepsSharedEntry(t *testing.T) {
	for _, hdr := range []string{"Cache-Control: no-store", "Authorization: Bearer x"} {
		t.Run(hdr, func(t *testing.T) {
			h := newHarness(t, harnessOpts{})
			h.setScript(func(n int, r seenReq) originResp {
				cc := "Cache-Control: max-age=1"
				if r.get("Authorization") == "" {
					cc = "Cache-Control: public, max-age=1"
				}
				if r.get("If-None-Match") != "" {
					return originResp{status: 304, headers: []string{cc, `ETag: "v1"`}}
				}
				return originResp{headers: []string{cc, `ETag: "v1"`}, body: "shared"}
			})
			h.get("/s")
			h.clock.Advance(5 * time.Second)
			if a := h.get("/s", hdr); a.body != "shared" || a.origin != 1 {
				t.Fatalf("%s: got %s %q (%d origin requests), want the validated response", hdr, a.result, a.body, a.origin)
			}
			if a := h.get("/s", "Cache-Control: only-if-cached, max-stale"); a.status != 200 || a.body != "shared" {
				t.Fatalf("after %s's validation: %d %q (Cache-Status %q): the shared entry is gone",
					hdr, a.status, a.body, a.get("Cache-Status"))
			}
		})
	}
}

// TestIfRangeNotStrippedFromRange: on a miss the cache removed the client's
// If-Range but forwarded its Range: the origin, no longer asked whether the
// client's copy is current, sent a 206 of its new representation, which the
// client spliced into its old one. If-Range goes with Range, or neither goes.
func TestIfRangeNotStrippedFromRange(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.setScript(func(n int, r seenReq) originResp {
		cur := `"new"`
		if rg := r.get("Range"); rg == "bytes=0-1" && (r.get("If-Range") == "" || r.get("If-Range") == cur) {
			return originResp{status: 206, headers: []string{"Cache-Control: max-age=60", "ETag: " + cur, "Content-Range: bytes 0-1/8"}, body: "NE"}
		}
		return originResp{headers: []string{"Cache-Control: max-age=60", "ETag: " + cur}, body: "NEWBYTES"}
	})
	a := h.get("/f", "Range: bytes=0-1", `If-Range: "old"`)
	if a.status == 206 {
		t.Fatalf("Range with a stale If-Range got 206 %q of the new representation (origin saw If-Range %q)",
			a.body, h.lastSeen().get("If-Range"))
	}
	if a.status != 200 || a.body != "NEWBYTES" {
		t.Fatalf("got %d %q, want the whole new representation", a.status, a.body)
	}
	// With the current validator, the range is served (from the stored response).
	if a := h.get("/f", "Range: bytes=0-1", `If-Range: "new"`); a.status != 206 || a.body != "NE" {
		t.Fatalf("If-Range matching: %d %q, want 206 \"NE\"", a.status, a.body)
	}
}

// TestPurgeDuringFillIsNotUndone: a purge that runs while a miss is being
// fetched must not be undone by that fetch storing what the origin sent before
// the purge (the operator purges after changing the content: the in-flight
// answer may be the old content). The same for a 304 that would re-publish a
// purged entry, and for an unsafe request's invalidation (RFC 9111 §4.4).
func TestPurgeDuringFillIsNotUndone(t *testing.T) {
	purges := map[string]func(h *harness){
		"Purge":      func(h *harness) { h.cache.Purge("", "/p") },
		"PurgeKey":   func(h *harness) { h.cache.PurgeKey("example.test", "/p") },
		"PurgeWhere": func(h *harness) { h.cache.PurgeKey("", "/p") },
		"POST": func(h *harness) {
			h.setScript(func(int, seenReq) originResp { return originResp{body: "posted"} })
			h.do("POST", "/p")
		},
	}
	for name, purge := range purges {
		for _, revalidate := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/revalidate=%v", name, revalidate), func(t *testing.T) {
				h := newHarness(t, harnessOpts{})
				if revalidate {
					h.setScript(func(int, seenReq) originResp {
						return originResp{headers: []string{"Cache-Control: max-age=1", `ETag: "old"`}, body: "old"}
					})
					h.get("/p")
					h.clock.Advance(5 * time.Second)
				}
				entered := make(chan struct{})
				release := make(chan struct{})
				h.setScript(func(int, seenReq) originResp {
					close(entered)
					if revalidate {
						return originResp{status: 304, headers: []string{"Cache-Control: max-age=600", `ETag: "old"`}, hold: release}
					}
					return originResp{headers: []string{"Cache-Control: max-age=600"}, body: "old", hold: release}
				})
				done := make(chan answer)
				go func() { done <- h.get("/p") }()
				<-entered
				purge(h)
				close(release)
				if a := <-done; a.body != "old" {
					t.Fatalf("the fetching client: %d %q", a.status, a.body)
				}
				if a := h.get("/p", "Cache-Control: only-if-cached, max-stale"); a.status != 504 {
					t.Fatalf("after the purge: %d %q (Cache-Status %q): the in-flight fetch undid the purge",
						a.status, a.body, a.get("Cache-Status"))
				}
			})
		}
	}
}

// TestUnstorableReplacementDropsOldEntry: the origin answered a validation (or
// a client's no-cache reload) of a stored response with a full response that
// may not be stored (no-store, private): the old response stayed, and was
// served again as fresh (after a reload) or stale (max-stale, stale-if-error),
// though the origin had replaced it. The background refresh already dropped it.
func TestUnstorableReplacementDropsOldEntry(t *testing.T) {
	for _, tc := range []struct {
		name    string
		maxAge  string
		reqHdr  []string
		advance time.Duration
		newCC   string
	}{
		{"stale/no-store", "max-age=1", nil, 5 * time.Second, "no-store"},
		{"stale/private", "max-age=1", nil, 5 * time.Second, "private, max-age=60"},
		{"reload/no-store", "max-age=600", []string{"Cache-Control: no-cache"}, 0, "no-store"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{})
			h.setScript(func(int, seenReq) originResp {
				return originResp{headers: []string{"Cache-Control: " + tc.maxAge, `ETag: "v1"`}, body: "v1"}
			})
			h.get("/u")
			h.clock.Advance(tc.advance)
			h.setScript(func(int, seenReq) originResp {
				return originResp{headers: []string{"Cache-Control: " + tc.newCC, `ETag: "v2"`}, body: "v2"}
			})
			if a := h.get("/u", tc.reqHdr...); a.body != "v2" || a.origin != 1 {
				t.Fatalf("the request that reached the origin: %q (%d origin requests)", a.body, a.origin)
			}
			if a := h.get("/u", "Cache-Control: max-stale"); a.body != "v2" {
				t.Fatalf("next request: %q (Cache-Status %q): the replaced response was served", a.body, a.get("Cache-Status"))
			}
		})
	}
}

// TestHostileNumbers: freshness and age values at and past every limit
// (negative, huge, overflowing int64, repeated, malformed) neither panic nor
// make a response fresh that must not be, nor a fresh one stale.
func TestHostileNumbers(t *testing.T) {
	huge := "99999999999999999999999999999"
	for _, tc := range []struct {
		hdrs  []string
		fresh bool // served from the store after 10s
	}{
		{[]string{"Cache-Control: max-age=" + huge}, true},
		{[]string{"Cache-Control: s-maxage=" + huge + ", max-age=0"}, true},
		{[]string{"Cache-Control: max-age=-1"}, false},
		{[]string{"Cache-Control: max-age=60", "Age: " + huge}, false},
		{[]string{"Cache-Control: max-age=60", "Age: -5"}, true},
		{[]string{"Cache-Control: max-age=60", "Age: 5, 9999999"}, true},
		{[]string{"Cache-Control: max-age=" + huge + ", stale-while-revalidate=" + huge + ", stale-if-error=" + huge}, true},
		{[]string{"Cache-Control: max-age=0, stale-while-revalidate=" + huge, `ETag: "e"`}, false},
		// Both the age and the lifetime are past 2^31 s, which is "forever":
		// not fresh, so not stored.
		{[]string{"Expires: Fri, 31 Dec 9999 23:59:59 GMT", "Date: Mon, 01 Jan 0001 00:00:00 GMT"}, false},
		{[]string{"Expires: Mon, 01 Jan 0001 00:00:00 GMT", "Date: Fri, 31 Dec 9999 23:59:59 GMT"}, false},
		{[]string{"Cache-Control: max-age=60", "Date: Fri, 31 Dec 9999 23:59:59 GMT"}, true},
		{[]string{"Cache-Control: max-age=60", "Date: Mon, 01 Jan 0001 00:00:00 GMT"}, false},
		{[]string{"Last-Modified: Mon, 01 Jan 0001 00:00:00 GMT"}, true},
	} {
		h := newHarness(t, harnessOpts{policy: PolicyOptions{MaxStale: time.Duration(1<<63 - 1)}})
		h.setScript(func(int, seenReq) originResp { return originResp{headers: tc.hdrs, body: "x"} })
		h.get("/n")
		h.clock.Advance(10 * time.Second)
		a := h.get("/n")
		if got := a.result == "hit"; got != tc.fresh {
			t.Errorf("%q: after 10s %s (Cache-Status %q), want fresh=%v", tc.hdrs, a.result, a.get("Cache-Status"), tc.fresh)
		}
		if a.status != 200 || a.body != "x" {
			t.Errorf("%q: %d %q", tc.hdrs, a.status, a.body)
		}
		if age := a.get("Age"); strings.HasPrefix(age, "-") {
			t.Errorf("%q: Age %q", tc.hdrs, age)
		}
		h.cache.ServeStale(newCtx("/n"), h.policy)
	}
}

// TestAccountingReturnsToZero: after a storm of fills, variants, markers,
// revalidations, background refreshes, evictions, unsafe invalidations and
// purges racing one another, purging everything leaves 0 bytes and 0 objects.
func TestAccountingReturnsToZero(t *testing.T) {
	h := newHarness(t, harnessOpts{maxBytes: 64 << 10})
	h.setScript(func(n int, r seenReq) originResp {
		switch n % 7 {
		case 0:
			return originResp{headers: []string{"Cache-Control: no-store"}, body: "ns"}
		case 1:
			if r.get("If-None-Match") != "" {
				return originResp{status: 304, headers: []string{"Cache-Control: max-age=1", `ETag: "e"`}}
			}
			return originResp{headers: []string{"Cache-Control: max-age=1", `ETag: "e"`}, body: strings.Repeat("e", n%3000)}
		case 2:
			return originResp{headers: []string{"Cache-Control: max-age=0, stale-while-revalidate=60"}, body: "swr"}
		case 3:
			return originResp{headers: []string{"Cache-Control: max-age=60", "Vary: X-V"}, body: strings.Repeat("v", n%5000)}
		case 4:
			return originResp{status: 500, body: "err"}
		default:
			return originResp{headers: []string{"Cache-Control: max-age=60"}, body: strings.Repeat("p", n%9000)}
		}
	})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				uri := fmt.Sprintf("/a/%d", (i*7+w)%40)
				switch i % 11 {
				case 0:
					h.do("POST", uri)
				case 1:
					h.do("HEAD", uri)
				default:
					h.get(uri, fmt.Sprintf("X-V: %d", i%5))
				}
				if i%13 == 0 {
					h.clock.Advance(700 * time.Millisecond)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				h.cache.Purge("", "/a/1")
			} else {
				h.cache.PurgeKey("example.test", fmt.Sprintf("/a/%d", i%40))
			}
			h.cache.sweep(h.clock.Now().UnixNano())
		}
	}()
	time.AfterFunc(time.Second, func() { close(stop) })
	wg.Wait()
	h.cache.bg.Wait()
	st := h.cache.Stats()
	if st.Bytes > 64<<10 {
		t.Errorf("accounted %d bytes, over the 64 KiB budget", st.Bytes)
	}
	h.cache.Purge("", "/")
	if st := h.cache.Stats(); st.Bytes != 0 || st.Objects != 0 {
		t.Fatalf("after purging everything: %d bytes, %d objects accounted", st.Bytes, st.Objects)
	}
}

// TestPurgeDuringRefreshIsNotUndone: the same for a background
// stale-while-revalidate refresh in flight when the purge runs.
func TestPurgeDuringRefreshIsNotUndone(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.setScript(func(int, seenReq) originResp {
		return originResp{headers: []string{"Cache-Control: max-age=1, stale-while-revalidate=600"}, body: "old"}
	})
	h.get("/r")
	h.clock.Advance(5 * time.Second)
	entered := make(chan struct{})
	release := make(chan struct{})
	h.setScript(func(int, seenReq) originResp {
		close(entered)
		return originResp{headers: []string{"Cache-Control: max-age=600"}, body: "old", hold: release}
	})
	if a := h.get("/r"); a.result != "stale" {
		t.Fatalf("got %s, want a stale hit", a.result)
	}
	<-entered
	h.cache.Purge("", "/r")
	close(release)
	h.cache.bg.Wait()
	if a := h.get("/r", "Cache-Control: only-if-cached, max-stale"); a.status != 504 {
		t.Fatalf("after the purge: %d %q (Cache-Status %q): the refresh undid the purge", a.status, a.body, a.get("Cache-Status"))
	}
}

// TestQualifiedPrivateOverflow: the field lists of qualified private="..."
// and no-cache="..." directives are kept in fixed arrays of four; a fifth
// directive was dropped, and the fields it named were stored and served to
// every client (private) or without revalidation (no-cache). Past the arrays'
// room the directive counts as unqualified, which RFC 9111 §5.2.2.4 and
// §5.2.2.7 allow.
func TestQualifiedPrivateOverflow(t *testing.T) {
	for _, dir := range []string{"private", "no-cache"} {
		t.Run(dir, func(t *testing.T) {
			h := newHarness(t, harnessOpts{})
			var list []string
			for _, f := range []string{"X-A", "X-B", "X-C", "X-D", "X-Secret"} {
				list = append(list, dir+`="`+f+`"`)
			}
			h.setScript(func(n int, _ seenReq) originResp {
				return originResp{headers: []string{
					"Cache-Control: max-age=60, " + strings.Join(list, ", "),
					"X-Secret: token-" + fmt.Sprint(n),
				}, body: "page"}
			})
			if a := h.get("/q"); a.get("X-Secret") != "token-1" {
				t.Fatalf("first client: X-Secret %q", a.get("X-Secret"))
			}
			if a := h.get("/q"); a.get("X-Secret") == "token-1" {
				t.Fatalf("second client got the first one's X-Secret (%s, Cache-Status %q)", a.result, a.get("Cache-Status"))
			}
		})
	}
}

// TestManyConnectionLines: a response whose Connection field lines name more
// fields than the four lines respMeta keeps: the fields named on the fifth line
// were neither dropped from the stored response nor from the client's answer,
// although they are hop-by-hop (RFC 9110 §7.6.1).
func TestManyConnectionLines(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.setScript(func(n int, _ seenReq) originResp {
		return originResp{headers: []string{
			"Cache-Control: max-age=60",
			"Connection: X-A", "Connection: X-B", "Connection: X-C", "Connection: X-D", "Connection: X-Hop",
			"X-A: a", "X-Hop: hop",
		}, body: "page"}
	})
	for i := range 2 {
		a := h.get("/c")
		if a.get("X-Hop") != "" || a.get("X-A") != "" {
			t.Errorf("answer %d (%s): hop-by-hop fields reached the client: X-A %q, X-Hop %q", i, a.result, a.get("X-A"), a.get("X-Hop"))
		}
	}
}

// TestManyCDNCacheControlLines: more CDN-Cache-Control lines than the cache
// keeps made it ignore the field and follow Cache-Control, which the origin
// meant for other caches: a response the origin told this cache not to store
// ("CDN-Cache-Control: no-store" on the fifth line) was stored. Too many lines
// now mean not stored.
func TestManyCDNCacheControlLines(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.setScript(func(n int, _ seenReq) originResp {
		return originResp{headers: []string{
			"Cache-Control: public, max-age=600",
			"CDN-Cache-Control: a", "CDN-Cache-Control: b", "CDN-Cache-Control: c", "CDN-Cache-Control: d",
			"CDN-Cache-Control: no-store",
		}, body: fmt.Sprint("v", n)}
	})
	h.get("/cdn")
	if a := h.get("/cdn"); a.body != "v2" {
		t.Fatalf("second request: %s %q (Cache-Status %q): stored despite CDN-Cache-Control: no-store", a.result, a.body, a.get("Cache-Status"))
	}
}

// TestAuthorizationRequestNotServedUnlessShared: a request with Authorization
// was answered from a response stored for an anonymous request, though only
// public, s-maxage or must-revalidate say a shared cache may use a stored
// response for such a request (RFC 9111 §3.5). An anonymous request could thus
// decide what every authenticated client got, such as a "please log in" page or
// a 401 with max-age, for its whole lifetime.
func TestAuthorizationRequestNotServedUnlessShared(t *testing.T) {
	for _, tc := range []struct {
		cc     string
		shared bool
	}{
		{"max-age=60", false},
		{"max-age=60, proxy-revalidate", false},
		{"public, max-age=60", true},
		{"s-maxage=60", true},
		{"max-age=60, must-revalidate", true},
	} {
		t.Run(tc.cc, func(t *testing.T) {
			h := newHarness(t, harnessOpts{})
			h.setScript(func(n int, r seenReq) originResp {
				who := "anon"
				if a := r.get("Authorization"); a != "" {
					who = a
				}
				return originResp{headers: []string{"Cache-Control: " + tc.cc}, body: who}
			})
			if a := h.get("/me"); a.body != "anon" {
				t.Fatalf("anonymous: %q", a.body)
			}
			a := h.get("/me", "Authorization: alice")
			if tc.shared {
				if a.result != "hit" || a.body != "anon" {
					t.Fatalf("with Authorization: %s %q, want the shared stored response", a.result, a.body)
				}
				return
			}
			if a.body != "alice" || a.origin != 1 {
				t.Fatalf("with Authorization: %s %q (Cache-Status %q), want the origin's answer", a.result, a.body, a.get("Cache-Status"))
			}
			if a := h.get("/me"); a.result != "hit" || a.body != "anon" {
				t.Fatalf("anonymous again: %s %q, want the stored response, untouched", a.result, a.body)
			}
		})
	}
}
