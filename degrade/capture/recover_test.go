package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// journalWith writes n records one by one (one batch each) and returns them
// with the offsets of their frames, then closes the journal.
func journalWith(t *testing.T, dir string, n int, mod func(*Options)) (recs []*Record, offs []int64, h *harness) {
	t.Helper()
	h = openHarness(t, dir, mod)
	for i := 0; i < n; i++ {
		r := order("shop", i, 100+i*20)
		h.append(r)
		recs = append(recs, r)
		h.J.mu.Lock()
		offs = append(offs, h.J.byID[r.ID].off)
		h.J.mu.Unlock()
	}
	if err := h.J.Close(); err != nil {
		t.Fatal(err)
	}
	return recs, offs, h
}

// The last record torn at every byte offset: Open succeeds, the torn record is
// gone, everything before it is intact and appends resume after it.
func TestTornTailEveryOffset(t *testing.T) {
	src := t.TempDir()
	recs, offs, _ := journalWith(t, src, 8, nil)
	seg := filepath.Join(src, segName(1))
	st, err := os.Stat(seg)
	if err != nil {
		t.Fatal(err)
	}
	start, end := offs[len(offs)-1], st.Size()

	type tc struct {
		name string
		cut  int64
		zero bool // keep the length, zero the rest: a page that never reached the disk
	}
	var tests []tc
	for cut := start; cut < end; cut++ {
		tests = append(tests, tc{fmt.Sprintf("cut@%d", cut), cut, false})
	}
	for _, cut := range []int64{start, start + 1, start + frameHeaderSize, end - 1} {
		tests = append(tests, tc{fmt.Sprintf("zero@%d", cut), cut, true})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, src, dir)
			p := filepath.Join(dir, segName(1))
			if tt.zero {
				f, err := os.OpenFile(p, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.WriteAt(make([]byte, end-tt.cut), tt.cut); err != nil {
					t.Fatal(err)
				}
				f.Close()
			} else if err := os.Truncate(p, tt.cut); err != nil {
				t.Fatal(err)
			}
			h := openHarness(t, dir, nil)
			if _, _, ok := h.J.Get(recs[len(recs)-1].ID); ok {
				t.Fatal("torn record recovered")
			}
			for _, r := range recs[:len(recs)-1] {
				got, st, ok := h.J.Get(r.ID)
				if !ok || st != StatusPending {
					t.Fatalf("record %s lost", r.ID)
				}
				sameRecord(t, got, r)
			}
			if tt.cut > start || tt.zero {
				if l := h.logs.String(); !strings.Contains(l, "torn tail") || !strings.Contains(l, fmt.Sprintf("offset=%d", start)) || !strings.Contains(l, p) {
					t.Fatalf("truncation not logged with file and offset:\n%s", l)
				}
			}
			if fi, _ := os.Stat(p); fi.Size() != start {
				t.Fatalf("segment is %d bytes after recovery, want %d", fi.Size(), start)
			}
			next := order("shop", 100, 50)
			h.append(next)
			h.reopen()
			if got, _, ok := h.J.Get(next.ID); !ok {
				t.Fatal("append after recovery lost")
			} else {
				sameRecord(t, got, next)
			}
			if n := len(h.J.Pending("shop", 0)); n != len(recs) {
				t.Fatalf("pending %d, want %d", n, len(recs))
			}
		})
	}
}

// Damage in the middle of the last segment, with acknowledged records after
// it, is corruption: Open refuses, names file and offset, and changes nothing.
func TestCorruptMiddleRefuses(t *testing.T) {
	dir := t.TempDir()
	_, offs, _ := journalWith(t, dir, 10, nil)
	p := filepath.Join(dir, segName(1))
	before, _ := os.ReadFile(p)
	b := append([]byte(nil), before...)
	b[offs[4]+frameHeaderSize+3] ^= 0x40 // one bit of record 4's payload
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(Options{Dir: dir})
	var ce *CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open = %v, want a CorruptError", err)
	}
	if ce.File != p || ce.Offset != offs[4] {
		t.Fatalf("CorruptError names %s@%d, want %s@%d", ce.File, ce.Offset, p, offs[4])
	}
	if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), fmt.Sprint(offs[4])) {
		t.Fatalf("message %q lacks file or offset", err)
	}
	after, _ := os.ReadFile(p)
	if len(after) != len(b) {
		t.Fatal("a refused Open modified the segment")
	}
}

// Damage in a sealed segment is corruption even at its very end: that data
// was fsynced before the next segment existed.
func TestCorruptSealedSegmentRefuses(t *testing.T) {
	dir := t.TempDir()
	_, _, h := journalWith(t, dir, 30, func(o *Options) { o.SegmentBytes = minSegmentBytes })
	files := h.segFiles()
	if len(files) < 3 {
		t.Fatalf("want several segments, got %d", len(files))
	}
	b, _ := os.ReadFile(files[0])
	b[len(b)-1] ^= 1
	os.WriteFile(files[0], b, 0o600)
	_, err := Open(Options{Dir: dir})
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.File != files[0] {
		t.Fatalf("Open = %v, want corruption in %s", err, files[0])
	}
}

// frameSpec describes a frame of a hand-built segment; batch numbers frames
// that were written by one group commit.
type frameSpec struct {
	batch int
	n     int // order number, to recognise the record
}

// buildSegment writes segment num from specs and returns the frame offsets
// and the ids of the records.
func buildSegment(t testing.TB, dir string, num, prevEnd uint64, specs []frameSpec) ([]int64, []string) {
	t.Helper()
	b := segHeader{num: num, prevEnd: prevEnd}.encode()
	var offs []int64
	var ids []string
	batchStart := map[int]int64{}
	var frames [][2]int // [off, end]
	for _, s := range specs {
		off := len(b)
		if _, ok := batchStart[s.batch]; !ok {
			batchStart[s.batch] = int64(off)
		}
		r := order("shop", s.n, 80)
		id := makeID(1700000000000, 1, uint64(s.n))
		b = beginFrame(b, frameCapture, capturePayloadLen(r, uint64(s.n), idLen, r.Time.UnixNano()))
		b = appendCapture(b, r, uint64(s.n), id, r.Time.UnixNano())
		sealFrame(b[off:], batchStart[s.batch])
		frames = append(frames, [2]int{off, len(b)})
		offs = append(offs, int64(off))
		ids = append(ids, id)
	}
	if err := os.WriteFile(filepath.Join(dir, segName(num)), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return offs, ids
}

func damage(t *testing.T, path string, off int64, zero bool) {
	t.Helper()
	b, _ := os.ReadFile(path)
	if zero {
		clear(b[off : off+40])
	} else {
		b[off+frameHeaderSize+1] ^= 0xff
	}
	os.WriteFile(path, b, 0o600)
}

// The batch offset in each frame tells a torn last batch (damage followed
// only by frames of the same batch) from corruption (damage followed by a
// frame of a later batch, which was written after the damaged one was
// fsynced).
func TestTornBatchVersusCorruption(t *testing.T) {
	tests := []struct {
		name     string
		batches  []int
		damaged  int
		zero     bool
		sealed   bool // another segment follows
		corrupt  bool
		survives int // frames recovered when not corrupt
	}{
		{"torn start of last batch, rest of batch intact", []int{0, 1, 1}, 1, false, false, false, 1},
		{"page of last batch never written", []int{0, 1, 1}, 1, true, false, false, 1},
		{"torn middle of last batch", []int{0, 1, 1, 1}, 2, false, false, false, 2},
		{"damage in one-frame last batch", []int{0, 0, 1}, 2, false, false, false, 2},
		{"whole journal one torn batch", []int{0, 0}, 0, false, false, false, 0},
		{"damage before a later batch", []int{0, 0, 1}, 1, false, false, true, 0},
		{"damage in first batch, second intact", []int{0, 1}, 0, false, false, true, 0},
		{"zeroed page before a later batch", []int{0, 1, 2}, 1, true, false, true, 0},
		{"torn-looking damage in a sealed segment", []int{0, 1, 1}, 1, false, true, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var specs []frameSpec
			for i, bn := range tt.batches {
				specs = append(specs, frameSpec{batch: bn, n: i + 1})
			}
			offs, ids := buildSegment(t, dir, 1, 0, specs)
			if tt.sealed {
				buildSegment(t, dir, 2, 0, []frameSpec{{0, 50}})
			}
			path := filepath.Join(dir, segName(1))
			damage(t, path, offs[tt.damaged], tt.zero)
			j, err := Open(Options{Dir: dir})
			if tt.corrupt {
				var ce *CorruptError
				if !errors.As(err, &ce) || ce.File != path || ce.Offset != offs[tt.damaged] {
					t.Fatalf("Open = %v, want corruption at %s@%d", err, path, offs[tt.damaged])
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer j.Close()
			for i, id := range ids {
				_, _, ok := j.Get(id)
				if ok != (i < tt.survives) {
					t.Fatalf("frame %d recovered = %v, want %v", i, ok, i < tt.survives)
				}
			}
		})
	}
}

// Looking past damage for a later batch is linear in the tail even when the
// tail is full of frame headers claiming long lengths, as client bodies may
// be: only offsets that name themselves as a batch start pay for a CRC.
func TestResyncIsLinear(t *testing.T) {
	dir := t.TempDir()
	offs, _ := buildSegment(t, dir, 1, 0, []frameSpec{{0, 1}, {1, 2}})
	b, _ := os.ReadFile(filepath.Join(dir, segName(1)))
	b = b[:offs[1]+frameHeaderSize+5] // frame 2 torn
	fake := make([]byte, 8<<20)
	for i := 0; i+frameHeaderSize <= len(fake); i += frameHeaderSize {
		binary.LittleEndian.PutUint32(fake[i:], uint32(len(fake)-i-frameHeaderSize))
		fake[i+8], fake[i+9] = frameCapture, payloadVersion
		binary.LittleEndian.PutUint32(fake[i+12:], segHeaderSize)
	}
	b = append(b, fake...)
	j := bareJournal()
	start := time.Now()
	end, err := j.scan(&segment{path: "seg"}, b, true, &recState{})
	if err != nil || end != offs[1] {
		t.Fatalf("scan = %d, %v; want torn at %d", end, err, offs[1])
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("scan of an 8 MiB tail took %v", d)
	}
}

func TestInterruptedSegmentCreation(t *testing.T) {
	for _, size := range []int{0, 10, segHeaderSize} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			dir := t.TempDir()
			recs, _, _ := journalWith(t, dir, 3, nil)
			p := filepath.Join(dir, segName(2))
			os.WriteFile(p, make([]byte, size), 0o600) // zeros: header never written
			h := openHarness(t, dir, nil)
			for _, r := range recs {
				if _, _, ok := h.J.Get(r.ID); !ok {
					t.Fatalf("lost %s", r.ID)
				}
			}
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Fatalf("half-created segment kept: %v", err)
			}
		})
	}
	// A bad header on a segment that holds data is corruption.
	dir := t.TempDir()
	journalWith(t, dir, 3, nil)
	p := filepath.Join(dir, segName(1))
	b, _ := os.ReadFile(p)
	b[2] ^= 1
	os.WriteFile(p, b, 0o600)
	if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad header: %v", err)
	}
}

// prevEnd in a segment's header cuts the previous segment: what follows it
// there was written by appends that failed.
func TestPrevEndCutsAbandonedSegment(t *testing.T) {
	dir := t.TempDir()
	offs, ids := buildSegment(t, dir, 1, 0, []frameSpec{{0, 1}, {1, 2}, {2, 3}})
	buildSegment(t, dir, 2, uint64(offs[1]), []frameSpec{{0, 4}})
	h := openHarness(t, dir, nil)
	want := map[string]bool{ids[0]: true, ids[1]: false, ids[2]: false, makeID(1700000000000, 1, 4): true}
	for id, ok := range want {
		if _, _, got := h.J.Get(id); got != ok {
			t.Fatalf("%s recovered = %v, want %v", id, got, ok)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, segName(1))); fi.Size() != offs[1] {
		t.Fatalf("abandoned segment not cut: %d bytes", fi.Size())
	}
	if !strings.Contains(h.logs.String(), "failed appends") {
		t.Fatalf("cut not logged:\n%s", h.logs)
	}

	// A prevEnd beyond the end of the previous segment means lost data.
	dir = t.TempDir()
	buildSegment(t, dir, 1, 0, []frameSpec{{0, 1}})
	buildSegment(t, dir, 2, 1<<20, []frameSpec{{0, 2}})
	if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("short abandoned segment: %v", err)
	}
}

func TestMissingSegmentRefuses(t *testing.T) {
	dir := t.TempDir()
	_, _, h := journalWith(t, dir, 30, func(o *Options) { o.SegmentBytes = minSegmentBytes })
	files := h.segFiles()
	os.Remove(files[1])
	if _, err := Open(Options{Dir: dir}); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Open = %v", err)
	}
}

// A frame from a newer format is not damage: Open refuses rather than
// truncating data it cannot read.
func TestNewerFormatRefuses(t *testing.T) {
	dir := t.TempDir()
	offs, _ := buildSegment(t, dir, 1, 0, []frameSpec{{0, 1}, {1, 2}})
	p := filepath.Join(dir, segName(1))
	b, _ := os.ReadFile(p)
	f := b[offs[1]:]
	f[9] = payloadVersion + 1
	sealFrame(f, offs[1])
	os.WriteFile(p, b, 0o600)
	_, err := Open(Options{Dir: dir})
	if !errors.Is(err, errUnsupported) {
		t.Fatalf("Open = %v", err)
	}
	if fi, _ := os.Stat(p); fi.Size() != int64(len(b)) {
		t.Fatal("truncated a frame it could not read")
	}
}

// bareJournal is just enough Journal to run scan without files.
func bareJournal() *Journal {
	j := &Journal{
		o:            Options{KeyRetention: time.Hour},
		log:          slog.New(slog.DiscardHandler),
		byID:         map[string]*entry{},
		keys:         map[string]*entry{},
		inflightKeys: map[string]*batch{},
		pools:        map[string]*pool{},
		dead:         map[*entry]struct{}{},
	}
	j.m = newMetrics(j)
	return j
}

// FuzzScan: recovery never panics, and is idempotent: scanning what it kept
// keeps all of it, with the same records.
func FuzzScan(f *testing.F) {
	dir := f.TempDir()
	buildSegment(f, dir, 1, 0, []frameSpec{{0, 1}, {0, 2}, {1, 3}})
	seed, _ := os.ReadFile(filepath.Join(dir, segName(1)))
	f.Add(seed)
	f.Add(seed[:len(seed)-7])
	// Client keys of every shape (testdata/fuzz/FuzzScan also holds a
	// segment the capture path of the previous version wrote).
	keys := keySeed(f)
	f.Add(keys)
	f.Add(keys[:len(keys)-3])
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<16 || len(b) < segHeaderSize {
			return
		}
		for _, last := range []bool{true, false} {
			j := bareJournal()
			end, err := j.scan(&segment{path: "seg"}, b, last, &recState{})
			if err != nil {
				continue
			}
			if end > int64(len(b)) || end < segHeaderSize || (!last && end != int64(len(b))) {
				t.Fatalf("scan end %d of %d bytes", end, len(b))
			}
			j2 := bareJournal()
			end2, err := j2.scan(&segment{path: "seg"}, b[:end], last, &recState{})
			if err != nil || end2 != end || len(j2.byID) != len(j.byID) {
				t.Fatalf("rescan of the kept prefix: end %d (was %d), %d records (was %d), err %v", end2, end, len(j2.byID), len(j.byID), err)
			}
		}
	})
}

// adversarialKeys are client idempotency keys the journal must store and give
// back byte for byte: the proxy takes them from a header the client chose.
var adversarialKeys = []string{
	"\x00\xff\r\n: ;\"\\",
	"\"8e03978e-40d5-43e8-bc93-6894a57f9324\"",
	" padded\t",
	"ü✓",
	strings.Repeat("k", 4<<10),
}

// TestAdversarialKeysRoundTrip: keys with control bytes, quotes, non-ASCII
// and a length past any header buffer survive a restart exactly, with the
// header that carried them, and still deduplicate.
func TestAdversarialKeysRoundTrip(t *testing.T) {
	keys := append(adversarialKeys, strings.Repeat("0123456789abcdef", 4<<10)) // 64 KiB
	h := newHarness(t, nil)
	ids := make([]string, len(keys))
	for i, k := range keys {
		r := order("p", i, 64)
		r.IdemKey = k
		r.Header = append(r.Header, "Idempotency-Key: "+k+"\r\n"...)
		ids[i] = h.append(r)
	}
	h.reopen()
	for i, k := range keys {
		got, _, ok := h.J.Get(ids[i])
		if !ok || got.IdemKey != k || !strings.HasSuffix(string(got.Header), "Idempotency-Key: "+k+"\r\n") {
			t.Fatalf("key %d (%.20q) after a restart: found %v, key %.20q", i, k, ok, got.IdemKey)
		}
		if id, _, ok := h.J.Lookup("checkout", k); !ok || id != ids[i] {
			t.Fatalf("key %d (%.20q): Lookup %q %v, want %s", i, k, id, ok, ids[i])
		}
		r := order("p", i, 64)
		r.IdemKey = k
		if id, dup, err := h.J.Append(r); err != nil || !dup || id != ids[i] {
			t.Fatalf("key %d resubmitted: %s dup=%v err=%v, want %s dup", i, id, dup, err, ids[i])
		}
	}
}

// keySeed is a segment holding records with adversarialKeys, for FuzzScan.
func keySeed(f *testing.F) []byte {
	h := newHarness(f, nil)
	for i, k := range adversarialKeys {
		r := order("p", i, 32)
		r.IdemKey = k
		h.append(r)
	}
	if err := h.J.Close(); err != nil {
		f.Fatal(err)
	}
	seg, err := os.ReadFile(h.segFiles()[0])
	if err != nil {
		f.Fatal(err)
	}
	return seg
}
