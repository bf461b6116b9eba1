package panics

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

func TestRecoverCountsAndLogsOnce(t *testing.T) {
	Allow(t)
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	before := Total()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer Recover(log, "test goroutine")
		var m map[string]int
		m["x"] = 1 // a nil map write: a runtime panic
	}()
	wg.Wait()
	if got := Total() - before; got != 1 {
		t.Fatalf("Total rose by %d, want 1", got)
	}
	out := buf.String()
	if strings.Count(out, "level=ERROR") != 1 || !strings.Contains(out, "panic contained: test goroutine") ||
		!strings.Contains(out, "assignment to entry in nil map") || !strings.Contains(out, "panics_test.go") {
		t.Fatalf("log: %s", out)
	}
}

func TestRepanicsUnderTestByDefault(t *testing.T) {
	defer func() {
		if v := recover(); v != "boom" {
			t.Fatalf("recovered %v, want the panic re-raised", v)
		}
	}()
	func() {
		defer Recover(nil, "test")
		panic("boom")
	}()
	t.Fatal("the panic was swallowed under go test")
}
