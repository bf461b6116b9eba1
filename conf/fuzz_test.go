package conf

import (
	"fmt"
	"os"
	"time"
	"path/filepath"
	"strings"
	"testing"
)

// seeds are the configs under testdata, the YAML blocks of the docs, and a few
// edge cases.
func seeds(t testing.TB) [][]byte {
	var out [][]byte
	files, _ := filepath.Glob("testdata/valid/*.yaml")
	files = append(files, "testdata/architecture.yaml")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	if doc, err := os.ReadFile(docsPath); err == nil {
		for _, block := range strings.Split(string(doc), "```yaml\n")[1:] {
			body, _, _ := strings.Cut(block, "```")
			out = append(out, []byte(body))
		}
	}
	out = append(out,
		[]byte(pools1+routes1),
		[]byte("listen: \":0\"\n"+pools1+routes1+"x: &a 1\ny: *a\n"),
		[]byte("pools: [{name: shop, health: {}, degrade: {enter: {error_rate: 0.5}, exit: {error_rate: 0.1}}}]\n"+routes1),
		[]byte(pools1+"routes: [{name: a, path_prefix: /, pool: shop, host: \"*.A.example\", rate_limit: {rate: 0.1/s}, cache: {enabled: true}, on_degraded: {action: stale}}]\n"),
		[]byte("---\n"+pools1+"---\n"+routes1),
		[]byte("pools:\n\t- x\n"),
	)
	return out
}

// FuzzParse checks that Parse never panics, that every problem it reports has
// a line and a single-line message, and that a config it accepts survives a
// round trip through YAML unchanged.
func FuzzParse(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Go's fuzzer has no per-input timeout; crash the worker on a hang
		// so the input is saved as a failure instead of stalling the run.
		hang := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("Parse hung on %q", data)) })
		defer hang.Stop()
		c, err := Parse("f.yaml", data)
		if err == nil {
			if c == nil || len(c.Pools) == 0 || len(c.Routes) == 0 {
				t.Fatalf("Parse accepted a config without pools or routes: %+v", c)
			}
			checkRoundTrip(t, data)
			return
		}
		if c != nil {
			t.Fatalf("Parse returned a *Config with an error")
		}
		es, ok := err.(Errors)
		if !ok || len(es) == 0 {
			t.Fatalf("error is %T %v, want non-empty Errors", err, err)
		}
		for i, e := range es {
			if e.Line < 1 {
				t.Errorf("error without a line: %q", e)
			}
			if i > 0 && es[i-1].Line > e.Line {
				t.Errorf("errors not sorted by line:\n%v", es)
			}
			if msg := e.Error(); strings.ContainsAny(msg, "\n\r") {
				t.Errorf("multi-line error: %q", msg)
			}
		}
	})
}
