package capture

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestSegmentsDeletedOnceResolved(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.SegmentBytes = minSegmentBytes })
	var recs []*Record
	for i := 0; i < 60; i++ {
		r := order("shop", i, 300)
		h.append(r)
		recs = append(recs, r)
	}
	first := h.J.Stats().Segments
	if first < 10 {
		t.Fatalf("only %d segments", first)
	}
	for _, r := range recs[:30] {
		if err := h.J.MarkDelivered(r.ID); err != nil {
			t.Fatal(err)
		}
	}
	h.waitFor("old segments deleted", func() bool {
		n := h.J.Stats().Segments
		return n < first && len(h.segFiles()) == n
	})
	files := h.segFiles()
	if filepath.Base(files[0]) == segName(1) {
		t.Fatal("first segment kept")
	}
	check := func() {
		t.Helper()
		got := h.J.Pending("shop", 0)
		if len(got) != 30 {
			t.Fatalf("%d pending, want 30", len(got))
		}
		for i, r := range got {
			sameRecord(t, r, recs[30+i])
		}
	}
	check()
	h.reopen() // a restart after deletions recovers the rest
	check()
	h.append(order("shop", 100, 300))
	for _, r := range h.J.Pending("shop", 0) {
		if err := h.J.MarkDelivered(r.ID); err != nil {
			t.Fatal(err)
		}
	}
	h.waitFor("every sealed segment deleted", func() bool { return h.J.Stats().Segments == 1 && len(h.segFiles()) == 1 })
	h.reopen()
	if s := h.J.Stats(); s.Pending != 0 || s.DeadLetters != 0 || s.Segments != 1 {
		t.Fatalf("after reopen %+v", s)
	}
	if _, _, ok := h.J.Get(recs[0].ID); ok {
		t.Fatal("a record of a deleted segment is still known")
	}
	h.append(order("shop", 200, 300))
}

// A segment holding an idempotency key younger than KeyRetention is kept even
// once resolved, so that a resubmission is still recognised after a restart.
func TestKeyRetentionKeepsSegments(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	h := newHarness(t, func(o *Options) {
		o.SegmentBytes = minSegmentBytes
		o.KeyRetention = time.Hour
		o.Now = func() time.Time { return time.Unix(0, now.Load()) }
	})
	var keyed []*Record
	for i := 0; i < 20; i++ {
		r := order("shop", i, 300)
		r.Time = time.Time{} // captured now
		r.IdemKey = "key-" + r.Target
		h.append(r)
		keyed = append(keyed, r)
	}
	for _, r := range keyed {
		if err := h.J.MarkDelivered(r.ID); err != nil {
			t.Fatal(err)
		}
	}
	segs := h.J.Stats().Segments
	h.reopen()
	if id, dup, _ := h.J.Append(keyed[0]); !dup || id != keyed[0].ID {
		t.Fatal("key forgotten within its retention")
	}
	if h.J.Stats().Segments != segs {
		t.Fatal("segments with live keys deleted")
	}

	now.Add(int64(time.Hour + time.Second))
	h.append(order("shop", 99, 10)) // any commit runs a sweep
	h.waitFor("expired segments deleted", func() bool { return h.J.Stats().Segments == 1 })
	if _, dup, _ := h.J.Append(keyed[0]); dup {
		t.Fatal("key remembered after its retention and its segment are gone")
	}
}

// A few dead letters (or stuck records) in an old segment are carried
// forward so that it can be deleted; they keep their state across restarts.
func TestCompactionCarriesLiveRecords(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.SegmentBytes = 2 * minSegmentBytes })
	var recs []*Record
	for i := 0; i < 80; i++ {
		r := order("shop", i, 40)
		h.append(r)
		recs = append(recs, r)
	}
	dead, stuck := recs[0], recs[1]
	if err := h.J.MarkDead(dead.ID, "backend answered 422"); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs[2:70] {
		if err := h.J.MarkDelivered(r.ID); err != nil {
			t.Fatal(err)
		}
	}
	h.waitFor("first segment carried forward and deleted", func() bool {
		_, err := os.Stat(filepath.Join(h.dir, segName(1)))
		return os.IsNotExist(err)
	})
	if !strings.Contains(h.logs.String(), "carrying live records forward") {
		t.Fatalf("no carry logged:\n%s", h.logs)
	}
	check := func(when string) {
		t.Helper()
		dl := h.J.DeadLetters()
		if len(dl) != 1 || dl[0].ID != dead.ID || dl[0].Reason != "backend answered 422" {
			t.Fatalf("%s: dead letters %+v", when, dl)
		}
		got := h.J.Pending("shop", 0)
		want := append([]*Record{stuck}, recs[70:]...)
		if len(got) != len(want) {
			t.Fatalf("%s: %d pending, want %d", when, len(got), len(want))
		}
		for i := range got {
			sameRecord(t, got[i], want[i])
		}
		r, st, ok := h.J.Get(dead.ID)
		if !ok || st != StatusDead {
			t.Fatalf("%s: dead letter %v %v", when, st, ok)
		}
		sameRecord(t, r, dead)
	}
	check("live")
	h.reopen()
	check("after reopen")
	if err := h.J.Retry(dead.ID); err != nil {
		t.Fatal(err)
	}
	if got := h.J.Pending("shop", 1); got[0].ID != dead.ID {
		t.Fatalf("retried dead letter not first in capture order: %s", got[0].ID)
	}
	h.reopen()
	if got := h.J.Pending("shop", 1); got[0].ID != dead.ID {
		t.Fatal("retry of a carried record lost on reopen")
	}
}
