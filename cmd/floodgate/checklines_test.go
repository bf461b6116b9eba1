package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCheckErrorsCiteLines: the problems -check finds beyond the file itself
// (files that do not exist, directories that cannot be written, an address
// that is not this machine's, a feature not built yet) are PATH:LINE: FIELD:
// MSG, at the line of the key, like the problems in the file.
func TestCheckErrorsCiteLines(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	path := writeFile(t, dir, "floodgate.yaml", fmt.Sprintf(`listen: "192.0.2.1:8080"
tls:
  listen: "127.0.0.1:8443"
  certificates:
    - {cert_file: %[1]s/a.crt, key_file: %[1]s/a.key}
admin:
  listen: "127.0.0.1:9090"
  token_file: %[1]s/token
  state_file: %[1]s/state/state.json
access_log: {path: %[1]s/log/access.log}
pools:
  - name: p
    backends: [{address: "127.0.0.1:1"}]
routes:
  - name: r
    path_prefix: /
    pool: p
`, missing))
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-check", "-config", path}, &stdout, &stderr); code != 1 {
		t.Fatalf("-check: exit %d, want 1\n%s", code, stderr.String())
	}
	got := strings.TrimSpace(stderr.String())
	for _, want := range []string{
		path + ":1: listen: 192.0.2.1:8080: 192.0.2.1 is not an address of this machine",
		path + ":4: tls.certificates: open " + missing + "/a.crt",
		path + ":8: admin.token_file: stat " + missing + "/token",
		path + ":9: admin.state_file: stat " + missing + "/state",
		path + ":10: access_log.path: stat " + missing + "/log",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("-check output lacks %q:\n%s", want, got)
		}
	}
	// A feature not built yet is refused before the rest is looked at.
	unsupported := writeFile(t, dir, "unsupported.yaml", `pools:
  - name: p
    backends: [{address: "127.0.0.1:1"}]
routes:
  - name: r
    path_prefix: /
    pool: p
    timeouts: {response_timeout: 1s}
`)
	stderr.Reset()
	if code := run([]string{"-check", "-config", unsupported}, &stdout, &stderr); code != 1 ||
		!strings.HasPrefix(stderr.String(), unsupported+":8: routes[0].timeouts: not supported") {
		t.Errorf("-check: exit %d, %q; want exit 1 and %s:8: routes[0].timeouts: not supported...", code, stderr.String(), unsupported)
	}

	line := regexp.MustCompile(`^` + regexp.QuoteMeta(path) + `:\d+: [a-z_.\[\]0-9]+: `)
	for _, l := range strings.Split(got, "\n") {
		if !line.MatchString(l) {
			t.Errorf("not PATH:LINE: FIELD: MSG: %q", l)
		}
	}
}
