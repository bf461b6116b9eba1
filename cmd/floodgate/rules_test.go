package main

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/floodgate/floodgate/conf"
	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/generation"
	"github.com/floodgate/floodgate/health"
	"github.com/floodgate/floodgate/proxy"
	"github.com/floodgate/floodgate/registry"
)

// The tests below hold the config file and the runtime package that owns a
// rule to one answer (issue 14): whatever the file accepts the runtime takes,
// and what the runtime refuses the file refuses, over a grid of values around
// each bound.

func pick[T any](r *rand.Rand, vs ...T) T { return vs[r.IntN(len(vs))] }

func yamlDuration(d time.Duration) string { return strconv.Quote(d.String()) }

// TestDegradeRuleAgrees: a pool's degrade section is accepted by conf.Parse
// exactly when degrade.Monitor.Configure accepts what the wiring makes of it.
func TestDegradeRuleAgrees(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 6))
	ratios := []float64{0, 0.05, 0.5, 0.9, 1, 1.5}
	durs := []time.Duration{0, time.Millisecond, 300 * time.Millisecond, 59 * time.Minute, 2 * time.Hour}
	disagree := 0
	for i := 0; i < 600 && disagree < 10; i++ {
		enter := [4]string{
			fmt.Sprint(pick(r, ratios...)), yamlDuration(pick(r, durs...)), yamlDuration(pick(r, durs...)), fmt.Sprint(pick(r, ratios...)),
		}
		exit := [4]string{
			fmt.Sprint(pick(r, ratios...)), yamlDuration(pick(r, durs...)), yamlDuration(pick(r, durs...)), fmt.Sprint(pick(r, ratios...)),
		}
		keys := [4]string{"inflight_ratio", "queue_wait", "p95_latency", "error_rate"}
		var en, ex []string
		for k := range keys {
			if r.IntN(2) == 0 {
				en = append(en, keys[k]+": "+enter[k])
			}
			if r.IntN(2) == 0 {
				ex = append(ex, keys[k]+": "+exit[k])
			}
		}
		sec := fmt.Sprintf("enter: {%s}\n      exit: {%s}\n      hold: %s\n      window: %s\n      windows: %d\n",
			strings.Join(en, ", "), strings.Join(ex, ", "),
			yamlDuration(pick(r, 0, time.Second, time.Hour, 2*time.Hour)),
			yamlDuration(pick(r, 10*time.Millisecond, 50*time.Millisecond, 100*time.Millisecond, 2*time.Second, time.Minute, 2*time.Minute)),
			pick(r, 1, 2, 100, 101))
		if rawDegrade(sec).Enter == (degrade.Thresholds{}) {
			continue // "set at least one": a rule of the file (an empty section), not the monitor's
		}
		text := "pools:\n  - name: p\n    backends: [{address: \"127.0.0.1:1\"}]\n    degrade:\n      " + sec +
			"routes:\n  - {name: r, path_prefix: /, pool: p}\n"
		cfg, confErr := conf.Parse("t.yaml", []byte(text))
		var monErr error
		if confErr == nil {
			var rc registry.Config
			if rc, monErr = registryConfig(cfg); monErr == nil {
				d := rc.Pools[0].Settings.(generation.PoolSettings).Degrade
				monErr = degrade.NewMonitor(degrade.MonitorOptions{}).Configure([]degrade.PoolConfig{d.PoolConfig("p", nil)})
			}
		} else {
			// conf refused it: hand the monitor the values as written.
			monErr = degrade.NewMonitor(degrade.MonitorOptions{}).Configure([]degrade.PoolConfig{rawDegrade(sec)})
		}
		if (confErr == nil) != (monErr == nil) {
			disagree++
			t.Errorf("degrade section\n      %s\nconf: %v\nmonitor: %v", sec, confErr, monErr)
		}
	}
}

// rawDegrade decodes a degrade section, as the test above writes them, into
// the monitor's terms without conf's validation.
func rawDegrade(sec string) degrade.PoolConfig {
	pc := degrade.PoolConfig{Name: "p"}
	for _, line := range strings.Split(sec, "\n") {
		line = strings.TrimSpace(line)
		side, body, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		switch side {
		case "enter", "exit":
			th := &pc.Enter
			if side == "exit" {
				th = &pc.Exit
			}
			body = strings.Trim(body, "{}")
			if body == "" {
				continue
			}
			for _, kv := range strings.Split(body, ", ") {
				k, v, _ := strings.Cut(kv, ": ")
				v = strings.Trim(v, `"`)
				switch k {
				case "inflight_ratio":
					th.InflightRatio, _ = strconv.ParseFloat(v, 64)
				case "error_rate":
					th.ErrorRate, _ = strconv.ParseFloat(v, 64)
				case "queue_wait":
					th.QueueWait, _ = time.ParseDuration(v)
				case "p95_latency":
					th.P95Latency, _ = time.ParseDuration(v)
				}
			}
		case "hold":
			pc.Hold, _ = time.ParseDuration(strings.Trim(body, `"`))
		case "window":
			pc.Window, _ = time.ParseDuration(strings.Trim(body, `"`))
		case "windows":
			pc.Windows, _ = strconv.Atoi(body)
		}
	}
	return pc
}

// TestHealthRuleAgrees: a pool's health section is accepted by conf.Parse
// exactly when health.Check.Validate accepts what the wiring makes of it.
func TestHealthRuleAgrees(t *testing.T) {
	r := rand.New(rand.NewPCG(14, 7))
	durs := []time.Duration{time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, time.Hour, 2 * time.Hour}
	disagree := 0
	for i := 0; i < 600 && disagree < 10; i++ {
		typ := pick(r, "http", "tcp")
		keys := []string{"type: " + typ}
		c := health.Check{Type: typ, Rise: 2, Fall: 3, Interval: 2 * time.Second, Timeout: time.Second}
		if typ == "http" {
			c.Path = pick(r, "/healthz", "/a b", "/%zz", "/x?y=1", "healthz")
			keys = append(keys, "path: "+strconv.Quote(c.Path))
		}
		iv := pick(r, durs...)
		c.Interval = iv
		keys = append(keys, "interval: "+yamlDuration(iv))
		c.UnhealthyInterval = iv
		if r.IntN(2) == 0 {
			c.UnhealthyInterval = pick(r, durs...)
			keys = append(keys, "unhealthy_interval: "+yamlDuration(c.UnhealthyInterval))
		}
		c.Timeout = pick(r, durs...)
		keys = append(keys, "timeout: "+yamlDuration(c.Timeout))
		c.Rise, c.Fall = pick(r, 1, 2, 100, 101), pick(r, 1, 3, 100, 101)
		keys = append(keys, fmt.Sprintf("rise: %d", c.Rise), fmt.Sprintf("fall: %d", c.Fall))
		if typ == "http" && r.IntN(2) == 0 {
			c.ExpectStatus = pick(r, 99, 100, 204, 599, 600)
			keys = append(keys, fmt.Sprintf("expect_status: %d", c.ExpectStatus))
		}
		sec := "{" + strings.Join(keys, ", ") + "}"
		text := "pools:\n  - name: p\n    backends: [{address: \"127.0.0.1:1\"}]\n    health: " + sec +
			"\nroutes:\n  - {name: r, path_prefix: /, pool: p}\n"
		cfg, confErr := conf.Parse("t.yaml", []byte(text))
		check := c
		if confErr == nil {
			check = healthCheck(cfg.Pools[0].Health)
		}
		hcErr := check.Validate()
		if (confErr == nil) != (hcErr == nil) {
			disagree++
			t.Errorf("health %s\nconf: %v\nhealth: %v", sec, confErr, hcErr)
		}
	}
}

// TestShedRuleAgrees: a route's on_degraded shed settings are accepted by
// conf.Parse exactly when degrade.NewShed, which the wiring calls, accepts them.
func TestShedRuleAgrees(t *testing.T) {
	for _, status := range []int{429, 500, 503} {
		for _, ra := range []time.Duration{0, time.Second, 1500 * time.Millisecond, 59 * time.Minute, 2 * time.Hour} {
			text := fmt.Sprintf("pools:\n  - name: p\n    backends: [{address: \"127.0.0.1:1\"}]\nroutes:\n  - {name: r, path_prefix: /, pool: p, on_degraded: {action: shed, status: %d, retry_after: %s}}\n",
				status, yamlDuration(ra))
			cfg, confErr := conf.Parse("t.yaml", []byte(text))
			var runErr error
			if confErr == nil {
				_, runErr = registryConfig(cfg)
			} else {
				_, runErr = degrade.NewShed(status, ra)
			}
			if (confErr == nil) != (runErr == nil) {
				t.Errorf("shed %d, retry_after %s: conf: %v; runtime: %v", status, ra, confErr, runErr)
			}
		}
	}
}

// TestRateLimitRuleAgrees: a route's rate_limit section is accepted by
// conf.Parse exactly when the proxy, building the generation, accepts it.
func TestRateLimitRuleAgrees(t *testing.T) {
	base, err := conf.Parse("base.yaml", []byte("pools:\n  - name: p\n    backends: [{address: \"127.0.0.1:1\"}]\nroutes:\n  - {name: r, path_prefix: /, pool: p}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"ip", "header:X-Api-Key", "header:X Api"} {
		for _, rate := range []float64{0.5, 20, 1e6, 2e6} {
			for _, burst := range []int{0, 1, 1e7, 1e7 + 1} {
				for _, keys := range []int{0, 1, 1e7, 1e7 + 1} {
					sec := fmt.Sprintf("{key: %q, rate: %s/s", key, strconv.FormatFloat(rate, 'f', -1, 64))
					if burst != 0 {
						sec += fmt.Sprintf(", burst: %d", burst)
					}
					if keys != 0 {
						sec += fmt.Sprintf(", max_keys: %d", keys)
					}
					sec += "}"
					text := "pools:\n  - name: p\n    backends: [{address: \"127.0.0.1:1\"}]\nroutes:\n  - {name: r, path_prefix: /, pool: p, rate_limit: " + sec + "}\n"
					cfg, confErr := conf.Parse("t.yaml", []byte(text))
					var rcfg registry.Config
					if confErr == nil {
						if rcfg, err = registryConfig(cfg); err != nil {
							t.Fatal(err)
						}
					} else {
						// The values as written, handed to the proxy.
						cfg = base
						rcfg, _ = registryConfig(cfg)
						header, _ := strings.CutPrefix(key, "header:")
						if key == "ip" {
							header = ""
						}
						rs := rcfg.Routes[0].Spec.(proxy.RouteSpec)
						rs.RateLimit = &proxy.RateLimitSpec{Header: header, Rate: rate, Burst: burst, MaxKeys: keys}
						rcfg.Routes[0] = generation.Route(rs)
					}
					_, buildErr := dryBuild(cfg, rcfg, registry.State{})
					if (confErr == nil) != (buildErr == nil) {
						t.Errorf("rate_limit %s\nconf: %v\nproxy: %v", sec, confErr, buildErr)
					}
				}
			}
		}
	}
}

// TestCaptureMaxWaitRuleAgrees: a capture route's max_wait is accepted by
// conf.Parse exactly when the proxy, building the generation, accepts it
// (degrade.CheckMaxWait).
func TestCaptureMaxWaitRuleAgrees(t *testing.T) {
	const head = "capture: {dir: /nonexistent/journal}\npools:\n  - name: p\n    backends: [{address: \"127.0.0.1:1\"}]\nroutes:\n  - {name: r, path_prefix: /, pool: p, on_degraded: {action: capture"
	base, err := conf.Parse("base.yaml", []byte(head+"}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []time.Duration{-time.Millisecond, 0, time.Microsecond, time.Millisecond, 100 * time.Millisecond, time.Minute, time.Minute + 1, time.Hour} {
		text := head + ", max_wait: " + yamlDuration(v) + "}}\n"
		cfg, confErr := conf.Parse("t.yaml", []byte(text))
		var rcfg registry.Config
		if confErr == nil {
			if rcfg, err = registryConfig(cfg); err != nil {
				t.Fatal(err)
			}
		} else {
			// The value as written, handed to the proxy.
			cfg = base
			rcfg, _ = registryConfig(cfg)
			rs := rcfg.Routes[0].Spec.(proxy.RouteSpec)
			rs.CaptureMaxWait = v
			rcfg.Routes[0] = generation.Route(rs)
		}
		_, buildErr := dryBuild(cfg, rcfg, registry.State{})
		if (confErr == nil) != (buildErr == nil) {
			t.Errorf("max_wait %s\nconf: %v\nproxy: %v", v, confErr, buildErr)
		}
	}
}
