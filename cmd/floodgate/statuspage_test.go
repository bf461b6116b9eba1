package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floodgate/floodgate/admin"
)

var screenshotPath = flag.String("screenshot", "", "TestStatusPageInChromium saves its screenshot here (docs/status.png: -screenshot ../../docs/status.png), after 60 s of traffic instead of a few")

// chromiumPath finds headless Chromium, or "" when it is not installed.
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// chromium runs headless Chromium on url with a fresh profile and the given
// extra flags, and returns its standard output.
func chromium(t *testing.T, bin, url string, extra ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--no-first-run", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
		"--user-data-dir=" + t.TempDir(),
		// Virtual time runs the page's timers at once, but waits for its
		// fetches: three seconds of it are three polls of the status.
		"--virtual-time-budget=3000",
	}, extra...)
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(extra, " "), err, stderr.String())
	}
	return out
}

// shopBackend is a loopback backend of the status page test: a few
// milliseconds of latency that vary by request, one search in forty failing,
// cacheable /static/.
func shopBackend(t *testing.T, name string) string {
	var n atomic.Int64
	return backend(t, name, func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		if r.URL.Path == "/healthz" {
			return
		}
		time.Sleep(time.Duration(1+(i*7)%13) * time.Millisecond)
		switch {
		case strings.HasPrefix(r.URL.Path, "/static/"):
			w.Header().Set("Cache-Control", "public, max-age=60")
		case strings.HasPrefix(r.URL.Path, "/search") && i%40 == 0:
			w.WriteHeader(http.StatusInternalServerError)
		}
		io.WriteString(w, name)
	})
}

// TestStatusPageInChromium starts floodgate with real backends and traffic,
// sets a pool to degraded and drains a backend through the API, and loads
// the status page in headless Chromium: the rendered page shows the pools,
// the degraded pool's reason and the drained backend. It takes a
// screenshot, which -screenshot saves (docs/status.png).
func TestStatusPageInChromium(t *testing.T) {
	bin := chromiumPath()
	if bin == "" {
		t.Skip("chromium is not installed (Debian: apt-get install chromium); the status page is not rendered")
	}
	dir := t.TempDir()
	a, b, c := shopBackend(t, "shop-a"), shopBackend(t, "shop-b"), shopBackend(t, "shop-c")
	bo := shopBackend(t, "backoffice")
	cfg, addr, adminAddr := config(t, dir, fmt.Sprintf(`cache: {max_bytes: 64MB}
capture: {dir: %q, replay_rate: 50/s}
pools:
  - name: shop
    backends:
      - {address: %q, weight: 3}
      - {address: %q, weight: 2}
      - {address: %q, weight: 1}
    health: {type: http, path: /healthz, interval: 1s, timeout: 500ms}
    max_conns_per_backend: 16
    queue: {max: 100, timeout: 500ms}
    degrade:
      enter: {inflight_ratio: 0.9, p95_latency: 800ms}
      exit: {inflight_ratio: 0.6, p95_latency: 300ms}
      hold: 30s
  - name: backoffice
    backends: [{address: %q}]
    max_conns_per_backend: 8
routes:
  - {name: static, path_prefix: /static/, pool: shop, cache: {enabled: true}}
  - {name: search, path_prefix: /search, pool: shop, priority: low, on_degraded: {action: shed}}
  - {name: checkout, path_prefix: /checkout, pool: shop, priority: high, on_degraded: {action: capture, when: degraded}}
  - {name: backoffice, path_prefix: /admin/, pool: backoffice, priority: critical}
  - {name: site, path_prefix: /, pool: shop}
`, filepath.Join(dir, "journal"), a, b, c, bo))
	in := startInstance(t, cfg, addr, adminAddr, "")

	// Traffic until the test ends: pages, static files, searches, orders and
	// the back office, about 300 requests a second.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for g, paths := range [][]string{
		{"/", "/product/42", "/static/app.css", "/search?q=mug", "/"},
		{"/static/logo.png", "/search?q=bowl", "/category/ceramics", "/admin/orders"},
		{"/", "/product/7", "/checkout", "/search?q=vase"},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			for i := 0; ctx.Err() == nil; i++ {
				p := paths[i%len(paths)]
				var resp *http.Response
				var err error
				if p == "/checkout" {
					resp, err = client.Post("http://"+addr+p, "application/json", strings.NewReader(fmt.Sprintf(`{"order": %d}`, g*100000+i)))
				} else {
					resp, err = client.Get("http://" + addr + p)
				}
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				time.Sleep(10 * time.Millisecond) // pacing the load, not synchronising
			}
		}()
	}

	// The operator's actions, through the API as the page's buttons do.
	in.mustAPI(t, "PUT", "/api/v1/pools/shop/mode", `{"mode": "degraded"}`, 200)
	in.mustAPI(t, "PATCH", "/api/v1/pools/shop/backends/"+c, `{"drain": true}`, 200)

	// Wait for some history, polling as the page would (which also takes the
	// readings when the admin server does not run its sampler).
	points := 5
	if *screenshotPath != "" {
		points = 60
	}
	var st admin.Status
	waitFor(t, fmt.Sprintf("%d seconds of status history", points), time.Duration(points+20)*time.Second, func() bool {
		code, m := in.api(t, "GET", "/api/v1/status", "")
		if code != 200 {
			return false
		}
		raw, _ := json.Marshal(m)
		st = admin.Status{}
		if json.Unmarshal(raw, &st) != nil || len(st.Pools) != 2 {
			return false
		}
		if len(st.Pools[0].History.Time) < points || st.Captures == nil || st.Captures.Backlog == 0 {
			return false
		}
		// Traffic has moved off the drained backend, onto the others.
		for _, b := range st.Pools[0].Backends {
			if rps := b.RequestsPerSecond; rps == nil || (b.Address == c) != (*rps == 0) {
				return false
			}
		}
		return true
	})

	// What the page renders.
	url := "http://" + adminAddr + "/"
	dom := string(chromium(t, bin, url, "--window-size=1280,1000", "--dump-dom"))
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`<article class="pool degraded" data-pool="shop">`),
		regexp.MustCompile(`<article class="pool" data-pool="backoffice">`),
		regexp.MustCompile(`data-pool="shop">.*DEGRADED.*admin override: degraded`),
		regexp.MustCompile(`<tr class="draining" data-backend="` + regexp.QuoteMeta(c) + `" data-state="draining">`),
		regexp.MustCompile(`data-backend="` + regexp.QuoteMeta(a) + `" data-state="up">`),
		regexp.MustCompile(`data-live="ok">live<`),
		regexp.MustCompile(`<tr data-route="checkout">`),
		regexp.MustCompile(`capture backlog</div><div class="value ">[1-9]`),
		regexp.MustCompile(`<path d="M[0-9.]+ [0-9.]+ L`), // a sparkline with points
	} {
		if !want.MatchString(dom) {
			t.Errorf("the rendered page lacks %s", want)
		}
	}
	if t.Failed() {
		t.Fatalf("rendered DOM:\n%s", dom)
	}

	// The screenshot, for people; and the phone layout, checked to render.
	shot := filepath.Join(t.TempDir(), "status.png")
	chromium(t, bin, url, "--window-size=1280,1180", "--screenshot="+shot)
	phone := filepath.Join(t.TempDir(), "phone.png")
	chromium(t, bin, url, "--window-size=390,1600", "--screenshot="+phone)
	for _, p := range []string{shot, phone} {
		png, err := os.ReadFile(p)
		if err != nil || len(png) < 10000 || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
			t.Fatalf("screenshot %s: %d bytes, %v", p, len(png), err)
		}
	}
	if *screenshotPath != "" {
		png, _ := os.ReadFile(shot)
		if err := os.WriteFile(*screenshotPath, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot saved to %s", *screenshotPath)
	}

	// The same facts in the terminal, from the real binary.
	out, err := exec.Command(binPath, "status", "-admin", adminAddr).CombinedOutput()
	if err != nil || !regexp.MustCompile(`(?m)^shop\s+DEGRADED \(override\)`).Match(out) ||
		!regexp.MustCompile(`(?m)^shop\s+`+regexp.QuoteMeta(c)+`\s+draining`).Match(out) {
		t.Fatalf("floodgate status: %v\n%s", err, out)
	}
}
