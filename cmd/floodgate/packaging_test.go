package main

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/floodgate/floodgate/conf"
)

// unitFile is a systemd unit as sections of directives; a directive given
// more than once keeps every value, in order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, `\`) {
				t.Fatalf("%s:%d: not a directive in a section: %q", path, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// one returns the single value of a directive, failing if it is missing or repeated.
func (u unitFile) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	if len(v) != 1 {
		t.Fatalf("[%s] %s: %d values %q, want exactly one", section, key, len(v), v)
	}
	return v[0]
}

// installedConfig copies packaging/floodgate.yaml into a temporary root,
// with the directories the unit gives it (/var/lib/floodgate and
// /var/log/floodgate) made there, and returns its path and parsed form.
func installedConfig(t *testing.T) (string, *conf.Config) {
	t.Helper()
	data, err := os.ReadFile("../../packaging/floodgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for _, d := range []string{"/etc/floodgate", "/var/lib/floodgate", "/var/log/floodgate"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
		data = bytes.ReplaceAll(data, []byte(d+"/"), []byte(filepath.Join(root, d)+"/"))
	}
	path := writeFile(t, filepath.Join(root, "etc/floodgate"), "floodgate.yaml", string(data))
	cfg, err := conf.Parse(path, data)
	if err != nil {
		t.Fatalf("packaging/floodgate.yaml: %v", err)
	}
	return path, cfg
}

// TestSystemdUnit checks packaging/floodgate.service: the directives an
// operator relies on are there, the flags of ExecStart and ExecStartPre are
// ones run accepts (run with them, -check added, against the packaged config
// passes), and the stop timeout leaves room for the drain. CI also runs
// systemd-analyze verify on it where systemd is installed (.ci/run).
func TestSystemdUnit(t *testing.T) {
	u := parseUnit(t, "../../packaging/floodgate.service")
	for _, want := range [][3]string{
		{"Service", "ExecReload", "/bin/kill -HUP $MAINPID"},
		{"Service", "KillSignal", "SIGTERM"},
		{"Service", "LimitNOFILE", "1048576"},
		{"Service", "AmbientCapabilities", "CAP_NET_BIND_SERVICE"},
		{"Service", "CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"},
		{"Service", "DynamicUser", "yes"},
		{"Service", "StateDirectory", "floodgate"},
		{"Service", "LogsDirectory", "floodgate"},
		{"Service", "ProtectSystem", "strict"},
		{"Service", "NoNewPrivileges", "yes"},
		{"Service", "ProtectHome", "yes"},
		{"Service", "PrivateTmp", "yes"},
		{"Install", "WantedBy", "multi-user.target"},
	} {
		if got := u.one(t, want[0], want[1]); got != want[2] {
			t.Errorf("[%s] %s=%s, want %s", want[0], want[1], got, want[2])
		}
	}

	path, cfg := installedConfig(t)
	for _, key := range []string{"ExecStart", "ExecStartPre"} {
		fields := strings.Fields(u.one(t, "Service", key))
		if fields[0] != "/usr/local/bin/floodgate" {
			t.Errorf("%s runs %s, want /usr/local/bin/floodgate", key, fields[0])
		}
		args := fields[1:]
		var sawConfig bool
		for i, a := range args {
			if a == "-config" && i+1 < len(args) {
				if args[i+1] != "/etc/floodgate/floodgate.yaml" {
					t.Errorf("%s: -config %s, want /etc/floodgate/floodgate.yaml", key, args[i+1])
				}
				args[i+1] = path
				sawConfig = true
			}
		}
		if !sawConfig {
			t.Errorf("%s has no -config: %q", key, fields)
		}
		if !contains(args, "-check") {
			args = append([]string{"-check"}, args...)
		}
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 0 {
			t.Errorf("%s: run(%q) = %d, want 0; stderr:\n%s", key, args, code, stderr.String())
		}
	}

	stop, err := time.ParseDuration(u.one(t, "Service", "TimeoutStopSec"))
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	if stop <= cfg.Timeouts.ShutdownGrace {
		t.Errorf("TimeoutStopSec=%v is not above the packaged shutdown_grace %v: systemd would SIGKILL a drain", stop, cfg.Timeouts.ShutdownGrace)
	}
	// The state file and the capture journal are in StateDirectory, the access
	// log in LogsDirectory: the only places ProtectSystem=strict lets it write.
	if want := "/var/lib/floodgate/"; !strings.HasPrefix(unroot(path, cfg.Admin.StateFile), want) || !strings.HasPrefix(unroot(path, cfg.Capture.Dir)+"/", want) {
		t.Errorf("state_file %s and capture.dir %s: want both under %s", cfg.Admin.StateFile, cfg.Capture.Dir, want)
	}
	if want := "/var/log/floodgate/"; !strings.HasPrefix(unroot(path, cfg.AccessLog.Path), want) {
		t.Errorf("access_log.path %s: want it under %s", cfg.AccessLog.Path, want)
	}
}

// unroot turns a path inside installedConfig's temporary root back into the
// installed path.
func unroot(configPath, p string) string {
	root := filepath.Dir(filepath.Dir(filepath.Dir(configPath)))
	return strings.TrimPrefix(p, root)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// dockerStage is one FROM of a Dockerfile with its instructions, continuation
// lines joined and comments dropped.
type dockerStage struct {
	from, name string
	instr      [][2]string // {INSTRUCTION, arguments}
}

func parseDockerfile(t *testing.T, path string) []dockerStage {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var stages []dockerStage
	var cur string
	flush := func() {
		line := strings.TrimSpace(cur)
		cur = ""
		if line == "" {
			return
		}
		op, args, _ := strings.Cut(line, " ")
		op = strings.ToUpper(op)
		args = strings.TrimSpace(args)
		if op == "FROM" {
			f := strings.Fields(args)
			s := dockerStage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.name = f[2]
			}
			stages = append(stages, s)
			return
		}
		if len(stages) == 0 {
			if op != "ARG" {
				t.Fatalf("%s: %s before the first FROM", path, op)
			}
			return
		}
		s := &stages[len(stages)-1]
		s.instr = append(s.instr, [2]string{op, args})
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cur += strings.TrimSuffix(line, `\`) + " "
			continue
		}
		cur += line
		flush()
	}
	flush()
	return stages
}

// TestDockerfile checks packaging/Dockerfile without building it (the tests
// have no registry to pull images from): a Go builder stage makes a static
// binary (CGO_ENABLED=0), the final stage is distroless or scratch, copies
// only from the builder, runs as a non-root user, exposes the packaged
// config's port and starts with the config path the systemd unit uses.
func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, "../../packaging/Dockerfile")
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a multi-stage build", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	if !strings.HasPrefix(build.from, "golang:") || build.name == "" {
		t.Errorf("first stage FROM %s AS %q, want a named golang: builder", build.from, build.name)
	}
	var static bool
	for _, in := range build.instr {
		if in[0] == "RUN" && strings.Contains(in[1], "go build") && strings.Contains(in[1], "CGO_ENABLED=0") && strings.Contains(in[1], "./cmd/floodgate") {
			static = true
		}
	}
	if !static {
		t.Error("no RUN CGO_ENABLED=0 go build ./cmd/floodgate in the builder")
	}
	if !strings.HasPrefix(final.from, "gcr.io/distroless/static") && final.from != "scratch" {
		t.Errorf("final stage FROM %s, want distroless/static or scratch", final.from)
	}
	got := map[string][]string{}
	for _, in := range final.instr {
		got[in[0]] = append(got[in[0]], in[1])
		if in[0] == "COPY" && !strings.Contains(in[1], "--from="+build.name) {
			t.Errorf("final stage COPY %s: want everything from the %s stage", in[1], build.name)
		}
		if in[0] == "RUN" {
			t.Errorf("final stage RUN %s: distroless has no shell", in[1])
		}
	}
	if u := got["USER"]; len(u) != 1 {
		t.Errorf("final stage USER %q, want exactly one", u)
	} else if user, _, _ := strings.Cut(u[0], ":"); user == "root" || user == "0" {
		t.Errorf("final stage USER %s: want non-root", u[0])
	}
	_, cfg := installedConfig(t)
	_, port, _ := net.SplitHostPort(cfg.Listen)
	if e := got["EXPOSE"]; !contains(strings.Fields(strings.Join(e, " ")), port) {
		t.Errorf("EXPOSE %q does not include the packaged listen port %s", e, port)
	}
	if c := got["CMD"]; len(c) != 1 || c[0] != `["-config", "/etc/floodgate/floodgate.yaml"]` {
		t.Errorf("CMD %q, want the -config path the systemd unit uses", c)
	}
	if e := got["ENTRYPOINT"]; len(e) != 1 || e[0] != `["/usr/local/bin/floodgate"]` {
		t.Errorf("ENTRYPOINT %q, want [\"/usr/local/bin/floodgate\"]", e)
	}
}
