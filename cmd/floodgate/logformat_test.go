package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestLogFormatJSON runs the real binary with -log-format json: every line of
// the process log is one JSON object with time, level and msg, the start line
// among them with its attributes. A wrong value is refused before anything
// starts, and text stays the default.
func TestLogFormatJSON(t *testing.T) {
	cfg, addr, adminAddr := config(t, t.TempDir(), "pools:\n  - name: p\n    backends: [{address: \"127.0.0.1:1\"}]\nroutes:\n  - {name: r, path_prefix: /, pool: p}\n")
	in := startInstance(t, cfg, addr, adminAddr, "", "-log-format", "json")
	in.waitLog(t, `"msg":"floodgate listening"`)
	var sawStart bool
	sc := bufio.NewScanner(strings.NewReader(in.logText()))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", sc.Text(), err)
		}
		if rec["time"] == nil || rec["level"] == nil || rec["msg"] == nil {
			t.Errorf("log line lacks time, level or msg: %q", sc.Text())
		}
		if rec["msg"] == "floodgate listening" && rec["addr"] == addr && rec["version"] != nil {
			sawStart = true
		}
	}
	if !sawStart {
		t.Errorf("no start line with addr %s and version in:\n%s", addr, in.logText())
	}

	var stdout, stderr bytes.Buffer
	if code := run([]string{"-log-format", "xml", "-check", "-config", cfg}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), `-log-format "xml": want text or json`) {
		t.Errorf("-log-format xml: exit %d, %q; want exit 2 and want text or json", code, stderr.String())
	}
	stderr.Reset()
	log, err := newLogger(&stderr, "info", "text")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hello", "k", "v")
	if got := stderr.String(); !strings.Contains(got, "level=INFO msg=hello k=v") {
		t.Errorf("text log: %q", got)
	}
}
