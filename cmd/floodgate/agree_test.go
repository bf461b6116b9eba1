package main

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/floodgate/floodgate/conf"
)

// corpusConfig is one config of the repository's test corpus.
type corpusConfig struct {
	name string
	text string
	// ours: written for this test (testdata/configs), with loopback backends
	// and $TMP for the files it provides; the others are rewritten so that a
	// start dials and binds loopback only.
	ours bool
}

// corpus gathers every config in the repository: the examples, conf's test
// data, the complete configs of docs/configuration.md, and the good and bad
// configs of testdata/configs.
func corpus(t *testing.T) []corpusConfig {
	t.Helper()
	var out []corpusConfig
	add := func(glob string, ours bool) {
		paths, err := filepath.Glob(glob)
		if err != nil || len(paths) == 0 {
			t.Fatalf("no configs match %s", glob)
		}
		for _, p := range paths {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, corpusConfig{name: strings.TrimPrefix(p, "../../"), text: string(b), ours: ours})
		}
	}
	add("../../examples/*.yaml", false)
	add("../../conf/testdata/*.yaml", false)
	add("testdata/configs/*.yaml", true)
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for i, block := range strings.Split(string(doc), "```yaml\n")[1:] {
		body, _, _ := strings.Cut(block, "```")
		if strings.HasPrefix(body, "# floodgate.yaml") {
			out = append(out, corpusConfig{name: fmt.Sprintf("docs/configuration.md block %d", i+1), text: body})
		}
	}
	return out
}

// sandbox writes the files the configs of testdata/configs name under $TMP.
func sandbox(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	selfSigned(t, dir, "shop.example")
	if err := os.Rename(filepath.Join(dir, "shop.example.crt"), filepath.Join(dir, "cert.pem")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "shop.example.key"), filepath.Join(dir, "key.pem")); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"token":              "0123456789abcdef0123456789abcdef\n",
		"empty":              "",
		"garbage":            "not a certificate\n",
		"busy.html":          "<p>busy</p>\n",
		"corrupt-state.json": "{not json",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"state", "logs", "journal"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// loopbackOnly rewrites a config so that a start binds and dials loopback only:
// each listen address on all interfaces, loopback or a default becomes a free
// loopback port (one on another host is kept: a start refuses it), and, in
// configs not written for this test, every backend not on loopback becomes a
// loopback port nobody listens on.
func loopbackOnly(t *testing.T, text string, ours bool) string {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return text // left for the config's own error
	}
	root := doc.Content[0]
	get := func(m *yaml.Node, key string) *yaml.Node {
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == key {
				return m.Content[i+1]
			}
		}
		return nil
	}
	set := func(m *yaml.Node, key, value string) {
		if v := get(m, key); v != nil {
			if v.Kind == yaml.ScalarNode && !local(v.Value) {
				return
			}
			v.Kind, v.Tag, v.Value, v.Style = yaml.ScalarNode, "!!str", value, yaml.DoubleQuotedStyle
			return
		}
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value, Style: yaml.DoubleQuotedStyle})
	}
	set(root, "listen", freePort(t))
	if tls := get(root, "tls"); tls != nil && tls.Kind == yaml.MappingNode {
		set(tls, "listen", freePort(t))
	}
	admin := get(root, "admin")
	if admin == nil {
		admin = &yaml.Node{Kind: yaml.MappingNode}
		root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "admin"}, admin)
	}
	if admin.Kind == yaml.MappingNode {
		set(admin, "listen", freePort(t))
	}
	if pools := get(root, "pools"); pools != nil && !ours {
		for _, p := range pools.Content {
			if bs := get(p, "backends"); bs != nil && p.Kind == yaml.MappingNode {
				for _, b := range bs.Content {
					if a := get(b, "address"); a != nil && b.Kind == yaml.MappingNode && !loopbackHost(a.Value) {
						a.Value, a.Style = freePort(t), yaml.DoubleQuotedStyle
					}
				}
			}
		}
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// local reports whether a listen address may be moved to a loopback port:
// all interfaces, loopback, or not a host:port at all.
func local(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" || strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && (ip.IsUnspecified() || ip.IsLoopback())
}

func loopbackHost(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// problems are the lines of a run's output that are not log records or the
// final ok, without the "floodgate: " a start puts before its error.
func outcomeLines(out string) []string {
	var ps []string
	for _, l := range strings.Split(out, "\n") {
		if l == "" || strings.HasPrefix(l, "time=") || strings.HasSuffix(l, ": ok") {
			continue
		}
		ps = append(ps, strings.TrimPrefix(l, "floodgate: "))
	}
	return ps
}

// TestCheckAndStartAgree (issue 14): every config in the repository goes through
// `floodgate -check` and through a real start (loopback ports, stopped with
// SIGTERM once listening), and both must accept it, or both refuse it with the
// same problems. -check used to pass a missing admin.token_file, an unloadable
// certificate, a missing static answer, an unwritable journal or state
// directory and a listen address of another host, all of which stop a start.
func TestCheckAndStartAgree(t *testing.T) {
	tmp := sandbox(t)
	dir := t.TempDir()
	for i, c := range corpus(t) {
		t.Run(c.name, func(t *testing.T) {
			text := strings.ReplaceAll(c.text, "$TMP", tmp)
			path := filepath.Join(dir, fmt.Sprintf("config-%d.yaml", i))
			if err := os.WriteFile(path, []byte(loopbackOnly(t, text, c.ours)), 0o644); err != nil {
				t.Fatal(err)
			}
			chk := start(t, "-check", "-config", path)
			chkCode := chk.exitCode(t)

			srv := start(t, "-config", path)
			listening := false
			deadline := time.Now().Add(30 * time.Second)
		wait:
			for {
				select {
				case <-srv.done:
					break wait
				default:
				}
				if strings.Contains(srv.logText(), "floodgate listening") {
					listening = true
					_ = srv.cmd.Process.Signal(syscall.SIGTERM)
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the start neither listened nor exited in 30s")
				}
				time.Sleep(10 * time.Millisecond) // polling an external process's log
			}
			srvCode := srv.exitCode(t)

			wantOK := strings.HasPrefix(filepath.Base(c.name), "good-") || !c.ours
			switch {
			case chkCode == 0 && listening && srvCode == 0:
				if c.ours && !wantOK {
					t.Errorf("a bad config was accepted by both")
				}
			case chkCode == 1 && !listening && srvCode == 1:
				if wantOK && c.ours {
					t.Errorf("a good config was refused by both:\n%s", chk.logText())
				}
				cp, sp := outcomeLines(chk.logText()), outcomeLines(srv.logText())
				if !slices.Equal(cp, sp) {
					t.Errorf("both refuse, with other problems:\n-check: %q\nstart:  %q", cp, sp)
				}
			default:
				t.Errorf("-check exits %d; the start exits %d (listening: %v): they disagree\n-check:\n%s\nstart:\n%s",
					chkCode, srvCode, listening, chk.logText(), srv.logText())
			}
		})
	}
}

// TestExamplesAreValid keeps the shipped examples in step with the schema. That
// -check and a start agree on them, files and all, is TestCheckAndStartAgree's.
func TestExamplesAreValid(t *testing.T) {
	paths, _ := filepath.Glob("../../examples/*.yaml")
	if len(paths) == 0 {
		t.Fatal("no example configs found")
	}
	for _, path := range paths {
		if _, err := conf.Load(path); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	}
}

// TestCheckNeedsConfig: -check without -config names what is missing (issue 17,
// item 6), with the usage's exit status.
func TestCheckNeedsConfig(t *testing.T) {
	p := start(t, "-check")
	if code := p.exitCode(t); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if out := p.logText(); !strings.Contains(out, "-check needs -config PATH") {
		t.Errorf("output %q does not say -check needs -config PATH", out)
	}
}
