package proxy

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestAccessLogLinesAndReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	al, err := NewAccessLog(path)
	if err != nil {
		t.Fatal(err)
	}
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{AccessLog: al}, PoolSpec{}, be.addr())
	exchange(t, px.addr, "POST /orders?x=%22q HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", 300*time.Millisecond)
	exchange(t, px.addr, "GET /nope HTTP/1.1\r\nHost: x\r\nX: \x01\r\n\r\n", 300*time.Millisecond)
	waitUntil(t, "two lines written", func() bool { return len(readLines(t, path)) == 2 })
	lines := readLines(t, path)
	l := lines[0]
	want := map[string]any{"client": "127.0.0.1", "method": "POST", "target": "/orders?x=%22q", "route": "r", "pool": "p",
		"backend": be.addr(), "status": 200.0, "bytes_in": 3.0, "bytes_out": 2.0, "cache": "", "degraded": ""}
	for k, v := range want {
		if l[k] != v {
			t.Errorf("%s = %v, want %v (line %v)", k, l[k], v, l)
		}
	}
	if ts, _ := l["time"].(string); !strings.HasSuffix(ts, "Z") {
		t.Errorf("time %q", l["time"])
	}
	if lines[1]["status"] != 400.0 || lines[1]["route"] != "-" {
		t.Errorf("malformed request line: %v", lines[1])
	}

	// Rotation: move the file away, reopen, and the next line lands in a new file.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := al.Reopen(); err != nil {
		t.Fatal(err)
	}
	exchange(t, px.addr, "GET /after HTTP/1.1\r\nHost: x\r\n\r\n", 300*time.Millisecond)
	waitUntil(t, "a line in the new file", func() bool { _, err := os.Stat(path); return err == nil && len(readLines(t, path)) == 1 })
	if n := len(readLines(t, path+".1")); n != 2 {
		t.Errorf("rotated file has %d lines, want 2", n)
	}
	if err := al.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestAccessLogDropsWhenBehind: with the writer stuck, lines are dropped and
// counted, and logging never blocks.
func TestAccessLogDropsWhenBehind(t *testing.T) {
	r, w, err := os.Pipe() // nobody reads r until the end: the writer blocks
	if err != nil {
		t.Fatal(err)
	}
	al := newAccessLog("pipe", 16)
	al.f, al.out = w, bufio.NewWriterSize(w, 512)
	go al.run()
	e := entry{start: time.Now(), method: []byte("GET"), target: []byte("/" + strings.Repeat("x", 300)), route: "r", pool: "p", status: 200}
	done := make(chan struct{})
	go func() {
		for i := 0; i < 10000; i++ {
			al.log(&e)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("logging blocked on a stuck writer")
	}
	if al.Dropped() == 0 {
		t.Fatal("nothing dropped although the writer was stuck")
	}
	t.Logf("%d written, %d dropped", al.Written(), al.Dropped())
	go func() {
		buf := make([]byte, 1<<16)
		for {
			if _, err := r.Read(buf); err != nil {
				return
			}
		}
	}()
	al.Close()
	r.Close()
}

func TestAccessLogAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	al, err := NewAccessLog(filepath.Join(t.TempDir(), "a.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	px := newTestProxy(t, Options{AccessLog: al}, PoolSpec{}, fastBackend(t))
	h := newHandlerRun(px.s)
	for i := 0; i < 100; i++ {
		h.do(t)
	}
	if n := steadyAllocs(func() { h.do(t) }); n != 0 {
		t.Fatalf("handler with the access log allocates %.2f times per request, want 0", n)
	}
}
