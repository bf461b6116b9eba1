package registry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStateFileMaxConns: a backend's own max_conns survives a restart (API
// backends and overrides of config backends, with the file's value the
// override was made against), and a state file written before backends had
// one loads, each backend with its pool's limit.
func TestStateFileMaxConns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	var persisted State
	r, _, ctx := newStore(t, Options{Persist: func(s State) error { persisted = s; return SaveState(path, s) }})
	cfg := Config{Pools: []PoolSpec{{Name: "shop", Backends: []BackendSpec{{Address: "10.0.0.1:80", Weight: 1, MaxConns: 8}}}}}
	if _, err := r.Init(ctx, cfg, State{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Register(ctx, "shop", "10.0.0.9:80", BackendUpdate{MaxConns: ptrTo(3)}); err != nil {
		t.Fatal(err)
	}
	if err := r.Update(ctx, "shop", "10.0.0.1:80", BackendUpdate{MaxConns: ptrTo(2)}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(data), `"max_conns": 3`) || !strings.Contains(string(data), `"file_max_conns": 8`) {
		t.Fatalf("state file: %s %v", data, err)
	}
	st, err := LoadState(path)
	if err != nil || !sameState(st, persisted) {
		t.Fatalf("round trip: %+v %v, want %+v", st, err, persisted)
	}

	// A restart: a new registry from the same file and config.
	r2, a2, ctx2 := newStore(t, Options{})
	res, err := r2.Init(ctx2, cfg, st)
	if err != nil || res.Restored != 2 || len(res.Skipped) != 0 {
		t.Fatalf("restore: %+v %v", res, err)
	}
	got := map[string]Backend{}
	for _, b := range a2.last().Pools[0].Backends {
		got[b.Address] = b
	}
	if b := got["10.0.0.9:80"]; b.MaxConns != 3 || b.Source != SourceAPI {
		t.Errorf("restored API backend %+v", b)
	}
	if b := got["10.0.0.1:80"]; b.MaxConns != 2 || b.FileMaxConns != 8 || !b.Overridden {
		t.Errorf("restored override %+v", b)
	}
	// The override is dropped when the file changed the backend's max_conns
	// since it was made.
	cfg.Pools[0].Backends[0].MaxConns = 16
	r3, _, ctx3 := newStore(t, Options{})
	res, err = r3.Init(ctx3, cfg, st)
	if err != nil || res.Restored != 1 || len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0], "max_conns") {
		t.Fatalf("restore after the file changed: %+v %v", res, err)
	}

	// An old state file: no max_conns anywhere.
	old := `{"version": 1, "backends": [
  {"pool": "shop", "address": "10.0.0.9:80", "weight": 4, "source": "api"},
  {"pool": "shop", "address": "10.0.0.1:80", "weight": 0, "source": "config", "file_weight": 1}
]}`
	st, err = ParseState([]byte(old))
	if err != nil {
		t.Fatalf("old state file refused: %v", err)
	}
	cfg.Pools[0].Backends[0].MaxConns = 0
	r4, a4, ctx4 := newStore(t, Options{})
	if res, err := r4.Init(ctx4, cfg, st); err != nil || res.Restored != 2 {
		t.Fatalf("restore of an old state file: %+v %v", res, err)
	}
	for _, b := range a4.last().Pools[0].Backends {
		if b.MaxConns != 0 {
			t.Errorf("%s: max_conns %d from an old state file, want 0 (the pool's)", b.Address, b.MaxConns)
		}
	}
}

func TestStateFileBadMaxConns(t *testing.T) {
	for data, want := range map[string]string{
		`{"version": 1, "backends": [{"pool": "p", "address": "a:1", "weight": 1, "max_conns": -1, "source": "api"}]}`:                           "backends[0]: max_conns: must be between 0 and 1000000, got -1",
		`{"version": 1, "backends": [{"pool": "p", "address": "a:1", "weight": 1, "max_conns": 1000001, "source": "api"}]}`:                      "backends[0]: max_conns: must be between 0 and 1000000, got 1000001",
		`{"version": 1, "backends": [{"pool": "p", "address": "a:1", "weight": 1, "file_max_conns": 3, "source": "api"}]}`:                       "file_max_conns is only for source config",
		`{"version": 1, "backends": [{"pool": "p", "address": "a:1", "weight": 1, "file_weight": 1, "file_max_conns": -3, "source": "config"}]}`: "backends[0]: file_max_conns: must be between 0 and 1000000, got -3",
		`{"version": 1, "backends": [{"pool": "p", "address": "a:1", "weight": 1, "max_conns": "2", "source": "api"}]}`:                          "max_conns",
	} {
		if _, err := ParseState([]byte(data)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseState(%s): %v, want %q", data, err, want)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }
