package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// instance is a floodgate process with its public and admin addresses.
type instance struct {
	*proc
	addr, admin, token string
}

// config writes a config with a free public and admin port and the given body
// (pools, routes, ...) and returns its path and the two addresses.
func config(t *testing.T, dir, body string, extra ...string) (path, addr, adminAddr string) {
	t.Helper()
	addr, adminAddr = freePort(t), freePort(t)
	admin := fmt.Sprintf("admin:\n  listen: %q\n", adminAddr)
	for _, e := range extra {
		admin += "  " + e + "\n"
	}
	return writeFile(t, dir, "floodgate.yaml", fmt.Sprintf("listen: %q\n%s%s", addr, admin, body)), addr, adminAddr
}

func startInstance(t *testing.T, cfg, addr, adminAddr, token string, args ...string) *instance {
	t.Helper()
	p := start(t, append([]string{"-config", cfg}, args...)...)
	p.waitLog(t, "floodgate listening")
	return &instance{proc: p, addr: addr, admin: adminAddr, token: token}
}

// api sends a request to the admin API and decodes a JSON answer.
func (in *instance) api(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+in.admin+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if in.token != "" {
		req.Header.Set("Authorization", "Bearer "+in.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s %s: %q: %v", method, path, raw, err)
		}
	} else {
		m = map[string]any{"text": string(raw)}
	}
	return resp.StatusCode, m
}

func (in *instance) mustAPI(t *testing.T, method, path, body string, want int) map[string]any {
	t.Helper()
	code, m := in.api(t, method, path, body)
	if code != want {
		t.Fatalf("%s %s %s: %d %v, want %d", method, path, body, code, m, want)
	}
	return m
}

// metric returns the value of one sample of /metrics, or -1 when absent.
func (in *instance) metric(t *testing.T, sample string) float64 {
	t.Helper()
	_, m := in.api(t, "GET", "/metrics", "")
	sc := bufio.NewScanner(strings.NewReader(m["text"].(string)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return -1
}

// backendOf finds a backend in GET /api/v1/pools.
func (in *instance) backendOf(t *testing.T, pool, address string) map[string]any {
	t.Helper()
	m := in.mustAPI(t, "GET", "/api/v1/pools", "", 200)
	for _, p := range m["pools"].([]any) {
		pm := p.(map[string]any)
		if pm["name"] != pool {
			continue
		}
		for _, b := range pm["backends"].([]any) {
			if bm := b.(map[string]any); bm["address"] == address {
				return bm
			}
		}
	}
	return nil
}

// servedBy waits until a GET through the proxy is answered by want.
func (in *instance) servedBy(t *testing.T, want string) {
	t.Helper()
	waitFor(t, "a response from "+want, 20*time.Second, func() bool {
		resp, err := http.Get("http://" + in.addr + "/")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b) == want
	})
}

// TestAdminAPI drives every endpoint of the real binary, without a token.
func TestAdminAPI(t *testing.T) {
	a := backend(t, "a", nil)
	b := backend(t, "b", nil)
	dir := t.TempDir()
	cfg, addr, adminAddr := config(t, dir, fmt.Sprintf("pools:\n  - name: p\n    backends: [{address: %q}]\nroutes:\n  - {name: r, path_prefix: /, pool: p}\n", a))
	in := startInstance(t, cfg, addr, adminAddr, "")

	m := in.mustAPI(t, "GET", "/healthz", "", 200)
	if m["status"] != "ok" {
		t.Fatalf("healthz %v", m)
	}
	if bm := in.backendOf(t, "p", a); bm == nil || bm["state"] != "up" || bm["source"] != "config" {
		t.Fatalf("config backend %v", bm)
	}
	// Register b, retry (idempotent), and route everything to it.
	in.mustAPI(t, "POST", "/api/v1/pools/p/backends", fmt.Sprintf(`{"address": %q, "weight": 1}`, b), 201)
	in.mustAPI(t, "POST", "/api/v1/pools/p/backends", fmt.Sprintf(`{"address": %q, "weight": 1}`, b), 200)
	in.mustAPI(t, "PATCH", "/api/v1/pools/p/backends/"+a, `{"drain": true}`, 200)
	in.servedBy(t, "b")
	for i := 0; i < 5; i++ {
		if _, body := get(t, "http://"+addr+"/"); body != "b" {
			t.Fatalf("a drained backend answered: %q", body)
		}
	}
	// Back to a, and remove b.
	in.mustAPI(t, "PATCH", "/api/v1/pools/p/backends/"+a, `{"drain": false}`, 200)
	m = in.mustAPI(t, "DELETE", "/api/v1/pools/p/backends/"+b, "", 200)
	if m["removed"] != true || m["drained"] != true {
		t.Fatalf("delete %v", m)
	}
	for i := 0; i < 5; i++ {
		if _, body := get(t, "http://"+addr+"/"); body != "a" {
			t.Fatalf("after DELETE: %q", body)
		}
	}
	// Errors, one of each.
	in.mustAPI(t, "POST", "/api/v1/pools/p/backends", `{"address": "nope"}`, 400)
	in.mustAPI(t, "POST", "/api/v1/pools/p/backends", `{"address": "127.0.0.1:1", "x": 1}`, 400)
	in.mustAPI(t, "POST", "/api/v1/pools/q/backends", `{"address": "127.0.0.1:1"}`, 404)
	in.mustAPI(t, "DELETE", "/api/v1/pools/p/backends/"+b, "", 404)
	in.mustAPI(t, "DELETE", "/api/v1/pools/p/backends/"+a, "", 409)
	in.mustAPI(t, "PUT", "/api/v1/reload", "", 405)
	// Reload and metrics.
	m = in.mustAPI(t, "POST", "/api/v1/reload", "", 200)
	if m["changed"] != false {
		t.Fatalf("reload of an unchanged file: %v", m)
	}
	for _, s := range []string{
		`floodgate_backend_up{backend="` + a + `",pool="p"}`,
		`floodgate_backend_weight{backend="` + a + `",pool="p"}`,
		`floodgate_backend_inflight{backend="` + a + `",pool="p"}`,
		`floodgate_config_reloads_total{result="success"}`,
		`floodgate_requests_total{code="200",pool="p",route="r"}`,
		`floodgate_request_duration_seconds_count{pool="p",route="r"}`,
		`go_goroutines`,
	} {
		if v := in.metric(t, s); v < 0 {
			t.Errorf("/metrics lacks %s", s)
		}
	}
	if v := in.metric(t, `floodgate_config_reloads_total{result="success"}`); v != 1 {
		t.Errorf("reloads counted %v, want 1", v)
	}
	if strings.Contains(in.logText(), "Authorization") {
		t.Error("request headers are logged")
	}
}

// TestAdminAuth: with a token every endpoint but /healthz needs it; without
// one, an admin listener beyond loopback is refused at start.
func TestAdminAuth(t *testing.T) {
	dir := t.TempDir()
	const token = "0123456789abcdef0123456789abcdef"
	tokenFile := writeFile(t, dir, "admin.token", token+"\n")
	if err := os.Chmod(tokenFile, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, addr, adminAddr := config(t, dir, "pools:\n  - name: p\n    backends: [{address: \"127.0.0.1:1\"}]\nroutes:\n  - {name: r, path_prefix: /, pool: p}\n",
		fmt.Sprintf("token_file: %q", tokenFile))
	in := startInstance(t, cfg, addr, adminAddr, "")
	for _, path := range []string{"/api/v1/pools", "/metrics", "/api/v1/nothing"} {
		if code, m := in.api(t, "GET", path, ""); code != 401 || m["error"] == nil {
			t.Errorf("GET %s without the token: %d %v", path, code, m)
		}
	}
	in.token = "wrong"
	if code, _ := in.api(t, "POST", "/api/v1/pools/p/backends", `{"address": "127.0.0.1:2"}`); code != 401 {
		t.Errorf("register with a wrong token: %d", code)
	}
	in.token = ""
	in.mustAPI(t, "GET", "/healthz", "", 200)
	in.token = token
	in.mustAPI(t, "GET", "/api/v1/pools", "", 200)
	in.mustAPI(t, "POST", "/api/v1/pools/p/backends", `{"address": "127.0.0.1:2"}`, 201)
	in.mustAPI(t, "POST", "/api/v1/reload", "", 200)
	if strings.Contains(in.logText(), token) {
		t.Fatal("the token appears in the log")
	}

	// Beyond loopback without a token: refused, naming the setting.
	cfg2 := writeFile(t, dir, "open.yaml", fmt.Sprintf("listen: %q\nadmin: {listen: \"0.0.0.0:%s\"}\npools:\n  - name: p\n    backends: [{address: \"127.0.0.1:1\"}]\nroutes:\n  - {name: r, path_prefix: /, pool: p}\n",
		freePort(t), strings.Split(freePort(t), ":")[1]))
	p := start(t, "-config", cfg2)
	if code := p.exitCode(t); code != 1 || !strings.Contains(p.logText(), "admin.token_file") {
		t.Fatalf("open admin listener without a token: exit %d\n%s", code, p.logText())
	}
	// An empty token file is refused too.
	empty := writeFile(t, dir, "empty.token", "\n")
	cfg3, addr3, admin3 := config(t, t.TempDir(), "pools:\n  - name: p\n    backends: [{address: \"127.0.0.1:1\"}]\nroutes:\n  - {name: r, path_prefix: /, pool: p}\n",
		fmt.Sprintf("token_file: %q", empty))
	_, _ = addr3, admin3
	p = start(t, "-config", cfg3)
	if code := p.exitCode(t); code != 1 || !strings.Contains(p.logText(), "empty") {
		t.Fatalf("empty token file: exit %d\n%s", code, p.logText())
	}
}

// TestStateFileSurvivesRestart registers and changes backends over the API, stops
// floodgate, starts it again and finds them.
func TestStateFileSurvivesRestart(t *testing.T) {
	a := backend(t, "a", nil)
	b := backend(t, "b", nil)
	dir := t.TempDir()
	state := filepath.Join(dir, "state.json")
	cfg, addr, adminAddr := config(t, dir, fmt.Sprintf("pools:\n  - name: p\n    backends: [{address: %q, weight: 5}]\nroutes:\n  - {name: r, path_prefix: /, pool: p}\n", a),
		fmt.Sprintf("state_file: %q", state))
	in := startInstance(t, cfg, addr, adminAddr, "")
	in.mustAPI(t, "POST", "/api/v1/pools/p/backends", fmt.Sprintf(`{"address": %q, "weight": 7}`, b), 201)
	in.mustAPI(t, "PATCH", "/api/v1/pools/p/backends/"+a, `{"weight": 0}`, 200) // an override of the file
	in.cmd.Process.Signal(syscall.SIGTERM)
	if code := in.exitCode(t); code != 0 {
		t.Fatalf("exit %d", code)
	}

	in = startInstance(t, cfg, addr, adminAddr, "")
	if bm := in.backendOf(t, "p", b); bm == nil || bm["source"] != "api" || bm["weight"] != 7.0 {
		t.Fatalf("after restart, API backend %v", bm)
	}
	if am := in.backendOf(t, "p", a); am == nil || am["weight"] != 0.0 || am["overridden"] != true || am["state"] != "draining" {
		t.Fatalf("after restart, overridden config backend %v", am)
	}
	for i := 0; i < 5; i++ {
		if _, body := get(t, "http://"+addr+"/"); body != "b" {
			t.Fatalf("after restart served by %q, want b", body)
		}
	}
	if !strings.Contains(in.logText(), "state restored") {
		t.Error("restore not logged")
	}
	// Removing it is saved too.
	in.mustAPI(t, "DELETE", "/api/v1/pools/p/backends/"+b, "", 200)
	data, err := os.ReadFile(state)
	if err != nil || strings.Contains(string(data), b) {
		t.Fatalf("state file after DELETE: %s %v", data, err)
	}
}

// TestCorruptStateFile: floodgate refuses to start on a corrupt state file,
// naming it, unless told to start without it.
func TestCorruptStateFile(t *testing.T) {
	dir := t.TempDir()
	state := writeFile(t, dir, "state.json", `{"version": 1, "backends": [{"pool": "p", "address": "10.0.0.1:80",`)
	cfg, addr, adminAddr := config(t, dir, "pools:\n  - name: p\n    backends: [{address: \"127.0.0.1:1\"}]\nroutes:\n  - {name: r, path_prefix: /, pool: p}\n",
		fmt.Sprintf("state_file: %q", state))
	p := start(t, "-config", cfg)
	if code := p.exitCode(t); code != 1 {
		t.Fatalf("corrupt state file: exit %d", code)
	}
	if out := p.logText(); !strings.Contains(out, state) || !strings.Contains(out, "corrupt") || !strings.Contains(out, "-ignore-state") {
		t.Fatalf("the error should name the file and the way out:\n%s", out)
	}
	in := startInstance(t, cfg, addr, adminAddr, "", "-ignore-state")
	in.mustAPI(t, "GET", "/api/v1/pools", "", 200)
	aside, _ := filepath.Glob(state + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("the corrupt file was not kept aside: %v", aside)
	}
	if !strings.Contains(in.logText(), "moved aside") {
		t.Error("starting without the state file is not logged")
	}
}

// reloadConfig is a one-pool config routing everything to target.
func reloadConfig(target string) string {
	return fmt.Sprintf("pools:\n  - name: p\n    backends: [{address: %q}]\nroutes:\n  - {name: r, path_prefix: /, pool: p}\n", target)
}

// TestReloadOnEditorRename: saving the file the way editors do (write a
// temporary file, rename it over) reloads it, with no signal.
func TestReloadOnEditorRename(t *testing.T) {
	a, b := backend(t, "a", nil), backend(t, "b", nil)
	dir := t.TempDir()
	cfg, addr, adminAddr := config(t, dir, reloadConfig(a))
	head, _ := os.ReadFile(cfg)
	header := strings.SplitAfterN(string(head), "pools:", 2)[0]
	header = strings.TrimSuffix(header, "pools:")
	in := startInstance(t, cfg, addr, adminAddr, "")
	in.servedBy(t, "a")
	for i, target := range []string{b, a, b} {
		tmp := writeFile(t, dir, ".floodgate.yaml.swp", header+reloadConfig(target))
		if err := os.Rename(tmp, cfg); err != nil {
			t.Fatal(err)
		}
		in.servedBy(t, map[string]string{a: "a", b: "b"}[target])
		waitFor(t, "the reload counted", 10*time.Second, func() bool {
			return in.metric(t, `floodgate_config_reloads_total{result="success"}`) == float64(i+1)
		})
	}
}

// TestReloadOnSymlinkSwap: a Kubernetes ConfigMap update flips the ..data
// symlink of the mounted directory.
func TestReloadOnSymlinkSwap(t *testing.T) {
	a, b := backend(t, "a", nil), backend(t, "b", nil)
	dir := t.TempDir()
	addr, adminAddr := freePort(t), freePort(t)
	header := fmt.Sprintf("listen: %q\nadmin: {listen: %q}\n", addr, adminAddr)
	version := func(name, target string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, name), "floodgate.yaml", header+reloadConfig(target))
	}
	version("..2024_01_01", a)
	if err := os.Symlink("..2024_01_01", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "floodgate.yaml")
	if err := os.Symlink("..data/floodgate.yaml", cfg); err != nil {
		t.Fatal(err)
	}
	in := startInstance(t, cfg, addr, adminAddr, "")
	in.servedBy(t, "a")
	version("..2024_01_02", b)
	if err := os.Symlink("..2024_01_02", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "..2024_01_01")); err != nil {
		t.Fatal(err)
	}
	in.servedBy(t, "b")
}

// TestInvalidConfigKeepsServing: a bad edit is refused whole, the old config keeps
// serving, the problem is logged and counted, the API answers it with PATH:LINE,
// and the watcher does not retry the same bad file.
func TestInvalidConfigKeepsServing(t *testing.T) {
	a, b := backend(t, "a", nil), backend(t, "b", nil)
	dir := t.TempDir()
	cfg, addr, adminAddr := config(t, dir, reloadConfig(a))
	head, _ := os.ReadFile(cfg)
	header := strings.TrimSuffix(strings.SplitAfterN(string(head), "pools:", 2)[0], "pools:")
	in := startInstance(t, cfg, addr, adminAddr, "", "-log-level", "debug")
	in.servedBy(t, "a")

	// Valid YAML, invalid config: weight out of range on line 5, and b is new.
	bad := header + fmt.Sprintf("pools:\n  - name: p\n    backends: [{address: %q, weight: 5000}]\nroutes:\n  - {name: r, path_prefix: /, pool: p}\n", b)
	writeFile(t, dir, "floodgate.yaml", bad)
	waitFor(t, "the failed reload counted", 10*time.Second, func() bool {
		return in.metric(t, `floodgate_config_reloads_total{result="error"}`) == 1
	})
	badLine := fmt.Sprintf("%s:%d: pools[0].backends[0].weight", cfg, strings.Count(header, "\n")+3)
	in.waitLog(t, badLine)
	if v := in.metric(t, "floodgate_config_last_reload_success"); v != 0 {
		t.Errorf("last reload success %v, want 0", v)
	}
	for i := 0; i < 5; i++ {
		if _, body := get(t, "http://"+addr+"/"); body != "a" {
			t.Fatalf("after a bad edit: %q, want the old config serving", body)
		}
	}
	// Writing the same bad file again is skipped, not retried.
	writeFile(t, dir, "floodgate.yaml", bad)
	in.waitLog(t, "config file unchanged")
	if v := in.metric(t, `floodgate_config_reloads_total{result="error"}`); v != 1 {
		t.Fatalf("the same bad file was applied again: %v errors", v)
	}
	// The API answers with the problems.
	code, m := in.api(t, "POST", "/api/v1/reload", "")
	if code != 400 || len(m["problems"].([]any)) != 1 || !strings.HasPrefix(m["problems"].([]any)[0].(string), badLine) {
		t.Fatalf("API reload of a bad file: %d %v", code, m)
	}
	// YAML syntax errors too.
	writeFile(t, dir, "floodgate.yaml", header+"pools: [\n")
	waitFor(t, "the syntax error counted", 10*time.Second, func() bool {
		return in.metric(t, `floodgate_config_reloads_total{result="error"}`) == 3
	})
	if _, body := get(t, "http://"+addr+"/"); body != "a" {
		t.Fatalf("after a syntax error: %q", body)
	}
	// A fix applies.
	writeFile(t, dir, "floodgate.yaml", header+reloadConfig(b))
	in.servedBy(t, "b")
	if v := in.metric(t, "floodgate_config_last_reload_success"); v != 1 {
		t.Errorf("last reload success %v, want 1", v)
	}
}

// TestRestartOnlySettingsWarn: a reload that changes the listen address keeps
// the old one and says so.
func TestRestartOnlySettingsWarn(t *testing.T) {
	a, b := backend(t, "a", nil), backend(t, "b", nil)
	dir := t.TempDir()
	cfg, addr, adminAddr := config(t, dir, reloadConfig(a))
	in := startInstance(t, cfg, addr, adminAddr, "")
	other := freePort(t)
	writeFile(t, dir, "floodgate.yaml", fmt.Sprintf("listen: %q\nadmin: {listen: %q}\nlimits: {max_conns: 50}\n", other, adminAddr)+reloadConfig(b))
	in.cmd.Process.Signal(syscall.SIGHUP)
	in.servedBy(t, "b") // the rest applied, on the old address
	in.waitLog(t, "apply only after a restart")
	if !strings.Contains(in.logText(), `settings="listen, limits.max_conns"`) {
		t.Fatalf("the warning should name listen and limits.max_conns:\n%s", in.logText())
	}
	m := in.mustAPI(t, "POST", "/api/v1/reload", "", 200)
	if rr := m["restart_required"].([]any); len(rr) != 2 || rr[0] != "listen" {
		t.Fatalf("reload answer %v", m)
	}
}
