package registry

import (
	"encoding/json"
	"testing"

	"github.com/floodgate/floodgate/internal/limits"
)

// FuzzParseState checks that ParseState never panics, that what it accepts
// keeps to the state file's rules (weights, max_conns, sources), and that an
// accepted file survives SaveState's encoding unchanged. The committed corpus
// (testdata/fuzz/FuzzParseState) holds files of each format: with and without
// max_conns.
func FuzzParseState(f *testing.F) {
	for _, s := range []string{
		`{"version": 1, "backends": []}`,
		`{"version": 1, "backends": [{"pool": "shop", "address": "10.0.0.9:80", "weight": 3, "source": "api"}]}`,
		`{"version": 1, "backends": [{"pool": "shop", "address": "10.0.0.9:80", "weight": 3, "max_conns": 7, "source": "api"}]}`,
		`{"version": 1, "backends": [{"pool": "erp", "address": "dc1:80", "weight": 0, "drain": true, "max_conns": 2, "source": "config", "file_weight": 60, "file_max_conns": 8}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := ParseState(data)
		if err != nil {
			return
		}
		for i, b := range st.Backends {
			if b.Weight < 0 || b.Weight > maxWeight || limits.CheckMaxConns(int64(b.MaxConns)) != nil || limits.CheckMaxConns(int64(b.FileMaxConns)) != nil {
				t.Fatalf("backends[%d] accepted out of range: %+v", i, b)
			}
			if b.Source == SourceAPI && (b.FileWeight != 0 || b.FileMaxConns != 0) {
				t.Fatalf("backends[%d]: file_* accepted on an API backend: %+v", i, b)
			}
		}
		st.Version = StateVersion
		out, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseState(out)
		if err != nil || !sameState(again, st) {
			t.Fatalf("round trip of %s: %+v %v, want %+v", out, again, err, st)
		}
	})
}
