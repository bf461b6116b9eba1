package cache

import (
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
