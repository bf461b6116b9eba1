package main

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// docsWorkedConfig returns the YAML of the worked configuration in
// docs/degraded-mode.md: the first yaml block after its heading.
func docsWorkedConfig(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/degraded-mode.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "\n## Worked configuration")
	if i < 0 {
		t.Fatal("docs/degraded-mode.md: no \"## Worked configuration\" section")
	}
	doc = doc[i:]
	j := strings.Index(doc, "```yaml\n")
	if j < 0 {
		t.Fatal("docs/degraded-mode.md: no yaml block in the worked configuration")
	}
	doc = doc[j+len("```yaml\n"):]
	k := strings.Index(doc, "```")
	if k < 0 {
		t.Fatal("docs/degraded-mode.md: unterminated yaml block")
	}
	return doc[:k]
}

// machineKeys are the keys in which the bench's config may differ from the docs'
// worked example: they describe the machine (addresses, files, networks, the fleet
// and its sizes), not the policy. Paths are dotted; [] is every item of a list.
var machineKeys = []string{
	"listen", "admin.listen", "limits", "capture.dir",
	"pools[].backends", "pools[].max_conns_per_backend",
	"routes[].on_degraded.file", "routes[].allow_cidrs",
}

// drop removes path from v (maps and lists from yaml.Unmarshal into any).
func drop(v any, path string) {
	head, rest, more := strings.Cut(path, ".")
	list := strings.HasSuffix(head, "[]")
	head = strings.TrimSuffix(head, "[]")
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	if !more && !list {
		delete(m, head)
		return
	}
	if !more { // "x[]": the whole list
		delete(m, head)
		return
	}
	if !list {
		drop(m[head], rest)
		return
	}
	items, _ := m[head].([]any)
	for _, it := range items {
		drop(it, rest)
	}
}

// diff lists the paths at which a and b differ.
func diff(path string, a, b any) []string {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		var keys []string
		for k := range am {
			keys = append(keys, k)
		}
		for k := range bm {
			if _, ok := am[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		var out []string
		for _, k := range keys {
			out = append(out, diff(path+"."+k, am[k], bm[k])...)
		}
		return out
	}
	al, aok := a.([]any)
	bl, bok := b.([]any)
	if aok && bok && len(al) == len(bl) {
		var out []string
		for i := range al {
			out = append(out, diff(fmt.Sprintf("%s[%d]", path, i), al[i], bl[i])...)
		}
		return out
	}
	if !reflect.DeepEqual(a, b) {
		return []string{fmt.Sprintf("%s: docs %v, bench %v", path, a, b)}
	}
	return nil
}

// TestFloodgateConfigIsTheDocsExample: the bench runs floodgate with the worked
// configuration of docs/degraded-mode.md, as issue 15 requires (no per-harness
// tuning). Only machineKeys may differ.
func TestFloodgateConfigIsTheDocsExample(t *testing.T) {
	t.Parallel()
	var docs, bench any
	if err := yaml.Unmarshal([]byte(docsWorkedConfig(t)), &docs); err != nil {
		t.Fatalf("docs: %v", err)
	}
	b, err := os.ReadFile("floodgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &bench); err != nil {
		t.Fatalf("floodgate.yaml: %v", err)
	}
	for _, k := range machineKeys {
		drop(docs, k)
		drop(bench, k)
	}
	if d := diff("", docs, bench); len(d) > 0 {
		t.Errorf("bench/spike/floodgate.yaml differs from the worked configuration of docs/degraded-mode.md:\n%s", strings.Join(d, "\n"))
	}
}

// TestFloodgateConfigFitsTheFleet: the machine keys name the fleet spike.sh starts
// (defaultShop and the back office), weighted by slots.
func TestFloodgateConfigFitsTheFleet(t *testing.T) {
	t.Parallel()
	var cfg struct {
		Pools []struct {
			Name     string `yaml:"name"`
			Backends []struct {
				Address  string `yaml:"address"`
				Weight   int    `yaml:"weight"`
				MaxConns int    `yaml:"max_conns"`
			} `yaml:"backends"`
		} `yaml:"pools"`
	}
	b, err := os.ReadFile("floodgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	shop, err := parseBackends(defaultShop, "shop", false)
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, p := range cfg.Pools {
		if p.Name != "shop" {
			continue
		}
		for _, be := range p.Backends {
			got = append(got, fmt.Sprintf("%s w%d m%d", be.Address, be.Weight, be.MaxConns))
		}
	}
	for _, s := range shop {
		want = append(want, fmt.Sprintf("%s w%d m%d", s.Addr, s.Slots, s.Slots))
	}
	if !slices.Equal(got, want) {
		t.Errorf("shop backends %v, want %v (the origin's -shop default, weight and max_conns = slots)", got, want)
	}
}
