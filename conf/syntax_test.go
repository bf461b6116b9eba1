package conf

import (
	"strings"
	"testing"
)

// TestYAMLSyntaxErrorLine checks that a YAML syntax error is reported at the
// line of the problem, not at the line where the enclosing block began (the
// YAML library's own line, one less than that block's 1-based line): an
// operator who mis-indents line 6 is told line 6.
func TestYAMLSyntaxErrorLine(t *testing.T) {
	_, err := Load("testdata/indent-error.yaml")
	if want := "testdata/indent-error.yaml:6: invalid YAML: "; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Load(testdata/indent-error.yaml) = %v, want %s...", err, want)
	}

	long := "pools:\n" + strings.Repeat("  - {name: p, backends: [{address: \"10.0.0.1:80\"}]}\n", 400)
	for _, c := range []struct{ name, yaml, want string }{
		{"mis-indented key in a list item", "pools:\n  - name: p\n    backends: []\n   health: {type: tcp}\n", "4: invalid YAML: "},
		{"mis-indented key after a long list", long + " routes: []\n", "402: invalid YAML: "},
		{"tab", "listen: \":80\"\npools:\n\t- name: shop\n", "3: invalid YAML: found character that cannot start any token"},
		{"mapping value in a scalar", "listen: \":80\"\nadmin:\n  listen: a: b\n", "3: invalid YAML: mapping values are not allowed"},
		{"unclosed flow list", "listen: \":80\"\npools: [\n  {name: p},\nroutes: []\n", "4: invalid YAML: did not find expected ',' or ']'"},
		{"unclosed quote", "listen: \":80\"\nadmin:\n  listen: \"127.0.0.1:9090\n  token_file: x\n", "3: invalid YAML: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(c.yaml))
			if err == nil || !strings.HasPrefix(err.Error(), "f.yaml:"+c.want) {
				t.Errorf("got %v, want f.yaml:%s...", err, c.want)
			}
		})
	}
}
