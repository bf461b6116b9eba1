package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floodgate/floodgate/balancer"
	"github.com/floodgate/floodgate/generation"
	"github.com/floodgate/floodgate/proxy"
	"github.com/floodgate/floodgate/registry"
)

// fakeReloader answers what the test sets.
type fakeReloader struct {
	res ReloadResult
	err error
}

func (f *fakeReloader) Reload(context.Context) (ReloadResult, error) { return f.res, f.err }

// lockedBuffer is a log sink safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// api is the admin API on a loopback listener over a real registry and proxy.
type api struct {
	t      *testing.T
	url    string
	token  string
	srv    *Server
	reg    *generation.Manager
	px     *proxy.Server
	reload *fakeReloader
	log    *lockedBuffer
}

func newAPI(t *testing.T, token string) *api {
	t.Helper()
	px := proxy.New(proxy.Options{})
	reg, err := generation.New(generation.Options{Dataplane: px})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = reg.Run(ctx) }()
	if _, err := reg.Init(ctx, registry.Config{
		Pools: []registry.PoolSpec{
			{Name: "shop", Backends: []registry.BackendSpec{{Address: "10.0.0.1:8080", Weight: 60}}},
		},
		Routes: generation.Routes([]proxy.RouteSpec{{Name: "site", PathPrefix: "/", Pool: "shop"}}...),
	}, registry.State{}); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	fr := &fakeReloader{}
	srv, err := New(Options{
		Registry:     reg,
		Reloader:     fr,
		Metrics:      http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "floodgate_up 1\n") }),
		Token:        []byte(token),
		DrainTimeout: func() time.Duration { return 5 * time.Second },
		Logger:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		hs.Close()
		cancel()
		<-done
		_ = px.Shutdown(context.Background())
	})
	return &api{t: t, url: hs.URL, token: token, srv: srv, reg: reg, px: px, reload: fr, log: logs}
}

// do sends a request with the API's token (if any) and returns the status, the
// decoded JSON body (nil if not JSON) and the response.
func (a *api) do(method, path, body string) (int, map[string]any, *http.Response) {
	a.t.Helper()
	return a.doAuth(method, path, body, "Bearer "+a.token)
}

func (a *api) doAuth(method, path, body, auth string) (int, map[string]any, *http.Response) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.url+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	if a.token != "" && auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &m); err != nil {
			a.t.Fatalf("%s %s: invalid JSON %q: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, m, resp
}

// expect checks a status and, for errors, the {"error": ...} shape.
func (a *api) expect(method, path, body string, want int) map[string]any {
	a.t.Helper()
	code, m, _ := a.do(method, path, body)
	if code != want {
		a.t.Fatalf("%s %s %s: %d %v, want %d", method, path, body, code, m, want)
	}
	if want >= 400 {
		if msg, ok := m["error"].(string); !ok || msg == "" {
			a.t.Fatalf("%s %s: error answer %v lacks {\"error\": \"...\"}", method, path, m)
		}
	}
	return m
}

func backendsOf(t *testing.T, m map[string]any, pool string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, p := range m["pools"].([]any) {
		pm := p.(map[string]any)
		if pm["name"] != pool {
			continue
		}
		for _, b := range pm["backends"].([]any) {
			bm := b.(map[string]any)
			out[bm["address"].(string)] = bm
		}
	}
	return out
}

func TestEndpoints(t *testing.T) {
	a := newAPI(t, "")
	m := a.expect("GET", "/api/v1/pools", "", 200)
	b := backendsOf(t, m, "shop")["10.0.0.1:8080"]
	if b["weight"] != 60.0 || b["state"] != "up" || b["source"] != "config" || b["in_flight"] != 0.0 {
		t.Fatalf("config backend: %v", b)
	}

	// Register: 201, then 200 on a retry (idempotent), weight set when given.
	m = a.expect("POST", "/api/v1/pools/shop/backends", `{"address": "10.0.0.5:8080", "weight": 3}`, 201)
	if m["address"] != "10.0.0.5:8080" || m["weight"] != 3.0 || m["source"] != "api" || m["state"] != "up" {
		t.Fatalf("registered: %v", m)
	}
	a.expect("POST", "/api/v1/pools/shop/backends", `{"address": "10.0.0.5:8080", "weight": 3}`, 200)
	m = a.expect("POST", "/api/v1/pools/shop/backends", `{"address": "10.0.0.5:8080"}`, 200)
	if m["weight"] != 3.0 {
		t.Fatalf("a retry without weight changed it: %v", m)
	}
	a.expect("POST", "/api/v1/pools/shop/backends", `{"address": "10.0.0.6:8080"}`, 201)

	// PATCH weight and drain.
	m = a.expect("PATCH", "/api/v1/pools/shop/backends/10.0.0.5:8080", `{"weight": 7}`, 200)
	if m["weight"] != 7.0 {
		t.Fatalf("patched: %v", m)
	}
	m = a.expect("PATCH", "/api/v1/pools/shop/backends/10.0.0.5:8080", `{"drain": true}`, 200)
	if m["state"] != "draining" || m["drain"] != true || m["weight"] != 7.0 {
		t.Fatalf("drained: %v", m)
	}
	m = a.expect("PATCH", "/api/v1/pools/shop/backends/10.0.0.1:8080", `{"weight": 0, "drain": false}`, 200)
	if m["overridden"] != true || m["state"] != "draining" {
		t.Fatalf("config backend override: %v", m)
	}

	// DELETE drains then removes; a second DELETE is a 404.
	m = a.expect("DELETE", "/api/v1/pools/shop/backends/10.0.0.6:8080", "", 200)
	if m["removed"] != true || m["drained"] != true {
		t.Fatalf("removed: %v", m)
	}
	a.expect("DELETE", "/api/v1/pools/shop/backends/10.0.0.6:8080", "", 404)
	if _, ok := backendsOf(t, a.expect("GET", "/api/v1/pools", "", 200), "shop")["10.0.0.6:8080"]; ok {
		t.Fatal("removed backend still listed")
	}

	// Reload: applied, refused with the file's problems, or nothing to reload.
	a.reload.res = ReloadResult{Generation: 9, Changed: true, RestartRequired: []string{"listen"}}
	m = a.expect("POST", "/api/v1/reload", "", 200)
	if m["generation"] != 9.0 || m["changed"] != true || len(m["restart_required"].([]any)) != 1 {
		t.Fatalf("reload: %v", m)
	}
	a.reload.err = &ConfigError{Problems: []string{"f.yaml:3: pools[0].name: required", "f.yaml:7: routes: required"}}
	m = a.expect("POST", "/api/v1/reload", "{}", 400)
	if p := m["problems"].([]any); len(p) != 2 || p[0] != "f.yaml:3: pools[0].name: required" || !strings.Contains(m["error"].(string), "f.yaml:7") {
		t.Fatalf("bad reload: %v", m)
	}
	a.reload.err = ErrNoConfigFile
	a.expect("POST", "/api/v1/reload", "", 409)

	// Metrics and health.
	code, _, resp := a.do("GET", "/metrics", "")
	if code != 200 || resp.Header.Get("Content-Type") == "application/json" {
		t.Fatalf("metrics: %d %s", code, resp.Header.Get("Content-Type"))
	}
	m = a.expect("GET", "/healthz", "", 200)
	if m["status"] != "ok" || m["generation"].(float64) < 1 {
		t.Fatalf("healthz: %v", m)
	}
	a.srv.SetDraining()
	if code, m, _ := a.do("GET", "/healthz", ""); code != 503 || m["status"] != "draining" {
		t.Fatalf("healthz while draining: %d %v", code, m)
	}
}

func TestErrors(t *testing.T) {
	a := newAPI(t, "")
	a.expect("POST", "/api/v1/pools/shop/backends", `{"address": "10.0.0.5:8080"}`, 201)
	gen := a.reg.View().Gen
	tests := []struct {
		name, method, path, body string
		want                     int
	}{
		{"unknown field", "POST", "/api/v1/pools/shop/backends", `{"address": "10.0.0.7:80", "wieght": 2}`, 400},
		{"wrong type", "POST", "/api/v1/pools/shop/backends", `{"address": "10.0.0.7:80", "weight": "2"}`, 400},
		{"fractional weight", "POST", "/api/v1/pools/shop/backends", `{"address": "10.0.0.7:80", "weight": 1.5}`, 400},
		{"trailing data", "POST", "/api/v1/pools/shop/backends", `{"address": "10.0.0.7:80"}}`, 400},
		{"two objects", "POST", "/api/v1/pools/shop/backends", `{"address": "10.0.0.7:80"} {}`, 400},
		{"not JSON", "POST", "/api/v1/pools/shop/backends", `address=10.0.0.7:80`, 400},
		{"no body", "POST", "/api/v1/pools/shop/backends", ``, 400},
		{"body too large", "POST", "/api/v1/pools/shop/backends", `{"address": "` + strings.Repeat("a", MaxBody) + `"}`, 400},
		{"bad address", "POST", "/api/v1/pools/shop/backends", `{"address": "10.0.0.7"}`, 400},
		{"missing address", "POST", "/api/v1/pools/shop/backends", `{"weight": 1}`, 400},
		{"weight out of range", "POST", "/api/v1/pools/shop/backends", `{"address": "10.0.0.7:80", "weight": 1001}`, 400},
		{"empty patch", "PATCH", "/api/v1/pools/shop/backends/10.0.0.5:8080", `{}`, 400},
		{"patch out of range", "PATCH", "/api/v1/pools/shop/backends/10.0.0.5:8080", `{"weight": -1}`, 400},
		{"delete with a body", "DELETE", "/api/v1/pools/shop/backends/10.0.0.5:8080", `{"force": true}`, 400},
		{"reload with a body", "POST", "/api/v1/reload", `{"path": "/etc/passwd"}`, 400},
		{"unknown pool", "POST", "/api/v1/pools/nope/backends", `{"address": "10.0.0.7:80"}`, 404},
		{"unknown pool patch", "PATCH", "/api/v1/pools/nope/backends/10.0.0.5:8080", `{"weight": 1}`, 404},
		{"unknown backend patch", "PATCH", "/api/v1/pools/shop/backends/10.0.0.9:8080", `{"weight": 1}`, 404},
		{"unknown backend delete", "DELETE", "/api/v1/pools/shop/backends/10.0.0.9:8080", ``, 404},
		{"unknown path", "GET", "/api/v1/nothing", ``, 404},
		{"trailing slash", "GET", "/api/v1/pools/", ``, 404},
		{"wrong method", "PUT", "/api/v1/pools", ``, 405},
		{"config backend delete", "DELETE", "/api/v1/pools/shop/backends/10.0.0.1:8080", ``, 409},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.t = t
			a.expect(tt.method, tt.path, tt.body, tt.want)
		})
	}
	if a.reg.View().Gen != gen {
		t.Fatal("a refused request changed the registry")
	}
	_, m, resp := a.do("DELETE", "/api/v1/pools", "")
	if resp.Header.Get("Allow") != "GET, HEAD" || resp.Header.Get("Content-Type") != "application/json" ||
		m["error"] != "method DELETE not allowed here; allowed: GET, HEAD" {
		t.Fatalf("405: Allow %q, %s, %v", resp.Header.Get("Allow"), resp.Header.Get("Content-Type"), m)
	}
	// GET endpoints answer HEAD too, as net/http's ServeMux makes them.
	req, _ := http.NewRequest("HEAD", a.url+"/api/v1/pools", nil)
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("HEAD: %d %s", resp.StatusCode, resp.Header)
	}
	// A path that is not clean is redirected to its clean form, once
	// authenticated, and not served as it is.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range []string{"/api/v1//pools", "/api/v1/x/../pools"} {
		req, _ := http.NewRequest("GET", a.url+p, nil)
		req.Header.Set("Authorization", "Bearer "+a.token)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 307 || resp.Header.Get("Location") != "/api/v1/pools" {
			t.Fatalf("%s: %d Location %q", p, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	// An IPv6 backend, percent-encoded in the path.
	a.t = t
	a.expect("POST", "/api/v1/pools/shop/backends", `{"address": "[2001:db8::1]:8080"}`, 201)
	a.expect("PATCH", "/api/v1/pools/shop/backends/%5B2001:db8::1%5D:8080", `{"weight": 2}`, 200)
	a.expect("DELETE", "/api/v1/pools/shop/backends/%5B2001%3Adb8%3A%3A1%5D%3A8080", ``, 200)
}

func TestAuth(t *testing.T) {
	const token = "s3cret-token-value"
	a := newAPI(t, token)
	for _, tt := range []struct{ name, auth string }{
		{"no header", ""},
		{"wrong token", "Bearer nope"},
		{"token prefix", "Bearer s3cret"},
		{"wrong scheme", "Basic " + token},
		{"no scheme", token},
	} {
		for _, path := range []string{"/api/v1/pools", "/metrics", "/api/v1/nothing"} {
			code, m, resp := a.doAuth("GET", path, "", tt.auth)
			if code != 401 || m["error"] == nil || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s, GET %s: %d %v", tt.name, path, code, m)
			}
		}
		if code, _, _ := a.doAuth("POST", "/api/v1/pools/shop/backends", `{"address": "10.0.0.5:8080"}`, tt.auth); code != 401 {
			t.Errorf("%s: register answered %d", tt.name, code)
		}
	}
	if a.reg.View().Backend("shop", "10.0.0.5:8080") != nil {
		t.Fatal("an unauthenticated request changed the registry")
	}
	a.expect("GET", "/api/v1/pools", "", 200)
	a.expect("POST", "/api/v1/pools/shop/backends", `{"address": "10.0.0.5:8080"}`, 201)
	if code, _, _ := a.doAuth("GET", "/api/v1/pools", "", "bearer "+token); code != 200 {
		t.Errorf("lower-case scheme: %d", code)
	}
	if code, _, _ := a.doAuth("GET", "/healthz", "", ""); code != 200 {
		t.Errorf("healthz without the token: %d", code)
	}
	if strings.Contains(a.log.String(), token) || strings.Contains(a.log.String(), "s3cret") {
		t.Fatal("the token appears in the log")
	}
	if !strings.Contains(a.log.String(), "status=401") {
		t.Fatalf("refused requests are not logged:\n%s", a.log.String())
	}
}

func TestRemoveAnswersAfterTheDrain(t *testing.T) {
	a := newAPI(t, "")
	a.expect("POST", "/api/v1/pools/shop/backends", `{"address": "10.0.0.5:8080"}`, 201)
	// Hold a slot on the new backend, as a request in flight would.
	bp := a.px.Current().Pool("shop")
	var held *balancer.Backend
	for held == nil {
		b, err := bp.Acquire(nil)
		if err != nil {
			t.Fatal(err)
		}
		if b.Address == "10.0.0.5:8080" {
			held = b
		} else {
			b.Release()
		}
	}
	gen := a.reg.View().Gen
	done := make(chan map[string]any, 1)
	go func() {
		_, m, _ := a.do("DELETE", "/api/v1/pools/shop/backends/10.0.0.5:8080", "")
		done <- m
	}()
	if err := a.reg.WaitApplied(context.Background(), gen+1); err != nil { // the drain has started
		t.Fatal(err)
	}
	if got := backendsOf(t, a.expect("GET", "/api/v1/pools", "", 200), "shop")["10.0.0.5:8080"]; got["state"] != "draining" || got["removing"] != true || got["in_flight"] != 1.0 {
		t.Fatalf("during the drain: %v", got)
	}
	select {
	case m := <-done:
		t.Fatalf("DELETE answered with a request in flight: %v", m)
	default:
	}
	held.Release()
	if m := <-done; m["removed"] != true || m["drained"] != true {
		t.Fatalf("%v", m)
	}
}

// TestStateFileFailureIs500: a change that cannot be saved is not made.
func TestStateFileFailureIs500(t *testing.T) {
	px := proxy.New(proxy.Options{})
	var fail atomic.Bool
	reg, err := generation.New(generation.Options{Dataplane: px, Persist: func(registry.State) error {
		if fail.Load() {
			return errors.New("write /var/lib/floodgate/state.json: no space left on device")
		}
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = reg.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if _, err := reg.Init(ctx, registry.Config{Pools: []registry.PoolSpec{{Name: "shop"}}}, registry.State{}); err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	a := &api{t: t, url: hs.URL, srv: srv, reg: reg, px: px}
	fail.Store(true)
	m := a.expect("POST", "/api/v1/pools/shop/backends", `{"address": "10.0.0.5:8080"}`, 500)
	if !strings.Contains(m["error"].(string), "no space left") {
		t.Fatalf("%v", m)
	}
	if reg.View().Backend("shop", "10.0.0.5:8080") != nil {
		t.Fatal("a change that could not be saved was applied")
	}
	fail.Store(false)
	a.expect("POST", "/api/v1/pools/shop/backends", `{"address": "10.0.0.5:8080"}`, 201)
	// Once the registry has stopped (shutdown), changes get 503.
	cancel()
	<-done
	a.expect("PATCH", "/api/v1/pools/shop/backends/10.0.0.5:8080", `{"weight": 2}`, 503)
}
