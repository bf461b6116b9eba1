package registry

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStateFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	st, err := LoadState(path)
	if err != nil || len(st.Backends) != 0 {
		t.Fatalf("missing file: %+v %v", st, err)
	}
	want := State{Version: StateVersion, Backends: []SavedBackend{
		{Pool: "shop", Address: "10.0.0.9:80", Weight: 3, Source: SourceAPI},
		{Pool: "erp", Address: "dc1.erp.internal:8080", Weight: 0, Drain: true, Source: SourceConfig, FileWeight: 60},
	}}
	if err := SaveState(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := LoadState(path)
	if err != nil || !sameState(got, want) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", fi.Mode(), err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestCorruptStateFiles(t *testing.T) {
	tests := []struct{ name, data, want string }{
		{"empty", "", "empty"},
		{"truncated", `{"version": 1, "backends": [`, "invalid JSON"},
		{"unknown field", `{"version": 1, "backends": [], "extra": 1}`, "unknown field"},
		{"trailing data", `{"version": 1, "backends": []} {}`, "after the state object"},
		{"version", `{"version": 2, "backends": []}`, "version 2"},
		{"bad address", `{"version": 1, "backends": [{"pool": "p", "address": "nope", "weight": 1, "source": "api"}]}`, "host:port"},
		{"bad weight", `{"version": 1, "backends": [{"pool": "p", "address": "a:1", "weight": 1001, "source": "api"}]}`, "weight"},
		{"bad source", `{"version": 1, "backends": [{"pool": "p", "address": "a:1", "weight": 1, "source": "x"}]}`, "source"},
		{"bad pool", `{"version": 1, "backends": [{"pool": "p q", "address": "a:1", "weight": 1, "source": "api"}]}`, "pool name"},
		{"duplicate", `{"version": 1, "backends": [{"pool": "p", "address": "a:1", "weight": 1, "source": "api"}, {"pool": "p", "address": "a:1", "weight": 2, "source": "api"}]}`, "duplicates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "state.json")
			if err := os.WriteFile(path, []byte(tt.data), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadState(path)
			var ce *CorruptStateError
			if !errors.As(err, &ce) || ce.Path != path || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("LoadState: %v, want a CorruptStateError naming %s and saying %q", err, path, tt.want)
			}
		})
	}
}
