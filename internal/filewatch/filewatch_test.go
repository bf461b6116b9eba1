package filewatch

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// run starts w in the background; its changes arrive on the returned channel
// and every event's verdict ("path relevant", "path ignored") on the other.
func run(t *testing.T, w *Watcher) (changes chan struct{}, events chan string) {
	t.Helper()
	changes, events = make(chan struct{}, 16), make(chan string, 256)
	w.OnEvent = func(path string, relevant bool) {
		v := " ignored"
		if relevant {
			v = " relevant"
		}
		select {
		case events <- path + v:
		default:
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := w.Run(ctx, func() { changes <- struct{}{} }, func(err error) { t.Errorf("watch error: %v", err) }); err != nil {
			t.Error(err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return changes, events
}

func waitEvent(t *testing.T, events chan string, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev == want {
				return
			}
		case <-deadline:
			t.Fatalf("no event %q", want)
		}
	}
}

func waitChange(t *testing.T, changes chan struct{}, what string) {
	t.Helper()
	select {
	case <-changes:
	case <-time.After(10 * time.Second):
		t.Fatalf("no change reported after %s", what)
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFilesInTwoDirectories: a certificate and its key may live apart; each
// directory is watched once, only the named files count, and a mode change
// alone is no change.
func TestFilesInTwoDirectories(t *testing.T) {
	certs, keys := t.TempDir(), t.TempDir()
	crt, key, other := filepath.Join(certs, "a.crt"), filepath.Join(keys, "a.key"), filepath.Join(keys, "a.log")
	write(t, crt, "c")
	write(t, key, "k")
	w, err := New([]string{crt, key, filepath.Join(certs, "b.crt")}, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	changes, events := run(t, w)
	write(t, other, "x")
	waitEvent(t, events, other+" ignored")
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, key+" ignored")
	select {
	case <-changes:
		t.Fatal("an unrelated file or a mode change was reported")
	default:
	}
	write(t, key, "k2")
	waitEvent(t, events, key+" relevant")
	waitChange(t, changes, "a write to the key")
	write(t, filepath.Join(certs, "b.crt"), "appears")
	waitChange(t, changes, "a file appearing")
}

// TestSecretVolumeSwap: two files that are symlinks through "..data"; a swap of
// "..data" alone is a change, and the chain is followed anew after it.
func TestSecretVolumeSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(name string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, name, "tls.crt"), name)
		write(t, filepath.Join(dir, name, "tls.key"), name)
	}
	version("..v1")
	if err := os.Symlink("..v1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, name := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		files = append(files, filepath.Join(dir, name))
	}
	w, err := New(files, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	changes, events := run(t, w)
	for _, v := range []string{"..v2", "..v3"} {
		version(v)
		if err := os.Symlink(v, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
		waitEvent(t, events, filepath.Join(dir, "..data")+" relevant")
		waitChange(t, changes, "the swap to "+v)
	}
}

func TestNewMissingDirectory(t *testing.T) {
	if _, err := New([]string{filepath.Join(t.TempDir(), "missing", "f")}, 0); err == nil {
		t.Fatal("watching a missing directory succeeded")
	}
}
