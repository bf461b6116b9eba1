package registry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStateFileCanonicalAddresses: a state file written before addresses were
// canonical may hold one backend under two spellings; it loads as one backend,
// the first entry, and the other is reported rather than making the file
// corrupt.
func TestStateFileCanonicalAddresses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	data := `{"version": 1, "backends": [
		{"pool": "p", "address": "127.0.0.1:080", "weight": 2, "source": "api"},
		{"pool": "p", "address": "[::ffff:127.0.0.1]:80", "weight": 5, "source": "api"},
		{"pool": "p", "address": "Backend.Local:81", "weight": 1, "source": "api"}]}`
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Backends) != 2 || st.Backends[0].Address != "127.0.0.1:80" || st.Backends[0].Weight != 2 || st.Backends[1].Address != "backend.local:81" {
		t.Fatalf("loaded %+v", st.Backends)
	}
	if len(st.merged) != 1 || !strings.Contains(st.merged[0], "[::ffff:127.0.0.1]:80") {
		t.Fatalf("merged %q", st.merged)
	}
}
