package conf

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// watchRun is a Watcher running in the background, with its change reports on a
// channel and every event's verdict recorded.
type watchRun struct {
	changes chan struct{}
	events  chan string // "name relevant" or "name ignored"
}

func startWatch(t *testing.T, path string, debounce time.Duration) *watchRun {
	t.Helper()
	w, err := NewWatcher(path, debounce)
	if err != nil {
		t.Fatal(err)
	}
	r := &watchRun{changes: make(chan struct{}, 16), events: make(chan string, 256)}
	w.onEvent = func(name string, relevant bool) {
		v := "ignored"
		if relevant {
			v = "relevant"
		}
		select {
		case r.events <- name + " " + v:
		default:
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := w.Run(ctx, func() { r.changes <- struct{}{} }, func(err error) { t.Errorf("watch error: %v", err) }); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return r
}

func (r *watchRun) waitChange(t *testing.T, what string) {
	t.Helper()
	select {
	case <-r.changes:
	case <-time.After(10 * time.Second):
		t.Fatalf("no change reported after %s", what)
	}
}

// waitEvent waits for the watcher to have judged an event on name.
func (r *watchRun) waitEvent(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-r.events:
			if ev == want {
				return
			}
		case <-deadline:
			t.Fatalf("no event %q", want)
		}
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWatchInPlaceWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "floodgate.yaml")
	write(t, path, "a")
	r := startWatch(t, path, 20*time.Millisecond)
	write(t, path, "b")
	r.waitChange(t, "an in-place write")
}

// TestWatchEditorRename is how vim, emacs and most editors save: write a
// temporary file, rename it over the original.
func TestWatchEditorRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "floodgate.yaml")
	write(t, path, "a")
	r := startWatch(t, path, 20*time.Millisecond)
	for i, content := range []string{"b", "c"} { // the watch survives the first replacement
		tmp := filepath.Join(dir, ".floodgate.yaml.swp")
		write(t, tmp, content)
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		r.waitChange(t, "rename number "+string(rune('1'+i)))
	}
}

// TestWatchSymlinkSwap is how Kubernetes updates a mounted ConfigMap: the file
// is a symlink into "..data", itself a symlink to a timestamped directory, and
// an update writes a new directory and renames a new "..data" over the old.
func TestWatchSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	mkVersion := func(name, content string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, name, "floodgate.yaml"), content)
	}
	mkVersion("..2024_01", "a")
	if err := os.Symlink("..2024_01", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "floodgate.yaml")
	if err := os.Symlink("..data/floodgate.yaml", path); err != nil {
		t.Fatal(err)
	}
	r := startWatch(t, path, 20*time.Millisecond)
	for i, v := range []string{"..2024_02", "..2024_03"} {
		mkVersion(v, v)
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(v, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		r.waitChange(t, "symlink swap number "+string(rune('1'+i)))
		if b, err := os.ReadFile(path); err != nil || string(b) != v {
			t.Fatalf("after the swap the file reads %q, %v", b, err)
		}
	}
}

func TestWatchIgnoresOtherFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "floodgate.yaml")
	write(t, path, "a")
	r := startWatch(t, path, 20*time.Millisecond)
	write(t, filepath.Join(dir, "state.json"), "{}")
	r.waitEvent(t, "state.json ignored")
	select {
	case <-r.changes:
		t.Fatal("a change of another file was reported")
	default:
	}
	write(t, path, "b")
	r.waitEvent(t, "floodgate.yaml relevant")
	r.waitChange(t, "a write after an unrelated one")
}

// TestWatchDebounce: a burst of writes is one change.
func TestWatchDebounce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "floodgate.yaml")
	write(t, path, "a")
	// Long enough that five writes cannot straddle it on a loaded machine.
	r := startWatch(t, path, time.Second)
	for _, s := range []string{"1", "2", "3", "4", "5"} {
		write(t, path, s)
	}
	r.waitChange(t, "a burst of writes")
	// Every event of the burst was handled before this one: none is left to
	// report another change.
	write(t, filepath.Join(dir, "barrier"), "")
	r.waitEvent(t, "barrier ignored")
	select {
	case <-r.changes:
		t.Fatal("the burst was reported more than once")
	default:
	}
}

func TestWatchStopsWithContext(t *testing.T) {
	dir := t.TempDir()
	w, err := NewWatcher(filepath.Join(dir, "floodgate.yaml"), 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx, func() {}, nil) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := NewWatcher(filepath.Join(dir, "missing", "floodgate.yaml"), 0); err == nil {
		t.Fatal("watching a missing directory succeeded")
	}
}
