package capture

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRoundTrip(t *testing.T) {
	h := newHarness(t, nil)
	var want []*Record
	for i := 0; i < 20; i++ {
		r := order("shop", i, 100+i*37)
		if i%3 == 0 {
			r.IdemKey = fmt.Sprintf("key-%d", i)
		}
		if i == 5 {
			r.Header, r.Body, r.Client = nil, nil, "" // empty fields survive too
		}
		if i == 6 {
			r.Body = []byte{0, 1, 2, 0xff, '\r', '\n'} // binary bodies too
		}
		h.append(r)
		if len(r.ID) != idLen {
			t.Fatalf("Append did not set r.ID: %q", r.ID)
		}
		want = append(want, r)
	}
	check := func() {
		t.Helper()
		for _, w := range want {
			got, st, ok := h.J.Get(w.ID)
			if !ok || st != StatusPending {
				t.Fatalf("Get(%s) = %v, %v", w.ID, st, ok)
			}
			sameRecord(t, got, w)
		}
		p := h.J.Pending("shop", 0)
		if len(p) != len(want) {
			t.Fatalf("Pending = %d records, want %d", len(p), len(want))
		}
		for i := range p {
			sameRecord(t, p[i], want[i])
		}
		if got := h.J.Pending("shop", 3); len(got) != 3 || got[0].ID != want[0].ID {
			t.Fatalf("Pending(max 3) = %v", ids(got))
		}
	}
	check()
	h.reopen()
	check()
	if _, _, ok := h.J.Get("nope"); ok {
		t.Fatal("Get of an unknown id succeeded")
	}
}

func TestAppendSetsTime(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	h := newHarness(t, func(o *Options) { o.Now = func() time.Time { return now } })
	r := &Record{Pool: "shop", Method: "POST", Target: "/checkout"}
	id := h.append(r)
	if !r.Time.Equal(now) {
		t.Fatalf("r.Time = %v", r.Time)
	}
	got, _, _ := h.J.Get(id)
	if !got.Time.Equal(now) {
		t.Fatalf("stored time %v", got.Time)
	}
	if ms := idMillis(id); ms != uint64(now.UnixMilli()) {
		t.Fatalf("id %s has ms %d, want %d", id, ms, now.UnixMilli())
	}
}

// Capture order per pool is the order in which Append calls were accepted;
// ids sort in that order, across restarts too.
func TestOrderPerPool(t *testing.T) {
	h := newHarness(t, nil)
	pools := []string{"a", "b", "c"}
	var mu sync.Mutex
	got := map[string][]string{}
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := pools[g%len(pools)]
			for i := 0; i < 50; i++ {
				// One goroutine's appends are sequential: they must come
				// back in the same order.
				id := h.append(order(p, g*1000+i, 64))
				mu.Lock()
				got[p] = append(got[p], id)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	check := func() {
		t.Helper()
		for _, p := range pools {
			pend := ids(h.J.Pending(p, 0))
			if !slices.IsSorted(pend) {
				t.Fatalf("pool %s: pending not in id order", p)
			}
			want := slices.Clone(got[p])
			sort.Strings(want)
			if !slices.Equal(pend, want) {
				t.Fatalf("pool %s: pending %d records, appended %d", p, len(pend), len(want))
			}
		}
	}
	check()
	var before string
	for _, v := range got {
		before = max(before, slices.Max(v))
	}
	h.reopen()
	check()
	if id := h.append(order("a", 9999, 64)); id <= before {
		t.Fatalf("id after reopen %s does not sort after %s", id, before)
	}
	if p := h.J.Pending("a", 0); p[len(p)-1].ID != h.J.Pending("a", 0)[len(p)-1].ID {
		t.Fatal("unstable")
	}
}

func TestIdempotency(t *testing.T) {
	h := newHarness(t, nil)
	r := order("shop", 1, 200)
	r.IdemKey = "k1"
	first := h.append(r)

	r2 := order("shop", 1, 200)
	r2.IdemKey = "k1"
	id, dup, err := h.J.Append(r2)
	if err != nil || !dup || id != first || r2.ID != first {
		t.Fatalf("repeat = %q, %v, %v; want %q, dup", id, dup, err, first)
	}
	if s := h.J.Stats(); s.Appended != 1 || s.Pending != 1 {
		t.Fatalf("a duplicate wrote a record: %+v", s)
	}

	// Same key, different body: refused, not silently merged.
	r3 := order("shop", 2, 200)
	r3.IdemKey = "k1"
	if _, _, err := h.J.Append(r3); !errors.Is(err, ErrKeyConflict) {
		t.Fatalf("conflicting reuse: err = %v", err)
	}
	// Same key on another route: another resource, another order.
	r4 := order("shop", 1, 200)
	r4.IdemKey, r4.Route = "k1", "orders"
	if id := h.append(r4); id == first {
		t.Fatal("key not scoped by route")
	}

	// The live path asks before forwarding a resubmission.
	if id, st, ok := h.J.Lookup("checkout", "k1"); !ok || id != first || st != StatusPending {
		t.Fatalf("Lookup = %q %v %v", id, st, ok)
	}
	if _, _, ok := h.J.Lookup("checkout", "other"); ok {
		t.Fatal("Lookup of an unknown key")
	}

	// Across a restart.
	h.reopen()
	r5 := order("shop", 1, 200)
	r5.IdemKey = "k1"
	if id, dup, err := h.J.Append(r5); err != nil || !dup || id != first {
		t.Fatalf("after reopen = %q, %v, %v", id, dup, err)
	}

	// Delivered: still a duplicate (a client retrying after delivery must
	// not place a second order).
	if err := h.J.MarkDelivered(first); err != nil {
		t.Fatal(err)
	}
	if id, dup, _ := h.J.Append(r5); !dup || id != first {
		t.Fatal("key forgotten on delivery")
	}

	// Discarded: forgotten, a resubmission is a new order.
	r6 := order("shop", 6, 200)
	r6.IdemKey = "k6"
	id6 := h.append(r6)
	if err := h.J.MarkDead(id6, "test"); err != nil {
		t.Fatal(err)
	}
	if err := h.J.Discard(id6); err != nil {
		t.Fatal(err)
	}
	r7 := order("shop", 6, 200)
	r7.IdemKey = "k6"
	id7 := h.append(r7)
	if id7 == id6 {
		t.Fatal("discarded key still deduplicates")
	}
	h.reopen()
	if id, dup, _ := h.J.Append(r7); !dup || id != id7 {
		t.Fatalf("after discard and reopen: %q %v, want %q", id, dup, id7)
	}
}

// Concurrent submissions with one key: exactly one record, one id for all.
func TestIdempotencyConcurrent(t *testing.T) {
	h := newHarness(t, nil)
	const n = 32
	res := make([]string, n)
	var wg sync.WaitGroup
	var dups int
	var mu sync.Mutex
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := order("shop", 1, 300)
			r.IdemKey = "same"
			id, dup, err := h.J.Append(r)
			if err != nil {
				t.Error(err)
			}
			res[i] = id
			if dup {
				mu.Lock()
				dups++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, id := range res {
		if id != res[0] {
			t.Fatalf("different ids for one key: %v", res)
		}
	}
	if dups != n-1 || h.J.Stats().Appended != 1 {
		t.Fatalf("dups = %d, appended = %d", dups, h.J.Stats().Appended)
	}
}

func TestTooLarge(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.MaxRecordBytes = 4096 })
	if _, _, err := h.J.Append(order("shop", 1, 5000)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
	h.append(order("shop", 1, 3500))
	if _, _, err := h.J.Append(&Record{Method: "POST"}); !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("record without pool: %v", err)
	}
}

func TestStateTransitions(t *testing.T) {
	h := newHarness(t, nil)
	a := h.append(order("shop", 1, 10))
	b := h.append(order("shop", 2, 10))
	steps := []struct {
		name string
		do   func(string) error
		id   *string
		want error
		st   Status
	}{
		{"retry pending", h.J.Retry, &a, ErrState, StatusPending},
		{"discard pending", h.J.Discard, &a, ErrState, StatusPending},
		{"deliver", h.J.MarkDelivered, &a, nil, StatusDelivered},
		{"deliver again is a no-op", h.J.MarkDelivered, &a, nil, StatusDelivered},
		{"dead after delivered", func(id string) error { return h.J.MarkDead(id, "x") }, &a, ErrState, StatusDelivered},
		{"dead", func(id string) error { return h.J.MarkDead(id, "backend answered 422") }, &b, nil, StatusDead},
		{"dead twice", func(id string) error { return h.J.MarkDead(id, "x") }, &b, ErrState, StatusDead},
		{"deliver dead", h.J.MarkDelivered, &b, ErrState, StatusDead},
		{"retry", h.J.Retry, &b, nil, StatusPending},
		{"dead again", func(id string) error { return h.J.MarkDead(id, "again") }, &b, nil, StatusDead},
		{"discard", h.J.Discard, &b, nil, StatusDiscarded},
		{"discard again is a no-op", h.J.Discard, &b, nil, StatusDiscarded},
		{"retry discarded", h.J.Retry, &b, ErrState, StatusDiscarded},
	}
	for _, s := range steps {
		err := s.do(*s.id)
		if !errors.Is(err, s.want) || (s.want == nil && err != nil) {
			t.Fatalf("%s: err = %v, want %v", s.name, err, s.want)
		}
		if _, st, _ := h.J.Get(*s.id); st != s.st {
			t.Fatalf("%s: status %v, want %v", s.name, st, s.st)
		}
	}
	if err := h.J.MarkDelivered("unknown"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	h.reopen()
	if _, st, _ := h.J.Get(a); st != StatusDelivered {
		t.Fatalf("after reopen a is %v", st)
	}
	if _, st, _ := h.J.Get(b); st != StatusDiscarded {
		t.Fatalf("after reopen b is %v", st)
	}
	if len(h.J.DeadLetters()) != 0 || h.J.Stats().Pending != 0 {
		t.Fatalf("stats after reopen: %+v", h.J.Stats())
	}
}

func TestDeadLetters(t *testing.T) {
	at := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	h := newHarness(t, func(o *Options) { o.Now = func() time.Time { return at } })
	var want []string
	for i := 0; i < 5; i++ {
		id := h.append(order("shop", i, 10))
		if i%2 == 0 {
			if err := h.J.MarkDead(id, fmt.Sprintf("backend answered 4%02d", i)); err != nil {
				t.Fatal(err)
			}
			want = append(want, id)
		}
	}
	check := func() {
		t.Helper()
		dl := h.J.DeadLetters()
		if len(dl) != len(want) {
			t.Fatalf("DeadLetters = %+v", dl)
		}
		for i, d := range dl {
			if d.ID != want[i] || d.Pool != "shop" || d.Route != "checkout" || !strings.HasPrefix(d.Reason, "backend answered 4") || !d.Time.Equal(at) {
				t.Fatalf("dead letter %d = %+v", i, d)
			}
		}
		if s := h.J.Stats(); s.DeadLetters != 3 || s.Pending != 2 || s.Backlog["shop"] != 2 {
			t.Fatalf("stats %+v", s)
		}
	}
	check()
	h.reopen()
	check()
}

func TestOptionsValidation(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		o    Options
	}{
		{"no dir", Options{}},
		{"tiny segments", Options{Dir: dir, SegmentBytes: 100}},
		{"huge segments", Options{Dir: dir, SegmentBytes: 2 << 30}},
		{"negative max record", Options{Dir: dir, MaxRecordBytes: -1}},
		{"huge max record", Options{Dir: dir, MaxRecordBytes: 1 << 30}},
		{"negative retention", Options{Dir: dir, KeyRetention: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Open(tt.o); !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestDirectoryLock(t *testing.T) {
	h := newHarness(t, nil)
	if _, err := Open(Options{Dir: h.dir}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v", err)
	}
	h.J.Close()
	j, err := Open(Options{Dir: h.dir})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	j.Close()
}

func TestClosed(t *testing.T) {
	h := newHarness(t, nil)
	id := h.append(order("shop", 1, 10))
	if err := h.J.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.J.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if _, _, err := h.J.Append(order("shop", 2, 10)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if err := h.J.MarkDelivered(id); !errors.Is(err, ErrClosed) {
		t.Fatalf("MarkDelivered after Close: %v", err)
	}
	if h.J.Pending("shop", 0) != nil {
		t.Fatal("Pending after Close")
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	h := newHarness(t, nil)
	if err := reg.Register(h.J.Collector()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		h.append(order("shop", i, 10))
	}
	j2, err := Open(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	if err := reg.Register(j2.Collector()); err == nil {
		t.Fatal("second journal registered the same metrics")
	}
	got := gather(t, reg)
	for name, want := range map[string]float64{
		"floodgate_capture_backlog":             3,
		"floodgate_orders_captured_total":       3,
		"floodgate_capture_dead_letters":        0,
		"floodgate_capture_append_errors_total": 0,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if got["floodgate_capture_fsync_seconds"] < 1 {
		t.Errorf("fsync histogram count = %v", got["floodgate_capture_fsync_seconds"])
	}
}

// gather returns each metric family's value: the sum over its series for
// counters and gauges, the sample count for histograms.
func gather(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				out[mf.GetName()] += m.Counter.GetValue()
			case m.Gauge != nil:
				out[mf.GetName()] += m.Gauge.GetValue()
			case m.Histogram != nil:
				out[mf.GetName()] += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out
}

func TestIDs(t *testing.T) {
	prev := ""
	for seq := uint64(1); seq < 5000; seq += 7 {
		id := makeID(1700000000000+seq/3, 12345, seq)
		if len(id) != idLen || id <= prev {
			t.Fatalf("id %q after %q", id, prev)
		}
		for _, c := range id {
			if !strings.ContainsRune(idAlphabet, c) {
				t.Fatalf("id %q not URL-safe", id)
			}
		}
		if idMillis(id) != 1700000000000+seq/3 {
			t.Fatal("idMillis")
		}
		prev = id
	}
}
