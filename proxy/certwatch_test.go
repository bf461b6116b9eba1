package proxy

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fileLog is a slog handler's output written to a file, as an operator's
// `floodgate 2>>/etc/floodgate/tls/floodgate.log` would; it counts its lines.
type fileLog struct {
	mu sync.Mutex
	f  *os.File
}

func (l *fileLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

func (l *fileLog) count(t *testing.T, substr string) int {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, err := os.ReadFile(l.f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), substr)
}

// TestBadCertificateLoggedOncePerChange (issue 13, item 25): a bad
// certificate in the directory floodgate also logs to made it retry and log an
// ERROR every 200 ms: each log line was an event in the watched directory,
// which triggered a reload, which failed and logged. Only the certificate and
// key files count, and a failing certificate is logged once per change.
func TestBadCertificateLoggedOncePerChange(t *testing.T) {
	dir := t.TempDir()
	shop := writeCert(t, dir, "shop", 1, "shop.example")
	f, err := os.OpenFile(filepath.Join(dir, "floodgate.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := &fileLog{f: f}
	cs, err := NewCertStore([]CertFiles{shop}, slog.New(slog.NewTextHandler(out, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextCancel(t)
	defer cancel()
	if err := cs.Watch(ctx); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(shop.CertFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the failed reload", func() bool { _, failed := cs.Reloads(); return failed > 0 })
	// Other files of the directory change meanwhile: the log itself, and
	// something else.
	for i := range 10 {
		fmt.Fprintf(out, "level=INFO msg=\"unrelated line %d\"\n", i)
		if err := os.WriteFile(filepath.Join(dir, "other.txt"), []byte{byte(i)}, 0o600); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // spread the events over several debounce periods
	}
	// Nothing to await for something that must not happen: give the watcher
	// five debounce periods to retry, which it did before.
	time.Sleep(time.Second)
	if n := out.count(t, "level=ERROR"); n != 1 {
		t.Fatalf("the bad certificate was logged %d times, want once:\n%s", n, readAll(t, f.Name()))
	}
	if _, failed := cs.Reloads(); failed != 1 {
		t.Fatalf("%d failed reloads counted, want 1", failed)
	}

	// A new change to the certificate is a new attempt, logged again if bad;
	// a good one is loaded.
	if err := os.WriteFile(shop.CertFile, []byte("still not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the second failed reload", func() bool { _, failed := cs.Reloads(); return failed == 2 })
	writeCert(t, dir, "shop", 2, "shop.example")
	waitUntil(t, "the good certificate", func() bool { ok, _ := cs.Reloads(); return ok == 1 })
	if n := out.count(t, "level=ERROR"); n != 2 {
		t.Fatalf("%d errors logged, want 2 (one per bad change)", n)
	}
}

func readAll(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCertificateReloadThroughSecretVolumeSwap: with events filtered to the
// certificate files, a Kubernetes secret volume must still reload: there the
// files are symlinks through "..data", and an update swaps "..data" only.
func TestCertificateReloadThroughSecretVolumeSwap(t *testing.T) {
	dir := t.TempDir()
	v1 := filepath.Join(dir, "..v1")
	if err := os.Mkdir(v1, 0o700); err != nil {
		t.Fatal(err)
	}
	writeCert(t, v1, "tls", 1, "shop.example")
	if err := os.Symlink("..v1", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	files := CertFiles{CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key")}
	for _, name := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	cs, err := NewCertStore([]CertFiles{files}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextCancel(t)
	defer cancel()
	if err := cs.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	v2 := filepath.Join(dir, "..v2")
	if err := os.Mkdir(v2, 0o700); err != nil {
		t.Fatal(err)
	}
	writeCert(t, v2, "tls", 2, "shop.example")
	if err := os.Symlink("..v2", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the swapped secret to be loaded", func() bool { ok, _ := cs.Reloads(); return ok == 1 })
	if c, _ := cs.GetCertificate(&tls.ClientHelloInfo{ServerName: "shop.example"}); c.Leaf.SerialNumber.Int64() != 2 {
		t.Fatalf("serving certificate %d after the swap, want 2", c.Leaf.SerialNumber.Int64())
	}
}
