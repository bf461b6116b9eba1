package capture

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// harness is a journal under test with the hooks tests wait on.
type harness struct {
	t    testing.TB
	dir  string
	o    Options
	J    *Journal
	logs *logBuf
	tick chan struct{}
}

// newHarness opens a journal in a fresh directory; mod adjusts the options.
func newHarness(t testing.TB, mod func(*Options)) *harness {
	t.Helper()
	return openHarness(t, t.TempDir(), mod)
}

func openHarness(t testing.TB, dir string, mod func(*Options)) *harness {
	t.Helper()
	h := &harness{t: t, dir: dir, logs: &logBuf{}, tick: make(chan struct{}, 1)}
	h.o = Options{
		Dir:       dir,
		Logger:    slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		committed: h.tick,
	}
	if mod != nil {
		mod(&h.o)
	}
	j, err := Open(h.o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	h.J = j
	t.Cleanup(func() { h.J.Close() })
	return h
}

// reopen closes and opens the journal again, as a restart would.
func (h *harness) reopen() {
	h.t.Helper()
	if err := h.J.Close(); err != nil {
		h.t.Fatalf("Close: %v", err)
	}
	j, err := Open(h.o)
	if err != nil {
		h.t.Fatalf("reopen: %v", err)
	}
	h.J = j
}

// waitFor waits until cond holds, re-checking after every commit or sweep of
// the journal and on every token of extra. It fails the test after 20 s.
func (h *harness) waitFor(what string, cond func() bool, extra ...<-chan struct{}) {
	h.t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	var ex <-chan struct{}
	if len(extra) > 0 {
		ex = extra[0]
	}
	for !cond() {
		select {
		case <-h.tick:
		case <-ex:
		case <-deadline.C:
			h.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (h *harness) append(r *Record) string {
	h.t.Helper()
	id, dup, err := h.J.Append(r)
	if err != nil {
		h.t.Fatalf("Append: %v", err)
	}
	if dup {
		h.t.Fatalf("Append: unexpected dup for %q", r.IdemKey)
	}
	return id
}

func (h *harness) segFiles() []string {
	h.t.Helper()
	m, err := filepath.Glob(filepath.Join(h.dir, "seg-*.log"))
	if err != nil {
		h.t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

// order builds a recognisable record: its body names pool and n, so a test can
// tell that what it reads back is what it wrote.
func order(pool string, n int, size int) *Record {
	body := fmt.Sprintf(`{"pool":%q,"n":%d,"items":"`, pool, n)
	if pad := size - len(body) - 2; pad > 0 {
		body += strings.Repeat("x", pad)
	}
	body += `"}`
	return &Record{
		Pool:   pool,
		Route:  "checkout",
		Method: "POST",
		Target: fmt.Sprintf("/checkout?n=%d", n),
		Header: []byte("Content-Type: application/json\r\nX-Order: " + fmt.Sprint(n) + "\r\n"),
		Body:   []byte(body),
		Client: "192.0.2.7:51234",
		Time:   time.Unix(1700000000, int64(n)).UTC(),
	}
}

func sameRecord(t testing.TB, got, want *Record) {
	t.Helper()
	if got == nil {
		t.Fatalf("record %s: nil", want.ID)
	}
	if got.ID != want.ID || got.Pool != want.Pool || got.Route != want.Route || got.Method != want.Method ||
		got.Target != want.Target || got.Client != want.Client || got.IdemKey != want.IdemKey ||
		!got.Time.Equal(want.Time) || !bytes.Equal(got.Header, want.Header) || !bytes.Equal(got.Body, want.Body) {
		t.Fatalf("record differs:\n got %+v\nwant %+v", got, want)
	}
}

func ids(rs []*Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// logBuf collects log output for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	des, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), "seg-") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, de.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
