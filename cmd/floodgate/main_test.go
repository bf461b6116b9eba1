package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binPath is the floodgate binary built once for these tests: they drive the real
// process, with real signals, files and sockets.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "floodgate-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "floodgate")
	args := []string{"build", "-o", binPath}
	if raceEnabled {
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback address that was free a moment ago.
// freePort returns a loopback address nobody listens on now and that no
// earlier call in this test binary returned: the kernel may hand the same
// just-closed port to two calls in a row (CI saw listen and admin collide).
func freePort(t *testing.T) string {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if !portsGiven[addr] {
			portsGiven[addr] = true
			return addr
		}
	}
}

var (
	portsMu    sync.Mutex
	portsGiven = map[string]bool{}
)

// adminLine is a config line putting the admin API on a free loopback port, so
// that tests never collide on the default 127.0.0.1:9090.
func adminLine(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("admin: {listen: %q}\n", freePort(t))
}

// proc is a running floodgate process with its combined log.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
	err  error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.Write(b)
}

func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binPath, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("floodgate log:\n%s", p.logText())
		}
	})
	return p
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling an external process; there is nothing to block on
	}
}

func (p *proc) waitLog(t *testing.T, substr string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("log line %q", substr), 20*time.Second, func() bool { return strings.Contains(p.logText(), substr) })
}

func (p *proc) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("process did not exit")
	}
	return p.cmd.ProcessState.ExitCode()
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// backend is a net/http server on loopback naming itself in each answer.
func backend(t *testing.T, name string, h http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", "pools:\n  - name: p\n    backends: [{address: \"127.0.0.1:1\"}]\nroutes:\n  - {name: r, path_prefix: /, pool: p}\n")
	p := start(t, "-check", "-config", good)
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("valid config: exit %d\n%s", code, p.logText())
	}
	bad := writeFile(t, dir, "bad.yaml", "pools:\n  - name: p\n    backends: [{address: \"127.0.0.1:1\", weight: 5000}]\nroutes:\n  - {name: r, path_prefx: /, pool: q}\n")
	p = start(t, "-check", "-config", bad)
	if code := p.exitCode(t); code != 1 {
		t.Fatalf("invalid config: exit %d, want 1", code)
	}
	out := p.logText()
	lines := regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(bad)+`:(\d+): .+$`).FindAllStringSubmatch(out, -1)
	if len(lines) < 3 {
		t.Fatalf("want one PATH:LINE: message per problem (weight, unknown key, unknown pool), got:\n%s", out)
	}
	for _, want := range []string{bad + ":3:", bad + ":5:"} {
		if !strings.Contains(out, want) {
			t.Errorf("no problem reported at %s:\n%s", want, out)
		}
	}
}

func TestStartErrorsAreOneLine(t *testing.T) {
	dir := t.TempDir()
	p := start(t, "-config", filepath.Join(dir, "missing.yaml"))
	if code := p.exitCode(t); code != 1 {
		t.Fatalf("missing config: exit %d", code)
	}
	if out := strings.TrimSpace(p.logText()); strings.Count(out, "\n") != 0 || !strings.Contains(out, "missing.yaml") {
		t.Errorf("want one line naming the file, got:\n%s", out)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := writeFile(t, dir, "busy.yaml", fmt.Sprintf("listen: %q\n"+adminLine(t)+"pools:\n  - name: p\n    backends: [{address: \"127.0.0.1:1\"}]\nroutes:\n  - {name: r, path_prefix: /, pool: p}\n", ln.Addr().String()))
	p = start(t, "-config", cfg)
	if code := p.exitCode(t); code != 1 {
		t.Fatalf("port in use: exit %d", code)
	}
	if out := p.logText(); !strings.Contains(out, "address already in use") {
		t.Errorf("port in use not reported clearly:\n%s", out)
	}
}

func TestDemoRoundRobin(t *testing.T) {
	addr := freePort(t)
	adminAddr := freePort(t)
	p := start(t, "demo", "-listen", addr, "-admin", adminAddr)
	p.waitLog(t, "floodgate listening")
	var got []string
	for i := 0; i < 6; i++ {
		_, body := get(t, "http://"+addr+"/")
		got = append(got, strings.Fields(body)[2]) // "hello from backend-N ..."
	}
	want := []string{"backend-1", "backend-2", "backend-1", "backend-3", "backend-2", "backend-1"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("demo answered %v, want the 3/2/1 smooth interleaving %v", got, want)
	}
	// The admin API is there too, without a token on loopback; there is no
	// file to reload.
	in := &instance{proc: p, addr: addr, admin: adminAddr}
	m := in.mustAPI(t, "GET", "/api/v1/pools", "", 200)
	if pools := m["pools"].([]any); len(pools) != 1 || len(pools[0].(map[string]any)["backends"].([]any)) != 3 {
		t.Fatalf("demo pools: %v", m)
	}
	in.mustAPI(t, "POST", "/api/v1/reload", "", 409)
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

func TestSIGTERMDrainsInFlight(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	be := backend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		io.WriteString(w, "finished")
	})
	addr := freePort(t)
	cfg := writeFile(t, t.TempDir(), "f.yaml", fmt.Sprintf("listen: %q\n"+adminLine(t)+"timeouts: {shutdown_grace: 20s}\npools:\n  - name: p\n    backends: [{address: %q}]\nroutes:\n  - {name: r, path_prefix: /, pool: p}\n", addr, be))
	p := start(t, "-config", cfg)
	p.waitLog(t, "floodgate listening")
	type result struct {
		code int
		body string
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			res <- result{body: err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{resp.StatusCode, string(b)}
	}()
	<-arrived
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.waitLog(t, "draining")
	// New connections are refused while draining.
	waitFor(t, "listener closed", 10*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	close(release)
	r := <-res
	if r.code != 200 || r.body != "finished" {
		t.Fatalf("in-flight request during drain: %d %q", r.code, r.body)
	}
	if code := p.exitCode(t); code != 0 {
		t.Fatalf("exit %d after drain", code)
	}
}

func TestSIGHUPReload(t *testing.T) {
	a := backend(t, "a", nil)
	b := backend(t, "b", nil)
	addr := freePort(t)
	dir := t.TempDir()
	admin := adminLine(t)
	cfgText := func(target string) string {
		return fmt.Sprintf("listen: %q\n"+admin+"pools:\n  - name: p\n    backends: [{address: %q}]\nroutes:\n  - {name: r, path_prefix: /, pool: p}\n", addr, target)
	}
	cfg := writeFile(t, dir, "f.yaml", cfgText(a))
	p := start(t, "-config", cfg)
	p.waitLog(t, "floodgate listening")
	if _, body := get(t, "http://"+addr+"/"); body != "a" {
		t.Fatalf("before reload: %q", body)
	}
	writeFile(t, dir, "f.yaml", cfgText(b))
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "reload to backend b", 10*time.Second, func() bool { _, body := get(t, "http://"+addr+"/"); return body == "b" })

	// A bad edit keeps the old config serving and names the problem.
	writeFile(t, dir, "f.yaml", "pools: [\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(t, "reload failed")
	if _, body := get(t, "http://"+addr+"/"); body != "b" {
		t.Fatalf("after a bad reload: %q, want the old config still serving", body)
	}
}

// rssKB reads a process's resident set size.
func rssKB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestLargeBodiesStream sends a 100 MB upload and a 100 MB download through the
// real binary and checks that its memory grows by less than 16 MB: bodies are
// streamed, never held whole.
func TestLargeBodiesStream(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's shadow memory makes RSS meaningless; CI runs this without -race")
	}
	const size = 100 << 20
	var uploaded int64
	var mu sync.Mutex
	be := backend(t, "big", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			n, _ := io.Copy(io.Discard, r.Body)
			mu.Lock()
			uploaded = n
			mu.Unlock()
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(size))
		chunk := bytes.Repeat([]byte("d"), 64<<10)
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	addr := freePort(t)
	cfg := writeFile(t, t.TempDir(), "f.yaml", fmt.Sprintf("listen: %q\n"+adminLine(t)+"limits: {max_request_body: 200MB}\npools:\n  - name: p\n    backends: [{address: %q}]\nroutes:\n  - {name: r, path_prefix: /, pool: p}\n", addr, be))
	p := start(t, "-config", cfg)
	p.waitLog(t, "floodgate listening")
	get(t, "http://"+addr+"/warm") // warm up before the baseline (100 MB download; fine)
	base := rssKB(t, p.cmd.Process.Pid)

	resp, err := http.Post("http://"+addr+"/up", "application/octet-stream", io.LimitReader(zeros{}, size))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	got := uploaded
	mu.Unlock()
	if resp.StatusCode != 200 || got != size {
		t.Fatalf("upload: status %d, backend got %d bytes", resp.StatusCode, got)
	}
	resp, err = http.Get("http://" + addr + "/down")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if n != size {
		t.Fatalf("download: %d bytes", n)
	}
	grew := rssKB(t, p.cmd.Process.Pid) - base
	t.Logf("RSS grew by %d KB over a 100 MB upload and a 100 MB download", grew)
	if grew > 16<<10 {
		t.Fatalf("RSS grew by %d KB, want < 16 MB: bodies are being buffered", grew)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
