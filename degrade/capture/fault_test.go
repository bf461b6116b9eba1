package capture

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// faultFS is the real file system with switchable faults.
type faultFS struct {
	osFS
	writes  atomic.Bool // WriteAt writes half, then fails with ENOSPC
	syncs   atomic.Bool // Sync fails with EIO (after the data was written)
	creates atomic.Bool // creating a file fails with ENOSPC
}

type faultFile struct {
	*os.File
	fs *faultFS
}

func (fs *faultFS) OpenFile(name string, flag int, perm os.FileMode) (file, error) {
	if flag&os.O_CREATE != 0 && fs.creates.Load() {
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.ENOSPC}
	}
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return faultFile{f, fs}, nil
}

func (f faultFile) WriteAt(b []byte, off int64) (int, error) {
	if f.fs.writes.Load() {
		n, _ := f.File.WriteAt(b[:len(b)/2], off)
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return f.File.WriteAt(b, off)
}

func (f faultFile) Sync() error {
	if f.fs.syncs.Load() {
		return &os.PathError{Op: "fsync", Path: f.Name(), Err: syscall.EIO}
	}
	return f.File.Sync()
}

func TestWriteFaults(t *testing.T) {
	tests := []struct {
		name  string
		fault func(*faultFS) *atomic.Bool
		errno syscall.Errno
	}{
		{"fsync fails after the data was written", func(f *faultFS) *atomic.Bool { return &f.syncs }, syscall.EIO},
		{"write fails half way", func(f *faultFS) *atomic.Bool { return &f.writes }, syscall.ENOSPC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ffs := &faultFS{}
			h := newHarness(t, func(o *Options) { o.fs = ffs })
			a := h.append(order("shop", 1, 500))
			ka := order("shop", 2, 500)
			ka.IdemKey = "k"

			tt.fault(ffs).Store(true)
			for _, r := range []*Record{order("shop", 3, 500), ka, order("shop", 4, 500)} {
				if id, _, err := h.J.Append(r); !errors.Is(err, tt.errno) || id != "" {
					t.Fatalf("Append during fault = %q, %v; want %v", id, err, tt.errno)
				}
			}
			if err := h.J.MarkDelivered(a); !errors.Is(err, tt.errno) {
				t.Fatalf("MarkDelivered during fault = %v", err)
			}
			if got := ids(h.J.Pending("shop", 0)); len(got) != 1 || got[0] != a {
				t.Fatalf("pending during fault = %v, want only %s", got, a)
			}
			if _, st, _ := h.J.Get(a); st != StatusPending {
				t.Fatalf("a failed MarkDelivered changed the status to %v", st)
			}

			// The fault clears: appends work again, in a new segment, and a
			// key whose first append failed is a new order, not a duplicate.
			tt.fault(ffs).Store(false)
			d := h.append(order("shop", 5, 500))
			ka2 := order("shop", 2, 500)
			ka2.IdemKey = "k"
			k := h.append(ka2)
			if s := h.J.Stats(); s.Segments < 2 || s.Appended != 3 {
				t.Fatalf("after the fault: %+v", s)
			}
			want := []string{a, d, k}
			if got := ids(h.J.Pending("shop", 0)); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("pending after the fault = %v, want %v", got, want)
			}

			// What the failed appends left in the abandoned segment is
			// dropped on recovery, though a failed fsync had written it all.
			h.o.fs = nil
			h.reopen()
			if got := ids(h.J.Pending("shop", 0)); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("pending after reopen = %v, want %v", got, want)
			}
			if l := h.logs.String(); !strings.Contains(l, "segment abandoned") || !strings.Contains(l, "dropping the failed appends") {
				t.Fatalf("abandon or cut not logged:\n%s", l)
			}
		})
	}
}

// Creating the next segment can fail too (disk full): appends fail until it
// can be created, then resume.
func TestSegmentCreationFault(t *testing.T) {
	ffs := &faultFS{}
	h := newHarness(t, func(o *Options) { o.fs = ffs; o.SegmentBytes = minSegmentBytes })
	var ok []string
	for i := 0; i < 3; i++ {
		ok = append(ok, h.append(order("shop", i, 600)))
	}
	ffs.creates.Store(true)
	failed := 0
	for i := 3; i < 10; i++ {
		id, _, err := h.J.Append(order("shop", i, 600))
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			failed++
			continue
		}
		ok = append(ok, id)
	}
	if failed == 0 {
		t.Fatal("no append needed a new segment")
	}
	ffs.creates.Store(false)
	ok = append(ok, h.append(order("shop", 99, 600)))
	h.reopen()
	if got := ids(h.J.Pending("shop", 0)); strings.Join(got, ",") != strings.Join(ok, ",") {
		t.Fatalf("pending = %v\nwant %v", got, ok)
	}
}

// Faults switching on and off under concurrent appends: after a restart the
// pending records are exactly the appends that succeeded.
func TestFaultsUnderConcurrency(t *testing.T) {
	ffs := &faultFS{}
	h := newHarness(t, func(o *Options) { o.fs = ffs; o.SegmentBytes = 16 << 10 })
	var mu sync.Mutex
	okIDs := map[string]bool{}
	var failed atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 60; i++ {
				// Goroutine 0 flips the faults as it goes.
				if g == 0 {
					ffs.syncs.Store(i%10 == 3)
					ffs.writes.Store(i%10 == 7)
				}
				id, _, err := h.J.Append(order("shop", g*1000+i, 300))
				if err != nil {
					failed.Add(1)
					continue
				}
				mu.Lock()
				okIDs[id] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	ffs.syncs.Store(false)
	ffs.writes.Store(false)
	if failed.Load() == 0 {
		t.Fatal("no fault hit")
	}
	check := func(when string) {
		t.Helper()
		got := h.J.Pending("shop", 0)
		if len(got) != len(okIDs) {
			t.Fatalf("%s: %d pending, %d appends succeeded (%d failed)", when, len(got), len(okIDs), failed.Load())
		}
		for _, r := range got {
			if !okIDs[r.ID] {
				t.Fatalf("%s: failed append %s reported pending", when, r.ID)
			}
		}
	}
	check("live")
	h.o.fs = nil
	h.reopen()
	check("after reopen")
	t.Logf("%d appends succeeded, %d failed", len(okIDs), failed.Load())
}

// A real full file system: a 64 KiB tmpfs. Root only; skipped where mount is
// not allowed.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	dir := filepath.Join(mnt, "journal")
	h := openHarness(t, dir, func(o *Options) { o.SegmentBytes = 16 << 10 })
	var ok []string
	var full error
	for i := 0; i < 200 && full == nil; i++ {
		id, _, err := h.J.Append(order("shop", i, 1024))
		if err != nil {
			full = err
			break
		}
		ok = append(ok, id)
	}
	if !errors.Is(full, syscall.ENOSPC) {
		t.Fatalf("filling the disk: %v after %d appends", full, len(ok))
	}
	if _, _, err := h.J.Append(order("shop", 1000, 1024)); err == nil {
		t.Fatal("append succeeded on a full disk")
	}
	if n := len(h.J.Pending("shop", 0)); n != len(ok) {
		t.Fatalf("pending %d, confirmed %d", n, len(ok))
	}
	// Space is freed (the operator grows the volume): appends resume
	// without a restart.
	if out, err := exec.Command("mount", "-o", "remount,size=1m", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v: %s", err, out)
	}
	ok = append(ok, h.append(order("shop", 2000, 1024)))
	h.reopen()
	if got := ids(h.J.Pending("shop", 0)); strings.Join(got, ",") != strings.Join(ok, ",") {
		t.Fatalf("after reopen pending %d, want %d", len(got), len(ok))
	}
	t.Logf("disk full after %d confirmed orders of 1 KiB; resumed after growing the volume", len(ok)-1)
}
