package cache

import (
	"fmt"
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
			h.setScript(func(n int, _ seenReq) originResp {
				return originResp{headers: []string{"Cache-Control: max-age=1, stale-while-revalidate=600"}, body: "shared"}
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
				if r.get("If-None-Match") != "" {
					return originResp{status: 304, headers: []string{"Cache-Control: max-age=1", `ETag: "v1"`}}
				}
				return originResp{headers: []string{"Cache-Control: max-age=1", `ETag: "v1"`}, body: "shared"}
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
