package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/floodgate/floodgate/admin"
	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/degrade/capture"
	"github.com/floodgate/floodgate/generation"
	"github.com/floodgate/floodgate/proxy"
	"github.com/floodgate/floodgate/proxy/cache"
	"github.com/floodgate/floodgate/registry"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestStatusCommandGolden")

// testClock is the admin server's, the monitor's and the journal's clock:
// what the status shows depends on the traffic and on how far the test
// moved it, not on how long the test took.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixedCache cache.Stats

func (f fixedCache) Stats() cache.Stats { return cache.Stats(f) }

// statusFixture is a real admin server over a real registry, proxy,
// degraded-mode monitor and capture journal, with fixed traffic: the data of
// the golden files.
type statusFixture struct {
	url, tokenFile string
	clock          *testClock
}

func newStatusFixture(t *testing.T) *statusFixture {
	t.Helper()
	dir := t.TempDir()
	clock := &testClock{t: time.Now()}
	var backends []string
	for i := 0; i < 2; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
			if string(ctx.Path()) == "/fail" {
				ctx.SetStatusCode(503)
			}
			ctx.SetBodyString("ok")
		}}
		go srv.Serve(ln) //nolint:errcheck // ends with Shutdown
		t.Cleanup(func() { _ = srv.Shutdown() })
		backends = append(backends, ln.Addr().String())
	}

	px := proxy.New(proxy.Options{})
	mon := degrade.NewMonitor(degrade.MonitorOptions{Now: clock.Now})
	reg, err := generation.New(generation.Options{Dataplane: px, Monitor: mon})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	regDone := make(chan struct{})
	go func() { defer close(regDone); _ = reg.Run(ctx) }()
	if _, err := reg.Init(ctx, registry.Config{
		Pools: []registry.PoolSpec{
			{Name: "shop", Settings: generation.PoolSettings{MaxConnsPerBackend: 8, QueueMax: 50, QueueTimeout: time.Second},
				Backends: []registry.BackendSpec{{Address: backends[0], Weight: 2}, {Address: backends[1], Weight: 1}}},
			{Name: "backoffice", Backends: []registry.BackendSpec{{Address: "10.0.9.1:8080", Weight: 1}}},
		},
		Routes: generation.Routes([]proxy.RouteSpec{
			{Name: "checkout", PathPrefix: "/checkout", Pool: "shop"},
			{Name: "site", PathPrefix: "/", Pool: "shop"},
			{Name: "backoffice", PathPrefix: "/admin/", Pool: "backoffice"},
		}...),
	}, registry.State{}); err != nil {
		t.Fatal(err)
	}
	journal, err := capture.Open(capture.Options{Dir: filepath.Join(dir, "journal"), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ln := fasthttputil.NewInmemoryListener()
	served := make(chan struct{})
	go func() { defer close(served); _ = px.Serve(ln) }()

	const token = "status-golden-token-0123456789"
	tokenFile := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	api, err := admin.New(admin.Options{
		Registry: reg, Token: []byte(token), Now: clock.Now,
		Degrade: mon, Captures: journal, Routes: px.RouteStats,
		Cache: fixedCache{Hits: 300, Stale: 20, Misses: 60, Revalidated: 20, Bytes: 3 << 20, Objects: 412, Evicted: 7}, CacheMaxBytes: 64 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(api)
	t.Cleanup(func() {
		hs.Close()
		_ = px.Shutdown(context.Background())
		<-served
		cancel()
		<-regDone
		_ = journal.Close()
		mon.Close()
	})
	f := &statusFixture{url: hs.URL, tokenFile: tokenFile, clock: clock}

	// A first reading, then 5 seconds (on the clock) of traffic: 60 pages,
	// 30 checkouts and 10 backend failures on shop.
	f.run(t, "-json")
	client := &fasthttp.HostClient{Addr: "shop.example", Dial: func(string) (net.Conn, error) { return ln.Dial() }}
	for _, load := range []struct {
		path string
		n    int
	}{{"/", 60}, {"/checkout/pay", 30}, {"/fail", 10}} {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://shop.example" + load.path)
		for i := 0; i < load.n; i++ {
			if err := client.Do(req, resp); err != nil {
				t.Fatal(err)
			}
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
	clock.Add(2 * time.Second)
	if err := mon.SetOverride("shop", degrade.OverrideDegraded); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, _, err := journal.Append(&capture.Record{Pool: "shop", Route: "checkout", Method: "POST", Target: "/checkout/pay"}); err != nil {
			t.Fatal(err)
		}
	}
	id, _, err := journal.Append(&capture.Record{Pool: "shop", Route: "checkout", Method: "POST", Target: "/checkout/pay"})
	if err != nil {
		t.Fatal(err)
	}
	if err := journal.MarkDead(id, "backend answered 422"); err != nil {
		t.Fatal(err)
	}
	journal.PauseReplay("shop")
	if err := reg.Update(ctx, "shop", backends[1], registry.BackendUpdate{Drain: ptrOf(true)}); err != nil {
		t.Fatal(err)
	}
	clock.Add(3 * time.Second)
	return f
}

func ptrOf[T any](v T) *T { return &v }

// run runs `floodgate status` against the fixture with its token.
func (f *statusFixture) run(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(append([]string{"status", "-admin", f.url, "-token-file", f.tokenFile}, args...), &stdout, &stderr); code != 0 {
		t.Fatalf("floodgate status %s: exit %d\n%s", strings.Join(args, " "), code, stderr.String())
	}
	return stdout.String()
}

// normalise makes a status independent of the run: times are moved so that
// the answer is made at a fixed instant (ages are kept), loopback ports and
// capture ids get fixed values, and p95 latencies, which depend on the
// machine, a fixed one.
func normalise(st admin.Status) admin.Status {
	fixed := time.Date(2026, 11, 23, 20, 41, 30, 0, time.UTC)
	shift, unix := fixed.Sub(st.Time), st.Time.Unix()
	at := func(t *time.Time) *time.Time {
		if t == nil {
			return nil
		}
		v := t.Add(shift).UTC().Truncate(time.Millisecond)
		return &v
	}
	p95 := func(v *float64) *float64 {
		if v == nil {
			return nil
		}
		return ptrOf(0.0042)
	}
	ports := map[string]string{}
	addr := func(a string) string {
		if !strings.HasPrefix(a, "127.0.0.1:") {
			return a
		}
		if ports[a] == "" {
			ports[a] = fmt.Sprintf("127.0.0.1:%d", 10001+len(ports))
		}
		return ports[a]
	}
	st.Time = fixed
	for i := range st.Pools {
		p := &st.Pools[i]
		p.P95Seconds = p95(p.P95Seconds)
		if m := p.Mode; m != nil {
			m.Since = at(m.Since)
			m.Signals.At = at(m.Signals.At)
		}
		for j := range p.Backends {
			b := &p.Backends[j]
			b.Address = addr(b.Address)
			b.UpSince, b.EjectedUntil = at(b.UpSince), at(b.EjectedUntil)
			if b.UpSince != nil {
				v := b.UpSince.Truncate(time.Second) // the backends came up while the clock read st.Time - 5s + a few ms
				b.UpSince = &v
			}
		}
		for j, t := range p.History.Time {
			p.History.Time[j] = fixed.Unix() + t - unix // readings are on the status clock
			p.History.P95Seconds[j] = p95(p.History.P95Seconds[j])
		}
	}
	for i := range st.Routes {
		st.Routes[i].P95Seconds = p95(st.Routes[i].P95Seconds)
	}
	if c := st.Captures; c != nil {
		for i := range c.Dead {
			d := &c.Dead[i]
			d.ID = "0000000000000000000d" + fmt.Sprint(i)
			d.Captured, d.DeadAt = *at(&d.Captured), *at(&d.DeadAt)
		}
	}
	return st
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -run %s -update rewrites it after a deliberate change)\n--- got\n%s\n--- want\n%s", path, t.Name(), got, want)
	}
}

// TestStatusCommandGolden: `floodgate status` and `floodgate status -json`
// against a real admin server with fixed traffic, timestamps, ports and ids
// normalised.
func TestStatusCommandGolden(t *testing.T) {
	f := newStatusFixture(t)
	table := f.run(t)
	raw := f.run(t, "-json")
	var st admin.Status
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		t.Fatalf("-json: %v\n%s", err, raw)
	}
	// The table is rendered from exactly what -json shows.
	var again bytes.Buffer
	renderStatus(&again, f.url, st)
	if table != again.String() {
		t.Fatalf("the table and the JSON differ:\n%s\n%s", table, again.String())
	}
	st = normalise(st)
	var out bytes.Buffer
	renderStatus(&out, "http://127.0.0.1:9090", st)
	golden(t, "status.golden", out.String())
	js, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "status.golden.json", string(js)+"\n")
}

func TestStatusCommandErrors(t *testing.T) {
	f := newStatusFixture(t)
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no token", []string{"status", "-admin", f.url}, 1, "401 Unauthorized: missing or invalid bearer token (give the admin token with -token-file)"},
		{"missing token file", []string{"status", "-admin", f.url, "-token-file", "/nonexistent/token"}, 1, "token_file: stat /nonexistent/token"},
		{"nothing listening", []string{"status", "-admin", "127.0.0.1:1"}, 1, "connection refused"},
		{"not floodgate", []string{"status", "-admin", f.url + "/healthz?"}, 1, "floodgate status: GET"},
		{"extra argument", []string{"status", "now"}, 2, "usage: floodgate status"},
		{"unknown flag", []string{"status", "-verbose"}, 2, "flag provided but not defined"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.code || !strings.Contains(stderr.String(), tt.want) || stdout.Len() != 0 {
				t.Fatalf("exit %d, stderr %q, stdout %q; want exit %d and %q", code, stderr.String(), stdout.String(), tt.code, tt.want)
			}
		})
	}
	// FLOODGATE_ADMIN and FLOODGATE_TOKEN_FILE stand for the flags, as in
	// examples/autoscale.sh.
	t.Setenv("FLOODGATE_ADMIN", f.url)
	t.Setenv("FLOODGATE_TOKEN_FILE", f.tokenFile)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"status"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "DEGRADED") {
		t.Fatalf("from the environment: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
}

func TestFormats(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	for _, tt := range []struct{ got, want string }{
		{fmtRate(nil), "-"}, {fmtRate(f(0)), "0"}, {fmtRate(f(2.25)), "2.2"}, {fmtRate(f(1234.6)), "1235"},
		{fmtPct(f(0)), "0%"}, {fmtPct(f(0.0004)), "<0.1%"}, {fmtPct(f(0.0123)), "1.2%"}, {fmtPct(f(0.5)), "50%"},
		{fmtDur(f(0.0004)), "0.40ms"}, {fmtDur(f(0.0042)), "4.2ms"}, {fmtDur(f(0.25)), "250ms"}, {fmtDur(f(1.5)), "1.50s"}, {fmtDur(f(12)), "12.0s"},
		{fmtAge(42 * time.Second), "42s"}, {fmtAge(192 * time.Second), "3m12s"}, {fmtAge(5*time.Hour + 7*time.Minute), "5h07m"},
		{fmtAge(76 * time.Hour), "3d04h"}, {fmtAge(-time.Second), "0s"},
		{fmtBytes(512), "512 B"}, {fmtBytes(3 << 20), "3.0 MiB"}, {fmtBytes(256 << 20), "256 MiB"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
