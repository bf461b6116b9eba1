package conf

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// seeds are the reference config of the original design (testdata/architecture.yaml), the YAML blocks of the docs, and a few
// edge cases.
func seeds(t testing.TB) [][]byte {
	var out [][]byte
	b, err := os.ReadFile("testdata/architecture.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, b)
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
		[]byte("pools: [{name: shop, max_conns_per_backend: 4, backends: [{address: \"10.0.0.1:80\", max_conns: 1}, {address: \"10.0.0.2:80\", max_conns: 3}]}]\n"+routes1),
	)
	return out
}

// checkErrors checks the invariants of a failed Parse.
func checkErrors(t *testing.T, c *Config, err error) {
	t.Helper()
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
}

// watchdog crashes the fuzz worker if one input runs for seconds: Go's fuzzer
// has no per-input timeout, so a hang would otherwise stall the run instead of
// being saved as a failing input.
func watchdog(data any) (stop func() bool) {
	return time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("Parse hung on %q", data)) }).Stop
}

// FuzzParse checks that Parse never panics, that every problem it reports has
// a line and a single-line message, and that a config it accepts survives a
// round trip through YAML unchanged.
func FuzzParse(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		defer watchdog(data)()
		c, err := Parse("f.yaml", data)
		if err != nil {
			checkErrors(t, c, err)
			return
		}
		if c == nil || len(c.Pools) == 0 || len(c.Routes) == 0 {
			t.Fatalf("Parse accepted a config without pools or routes: %+v", c)
		}
		checkRoundTrip(t, data)
	})
}

// FuzzField replaces one value of a valid config (picked by which) with a
// fuzzed one, read as YAML so it can be a number, a string, a list... Byte
// mutations of whole files almost never stay valid; this keeps most of the
// file valid so that each validator and the round trip see many accepted
// values near their limits.
func FuzzField(f *testing.F) {
	base, err := os.ReadFile("testdata/architecture.yaml")
	if err != nil {
		f.Fatal(err)
	}
	var tree any
	if err := yaml.Unmarshal(base, &tree); err != nil {
		f.Fatal(err)
	}
	leaves := sortedLeaves(tree)
	for i, v := range []string{"0", "1", "-1", "\"\"", "~", "[]", "{}", "1001", "0.5", "1h", "64MB", "0/s", "\"a b\"", "[::1]:80"} {
		f.Add(uint(i*7), v)
	}
	f.Fuzz(func(t *testing.T, which uint, value string) {
		defer watchdog(value)()
		var v any
		if yaml.Unmarshal([]byte(value), &v) != nil {
			v = value
		}
		var doc any
		if err := yaml.Unmarshal(base, &doc); err != nil {
			t.Fatal(err)
		}
		setLeaf(doc, leaves[which%uint(len(leaves))], v)
		data, err := yaml.Marshal(doc)
		if err != nil {
			return
		}
		c, err := Parse("f.yaml", data)
		if err != nil {
			checkErrors(t, c, err)
			return
		}
		checkRoundTrip(t, data)
	})
}

// sortedLeaves lists the path of every scalar of n, sorted so that an index
// means the same leaf on every run whatever the map order.
func sortedLeaves(n any) [][]any {
	var out [][]any
	collectLeaves(n, nil, &out)
	slices.SortFunc(out, func(a, b []any) int { return strings.Compare(fmt.Sprint(a...), fmt.Sprint(b...)) })
	return out
}

// collectLeaves lists the path (map keys and list indexes) of every scalar.
func collectLeaves(n any, path []any, out *[][]any) {
	switch n := n.(type) {
	case map[string]any:
		for k, v := range n {
			collectLeaves(v, append(path[:len(path):len(path)], k), out)
		}
	case []any:
		for i, v := range n {
			collectLeaves(v, append(path[:len(path):len(path)], i), out)
		}
	default:
		*out = append(*out, path)
	}
}

func setLeaf(n any, path []any, v any) {
	for i, p := range path {
		last := i == len(path)-1
		switch p := p.(type) {
		case string:
			m := n.(map[string]any)
			if last {
				m[p] = v
				return
			}
			n = m[p]
		case int:
			s := n.([]any)
			if last {
				s[p] = v
				return
			}
			n = s[p]
		}
	}
}

func TestFuzzFieldHelpers(t *testing.T) {
	doc := map[string]any{"a": []any{map[string]any{"b": 1}, 2}, "c": "x"}
	leaves := sortedLeaves(doc)
	if want := [][]any{{"a", 0, "b"}, {"a", 1}, {"c"}}; !reflect.DeepEqual(leaves, want) {
		t.Fatalf("leaves = %v, want %v", leaves, want)
	}
	setLeaf(doc, leaves[0], "z")
	if doc["a"].([]any)[0].(map[string]any)["b"] != "z" {
		t.Errorf("setLeaf did not set: %v", doc)
	}
}
