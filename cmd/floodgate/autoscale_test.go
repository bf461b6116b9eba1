package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startScript runs examples/autoscale.sh with env (and args) and returns it as a
// proc.
func startScript(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	script, err := filepath.Abs("../../examples/autoscale.sh")
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: exec.Command("bash", append([]string{script}, args...)...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("autoscale.sh log:\n%s", p.logText())
		}
	})
	return p
}

// TestAutoscaleScript runs examples/autoscale.sh against the real binary: it
// retries with backoff while floodgate is not up yet, registers the instance with
// the token, and deregisters it (after the drain) on SIGTERM.
func TestAutoscaleScript(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	a, b := backend(t, "a", nil), backend(t, "b", nil)
	dir := t.TempDir()
	const token = "autoscale-test-token-0123456789abcdef"
	tokenFile := writeFile(t, dir, "admin.token", token+"\n")
	os.Chmod(tokenFile, 0o600)
	cfg, addr, adminAddr := config(t, dir, reloadConfig(a), fmt.Sprintf("token_file: %q", tokenFile))

	// The script starts first, as on a machine where the instance boots before
	// the proxy answers: it must retry.
	script := startScript(t, []string{
		"FLOODGATE_ADMIN=http://" + adminAddr,
		"FLOODGATE_TOKEN_FILE=" + tokenFile,
		"FLOODGATE_POOL=p",
		"BACKEND_ADDRESS=" + b,
		"BACKEND_WEIGHT=5",
		"RETRY_INITIAL=0.05",
		"RETRY_CAP=0.4",
		"RETRY_MAX=100",
	})
	script.waitLog(t, "retrying in")
	in := startInstance(t, cfg, addr, adminAddr, token)
	script.waitLog(t, "register "+b+" in pool p: 201")
	if bm := in.backendOf(t, "p", b); bm == nil || bm["source"] != "api" || bm["weight"] != 5.0 {
		t.Fatalf("registered backend %v", bm)
	}
	in.servedBy(t, "b")

	script.cmd.Process.Signal(syscall.SIGTERM)
	if code := script.exitCode(t); code != 0 {
		t.Fatalf("autoscale.sh exit %d", code)
	}
	if !strings.Contains(script.logText(), "deregister "+b+" from pool p: 200") {
		t.Fatalf("no deregistration in the log:\n%s", script.logText())
	}
	if bm := in.backendOf(t, "p", b); bm != nil {
		t.Fatalf("still registered after the script stopped: %v", bm)
	}
	for i := 0; i < 5; i++ {
		if _, body := get(t, "http://"+addr+"/"); body != "a" {
			t.Fatalf("after deregistration: %q", body)
		}
	}
	if strings.Contains(script.logText(), token) {
		t.Fatal("the token appears in the script's output")
	}

	// With a command: the script registers, and when the command exits it
	// deregisters and exits with the command's status.
	script = startScript(t, []string{
		"FLOODGATE_ADMIN=http://" + adminAddr,
		"FLOODGATE_TOKEN_FILE=" + tokenFile,
		"FLOODGATE_POOL=p",
		"BACKEND_ADDRESS=" + b,
	}, "bash", "-c", "sleep 0.5; exit 3")
	if code := script.exitCode(t); code != 3 {
		t.Fatalf("with a command: exit %d, want the command's 3\n%s", code, script.logText())
	}
	out := script.logText()
	if !strings.Contains(out, ": 201") || !strings.Contains(out, "deregister "+b+" from pool p: 200") {
		t.Fatalf("with a command: no register and deregister in the log:\n%s", out)
	}

	// A mistake is not retried: an unknown pool is a 404, exit 1 at once.
	start := time.Now()
	script = startScript(t, []string{
		"FLOODGATE_ADMIN=http://" + adminAddr,
		"FLOODGATE_TOKEN_FILE=" + tokenFile,
		"FLOODGATE_POOL=nope",
		"BACKEND_ADDRESS=" + b,
	})
	if code := script.exitCode(t); code != 1 || !strings.Contains(script.logText(), "404") || !strings.Contains(script.logText(), "not retrying") {
		t.Fatalf("unknown pool: exit %d\n%s", code, script.logText())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a 404 took %v: it was retried", d)
	}
}
