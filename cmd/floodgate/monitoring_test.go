package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// exportedMetrics runs the real binary with every optional part configured
// (cache, capture journal, degraded mode, access log), sends a little
// traffic, scrapes its /metrics and returns every series name it exports
// (histogram and summary series with their suffixes) with its label names.
func exportedMetrics(t *testing.T) map[string]map[string]bool {
	t.Helper()
	dir := t.TempDir()
	be := backend(t, "ok", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/static/app.css" {
			w.Header().Set("Cache-Control", "max-age=60")
		}
		io.WriteString(w, "ok")
	})
	cfg, addr, adminAddr := config(t, dir, fmt.Sprintf(`cache: {max_bytes: 8MB}
capture: {dir: %q}
access_log: {path: %q}
pools:
  - name: shop
    backends: [{address: %q}]
    max_conns_per_backend: 8
    queue: {max: 10, timeout: 100ms}
    degrade:
      enter: {p95_latency: 800ms}
      exit: {p95_latency: 300ms}
routes:
  - {name: static, path_prefix: /static/, pool: shop, cache: {enabled: true}}
  - {name: checkout, path_prefix: /checkout, pool: shop, priority: high, on_degraded: {action: capture}}
  - {name: search, path_prefix: /search, pool: shop, priority: low, rate_limit: {key: ip, rate: 100/s, burst: 100}, on_degraded: {action: shed}}
  - {name: site, path_prefix: /, pool: shop}
`, filepath.Join(dir, "journal"), filepath.Join(dir, "access.log"), be))
	startInstance(t, cfg, addr, adminAddr, "")
	for _, p := range []string{"/", "/static/app.css", "/static/app.css", "/search?q=x"} {
		get(t, "http://"+addr+p)
	}
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]map[string]bool{}
	types := map[string]string{}
	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? `)
	label := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(f, " ")
			types[name] = typ
			continue
		}
		m := sample.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if out[m[1]] == nil {
			out[m[1]] = map[string]bool{}
		}
		for _, l := range label.FindAllStringSubmatch(m[3], -1) {
			out[m[1]][l[1]] = true
		}
	}
	if len(types) < 30 {
		t.Fatalf("only %d metric families scraped: %v", len(types), types)
	}
	return out
}

// metricRE finds metric names in PromQL: floodgate's own, and the standard
// ones a query might lean on.
var metricRE = regexp.MustCompile(`\b(floodgate_[a-z0-9_]+|go_[a-z0-9_]+|process_[a-z0-9_]+)\b`)

// selectorRE finds a metric name with its label matchers.
var selectorRE = regexp.MustCompile(`\b(floodgate_[a-z0-9_]+)\{([^}]*)\}`)

// checkQuery reports the metric names and label matchers of expr that the
// binary does not export.
func checkQuery(t *testing.T, where, expr string, exported map[string]map[string]bool) int {
	t.Helper()
	names := metricRE.FindAllString(expr, -1)
	for _, n := range names {
		if exported[n] == nil {
			t.Errorf("%s: %s is not exported by floodgate\n  %s", where, n, expr)
		}
	}
	for _, m := range selectorRE.FindAllStringSubmatch(expr, -1) {
		labels := exported[m[1]]
		for _, matcher := range strings.Split(m[2], ",") {
			name, _, _ := strings.Cut(strings.TrimSpace(matcher), "=")
			name = strings.TrimRight(name, "!~")
			if name != "" && name != "instance" && name != "job" && labels != nil && !labels[name] {
				t.Errorf("%s: %s has no label %q\n  %s", where, m[1], name, expr)
			}
		}
	}
	if strings.Count(expr, "(") != strings.Count(expr, ")") || strings.Count(expr, "{") != strings.Count(expr, "}") {
		t.Errorf("%s: unbalanced brackets\n  %s", where, expr)
	}
	return len(names)
}

// TestGrafanaDashboardAndAlerts: examples/grafana/floodgate.json and
// examples/prometheus/alerts.yml parse, and every metric their queries name
// is one the binary exports, with the labels they match on.
func TestGrafanaDashboardAndAlerts(t *testing.T) {
	exported := exportedMetrics(t)

	// The dashboard.
	data, err := os.ReadFile("../../examples/grafana/floodgate.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title      string `json:"title"`
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
		Annotations struct {
			List []struct {
				Name string `json:"name"`
				Expr string `json:"expr"`
			} `json:"list"`
		} `json:"annotations"`
		Panels []struct {
			ID      int                      `json:"id"`
			Type    string                   `json:"type"`
			Title   string                   `json:"title"`
			GridPos struct{ H, W, X, Y int } `json:"gridPos"`
			Targets []struct {
				Expr  string `json:"expr"`
				RefID string `json:"refId"`
			} `json:"targets"`
		} `json:"panels"`
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&dash); err != nil {
		t.Fatalf("examples/grafana/floodgate.json: %v", err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) < 10 {
		t.Fatalf("dashboard: title %q uid %q, %d panels", dash.Title, dash.UID, len(dash.Panels))
	}
	ids := map[int]bool{}
	queries := 0
	types := map[string]bool{}
	for _, p := range dash.Panels {
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if ids[p.ID] {
			t.Errorf("%s: duplicate id", where)
		}
		ids[p.ID] = true
		types[p.Type] = true
		if p.GridPos.W < 1 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H < 1 {
			t.Errorf("%s: gridPos %+v outside the 24-column grid", where, p.GridPos)
		}
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("%s: no query", where)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if refs[tg.RefID] {
				t.Errorf("%s: duplicate refId %s", where, tg.RefID)
			}
			refs[tg.RefID] = true
			if checkQuery(t, where, tg.Expr, exported) == 0 {
				t.Errorf("%s: the query names no floodgate metric: %s", where, tg.Expr)
			}
			queries++
		}
	}
	for _, v := range dash.Templating.List {
		checkQuery(t, "variable "+v.Name, v.Definition, exported)
	}
	for _, a := range dash.Annotations.List {
		checkQuery(t, "annotation "+a.Name, a.Expr, exported)
	}
	for _, want := range []string{"stat", "timeseries", "state-timeline", "row"} {
		if !types[want] {
			t.Errorf("no %s panel", want)
		}
	}
	// What issue 10 asks the dashboard to show.
	all := string(data)
	for _, want := range []string{"floodgate_requests_total", "floodgate_request_duration_seconds_bucket", "floodgate_backend_up",
		"floodgate_backend_inflight", "floodgate_degraded", "floodgate_cache_requests_total", "floodgate_capture_backlog",
		"floodgate_orders_replayed_total"} {
		if !strings.Contains(all, want) {
			t.Errorf("the dashboard does not use %s", want)
		}
	}

	// The alerts.
	data, err = os.ReadFile("../../examples/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	ydec := yaml.NewDecoder(strings.NewReader(string(data)))
	ydec.KnownFields(true)
	if err := ydec.Decode(&rules); err != nil {
		t.Fatalf("examples/prometheus/alerts.yml: %v", err)
	}
	var names []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
			where := "alert " + r.Alert
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: needs a severity, a summary and a description", where)
			}
			if r.Alert != "FloodgateDown" && checkQuery(t, where, r.Expr, exported) == 0 {
				t.Errorf("%s: names no floodgate metric", where)
			}
		}
	}
	for _, want := range []string{"FloodgatePoolDegraded", "FloodgateBackendDown", "FloodgateCaptureDeadLetters",
		"FloodgateConfigReloadFailing", "FloodgateCacheNearlyFull"} {
		if !slices.Contains(names, want) {
			t.Errorf("alerts.yml has no %s", want)
		}
	}
	t.Logf("%d dashboard queries and %d alerts checked against %d exported series names", queries, len(names), len(exported))
}
