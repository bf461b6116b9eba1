package conf

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// TestUnknownKeysAllReported: every unknown key, at any depth, is one problem
// with its file, line and field path; the first does not hide the others.
func TestUnknownKeysAllReported(t *testing.T) {
	y := "listn: \":80\"\n" +
		"pools:\n  - name: shop\n    backends:\n      - address: \"10.0.0.1:80\"\n        wieght: 2\n" +
		"routes:\n  - name: site\n    path_prefix: /\n    pool: shop\n    frobnicate: 1\n"
	got := parseErrs(t, y).Error()
	for _, want := range []string{
		`t.yaml:1: listn: unknown key, did you mean listen?`,
		`t.yaml:6: pools[0].backends[0].wieght: unknown key, did you mean weight?`,
		`t.yaml:11: routes[0].frobnicate: unknown key`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
}

// TestYAMLKnownFieldsReportsEveryKey pins what decode.go's comment says of
// yaml.v3: Decode with KnownFields(true) does not stop at the first unknown
// key, it reports each with its line, but without the field path.
func TestYAMLKnownFieldsReportsEveryKey(t *testing.T) {
	type inner struct {
		B int `yaml:"b"`
	}
	var v struct {
		A     int   `yaml:"a"`
		Inner inner `yaml:"inner"`
	}
	dec := yaml.NewDecoder(bytes.NewReader([]byte("x: 1\na: 2\ninner:\n  y: 3\n  b: 4\nz: 5\n")))
	dec.KnownFields(true)
	var te *yaml.TypeError
	if err := dec.Decode(&v); !errors.As(err, &te) {
		t.Fatalf("Decode: %v, want a *yaml.TypeError", err)
	}
	want := []string{"line 1: field x not found", "line 4: field y not found", "line 6: field z not found"}
	if len(te.Errors) != len(want) {
		t.Fatalf("yaml.v3 KnownFields reported %q, want %d errors", te.Errors, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(te.Errors[i], w) {
			t.Fatalf("yaml.v3 KnownFields reported %q, want %q first", te.Errors[i], w)
		}
	}
	if v.A != 2 || v.Inner.B != 4 { // and it decoded the rest
		t.Fatalf("decoded %+v", v)
	}
}
