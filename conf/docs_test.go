package conf

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

const docsPath = "../docs/configuration.md"

// schemaKeys lists every key path of the schema, lists written "name[]".
func schemaKeys(t reflect.Type, prefix string, out *[]string) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		if t.Kind() == reflect.Slice {
			prefix += "[]"
		}
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == rateType || t == prefixType {
		return
	}
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" {
			continue
		}
		p := name
		if prefix != "" {
			p = prefix + "." + name
		}
		ft := t.Field(i).Type
		leaf := ft.Kind() != reflect.Struct && ft.Kind() != reflect.Pointer || ft == rateType
		if ft.Kind() == reflect.Slice {
			leaf = ft.Elem().Kind() != reflect.Struct
		}
		*out = append(*out, p)
		if !leaf {
			schemaKeys(ft, p, out)
		}
	}
}

// TestDocsCoverEveryKey keeps docs/configuration.md and the schema in step.
func TestDocsCoverEveryKey(t *testing.T) {
	doc, err := os.ReadFile(docsPath)
	if err != nil {
		t.Skipf("docs not found: %v", err)
	}
	var keys []string
	schemaKeys(reflect.TypeFor[Config](), "", &keys)
	if len(keys) < 80 {
		t.Fatalf("only %d keys found; schemaKeys is broken", len(keys))
	}
	for _, k := range keys {
		if !strings.Contains(string(doc), "| `"+k+"` |") {
			t.Errorf("docs/configuration.md has no table row for `%s`", k)
		}
	}
}

// TestDocsExamplesParse parses each complete config in the docs: the yaml
// blocks whose first line is a "# floodgate.yaml" comment.
func TestDocsExamplesParse(t *testing.T) {
	doc, err := os.ReadFile(docsPath)
	if err != nil {
		t.Skipf("docs not found: %v", err)
	}
	n := 0
	for _, block := range strings.Split(string(doc), "```yaml\n")[1:] {
		body, _, _ := strings.Cut(block, "```")
		if !strings.HasPrefix(body, "# floodgate.yaml") {
			continue
		}
		n++
		if _, err := Parse("docs example", []byte(body)); err != nil {
			t.Errorf("example %d does not parse:\n%v", n, err)
		}
		checkRoundTrip(t, []byte(body))
	}
	if n < 3 {
		t.Errorf("found %d complete examples in the docs, want at least 3", n)
	}
}
