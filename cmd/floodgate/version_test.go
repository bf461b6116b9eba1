package main

import (
	"bufio"
	"bytes"
	"net/http"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestReadBuildInfo(t *testing.T) {
	withVCS := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/floodgate/floodgate", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{
			{Key: "-trimpath", Value: "true"},
			{Key: "vcs.revision", Value: "3f2c1e0d9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d"},
			{Key: "vcs.time", Value: "2026-12-01T10:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	noVCS := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/floodgate/floodgate", Version: "(devel)"}}
	for _, c := range []struct {
		name     string
		override string
		bi       *debug.BuildInfo
		line     string
		labels   string
	}{
		{"module version and VCS", "", withVCS,
			"floodgate v1.4.0 (revision 3f2c1e0d9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d, 2026-12-01T10:00:00Z, modified) go1.26.8",
			`goversion="go1.26.8",revision="3f2c1e0d9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d-modified",version="v1.4.0"`},
		{"-X main.version wins", "2026.12.1", withVCS,
			"floodgate 2026.12.1 (revision 3f2c1e0d9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d, 2026-12-01T10:00:00Z, modified) go1.26.8",
			`goversion="go1.26.8",revision="3f2c1e0d9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d-modified",version="2026.12.1"`},
		{"-buildvcs=false, (devel)", "", noVCS, "floodgate dev go1.26.8",
			`goversion="go1.26.8",revision="unknown",version="dev"`},
		{"no build information", "", nil, "floodgate dev", `goversion="",revision="unknown",version="dev"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := readBuildInfo(c.override, func() (*debug.BuildInfo, bool) { return c.bi, c.bi != nil })
			if got := b.String(); got != c.line {
				t.Errorf("String() = %q, want %q", got, c.line)
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(b.Collector())
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			if len(mfs) != 1 || mfs[0].GetName() != "floodgate_build_info" || len(mfs[0].GetMetric()) != 1 {
				t.Fatalf("gathered %v, want one floodgate_build_info series", mfs)
			}
			m := mfs[0].GetMetric()[0]
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+strconv.Quote(l.GetValue()))
			}
			if got := strings.Join(labels, ","); got != c.labels || m.GetGauge().GetValue() != 1 {
				t.Errorf("floodgate_build_info{%s} %v, want {%s} 1", got, m.GetGauge().GetValue(), c.labels)
			}
		})
	}
}

// TestVersionCommand runs the real binary: `floodgate version` names the Go
// version that built it whether or not VCS information is there (.ci/run
// builds with -buildvcs=false), and the running binary exports the same
// build in floodgate_build_info. A binary built with -X main.version says
// that version.
func TestVersionCommand(t *testing.T) {
	out, err := exec.Command(binPath, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(out))
	if !strings.HasPrefix(line, "floodgate ") || !strings.HasSuffix(line, " "+runtime.Version()) {
		t.Fatalf("floodgate version = %q, want floodgate VERSION [(VCS)] %s", line, runtime.Version())
	}
	ver := strings.Fields(line)[1]

	cfg, addr, adminAddr := config(t, t.TempDir(), "pools:\n  - name: p\n    backends: [{address: \"127.0.0.1:1\"}]\nroutes:\n  - {name: r, path_prefix: /, pool: p}\n")
	startInstance(t, cfg, addr, adminAddr, "")
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var series string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "floodgate_build_info{") {
			series = sc.Text()
		}
	}
	for _, want := range []string{`goversion="` + runtime.Version() + `"`, `version="` + ver + `"`, `revision="`, "} 1"} {
		if !strings.Contains(series, want) {
			t.Errorf("floodgate_build_info series %q lacks %s", series, want)
		}
	}

	if testing.Short() {
		return
	}
	bin := filepath.Join(t.TempDir(), "floodgate")
	if out, err := exec.Command("go", "build", "-ldflags", "-X main.version=9.9.9-test", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, []byte("floodgate 9.9.9-test")) {
		t.Errorf("with -X main.version=9.9.9-test: %q", out)
	}
}
