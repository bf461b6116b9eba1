package conf

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Every case has the skeleton below unless it replaces it; keep it in sync.
const (
	pools1  = "pools: [{name: shop, backends: [{address: \"10.0.0.1:8080\"}]}]\n"
	routes1 = "routes: [{name: site, path_prefix: /, pool: shop}]\n"
)

func mustParse(t *testing.T, y string) *Config {
	t.Helper()
	c, err := Parse("t.yaml", []byte(y))
	if err != nil {
		t.Fatalf("Parse: unexpected error:\n%v", err)
	}
	return c
}

func parseErrs(t *testing.T, y string) Errors {
	t.Helper()
	c, err := Parse("t.yaml", []byte(y))
	if err == nil {
		t.Fatalf("Parse succeeded, want an error; got %+v", c)
	}
	if c != nil {
		t.Errorf("Parse returned a non-nil *Config with an error")
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error is %T, want conf.Errors: %v", err, err)
	}
	for _, e := range es {
		if e.Line < 1 || e.Path != "t.yaml" {
			t.Errorf("bad Line or Path in %q", e)
		}
	}
	return es
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		// want is "LINE: FIELD: MSG-PREFIX" for the first problem.
		want string
		// n is the number of problems expected (0 means 1).
		n int
	}{
		// Top level and YAML.
		{"unknown top key with hint", "listn: \":80\"\n" + pools1 + routes1, `1: listn: unknown key, did you mean listen?`, 0},
		{"unknown key without hint", pools1 + routes1 + "frobnicate: 1\n", `3: frobnicate: unknown key`, 0},
		{"camel case key hint", "trustedProxies: []\n" + pools1 + routes1, `1: trustedProxies: unknown key, did you mean trusted_proxies?`, 0},
		{"duplicate key", "listen: \":80\"\nlisten: \":81\"\n" + pools1 + routes1, `2: listen: duplicate key, first set at line 1`, 0},
		{"top level list", "- a\n- b\n", `1: the top level must be a mapping`, 0},
		{"syntax error", "pools: [\n", `1: invalid YAML: did not find expected node content`, 0},
		{"bad indentation", pools1 + "routes:\n  - name: site\n   pool: shop\n", `2: invalid YAML: `, 0},
		{"tab indentation", "pools:\n\t- name: shop\n", `2: invalid YAML: found character that cannot start any token`, 0},
		{"anchor", "x: &a 1\n" + pools1 + routes1, `1: x: unknown key`, 0},
		{"anchor on known key", "listen: &l \":80\"\n" + pools1 + routes1, `1: listen: YAML anchors (&l) are not supported`, 0},
		{"alias", "admin: {listen: &l \"127.0.0.1:9090\", state_file: *l}\n" + pools1 + routes1, `1: admin.listen: YAML anchors`, 2},
		{"merge key", "timeouts:\n  <<: {client_idle: 5s}\n" + pools1 + routes1, `2: timeouts: YAML merge keys (<<) are not supported`, 0},
		{"custom tag", "listen: !env LISTEN\n" + pools1 + routes1, `1: listen: unsupported YAML tag "!env"`, 0},
		{"binary tag", "listen: !!binary aGVsbG8=\n" + pools1 + routes1, `1: listen: unsupported YAML tag "!!binary"`, 0},
		{"control character", "access_log: {path: \"a\\u0001b\"}\n" + pools1 + routes1, `1: access_log.path: must not contain control characters`, 0},
		{"non-string key", "1: x\n" + pools1 + routes1, `1: 1: unknown key`, 0},
		{"complex key", "? [a]\n: b\n" + pools1 + routes1, `1: keys must be plain names, got a list`, 0},

		// listen and listeners.
		{"listen without port", "listen: \"8080\"\n" + pools1 + routes1, `1: listen: must be host:port`, 0},
		{"listen port 0", "listen: \":0\"\n" + pools1 + routes1, `1: listen: port must be a number between 1 and 65535, got "0"`, 0},
		{"listen port too big", "listen: \":70000\"\n" + pools1 + routes1, `1: listen: port must be a number between 1 and 65535, got "70000"`, 0},
		{"listen service name", "listen: \":http\"\n" + pools1 + routes1, `1: listen: port must be a number`, 0},
		{"listen bad host", "listen: \"exa mple:80\"\n" + pools1 + routes1, `1: listen: invalid host "exa mple"`, 0},
		{"listen empty", "listen: \"\"\n" + pools1 + routes1, `1: listen: required`, 0},
		{"listen is a number", "listen: 8080\n" + pools1 + routes1, `1: listen: must be host:port`, 0},
		{"listen is a list", "listen: [\":80\"]\n" + pools1 + routes1, `1: listen: must be a string, got a list`, 0},
		{"admin port conflict", "listen: \":9000\"\nadmin: {listen: \"127.0.0.1:9000\"}\n" + pools1 + routes1, `2: admin.listen: uses the same port as listen (:9000)`, 0},
		{"tls port conflict", "tls:\n  listen: \"0.0.0.0:8080\"\n  certificates: [{cert_file: a, key_file: b}]\n" + pools1 + routes1, `2: tls.listen: uses the same port as listen (:8080)`, 0},

		// timeouts, durations.
		{"timeout zero", "timeouts: {client_header: 0s}\n" + pools1 + routes1, `1: timeouts.client_header: must be greater than 0, got 0s`, 0},
		{"timeout too long", "timeouts:\n  client_idle: 2h\n" + pools1 + routes1, `2: timeouts.client_idle: must be at most 1h, got 2h0m0s`, 0},
		{"timeout negative", "timeouts:\n  shutdown_grace: -1s\n" + pools1 + routes1, `2: timeouts.shutdown_grace: must be greater than 0, got -1s`, 0},
		{"duration bare number", "timeouts:\n  client_body: 5\n" + pools1 + routes1, `2: timeouts.client_body: duration needs a unit, e.g. 800ms`, 0},
		{"duration quoted bare number", "timeouts:\n  client_body: \"5\"\n" + pools1 + routes1, `2: timeouts.client_body: duration needs a unit, e.g. 800ms`, 0},
		{"duration bad", "timeouts:\n  client_body: 5 minutes\n" + pools1 + routes1, `2: timeouts.client_body: invalid duration "5 minutes"`, 0},
		{"duration bool", "timeouts:\n  client_body: true\n" + pools1 + routes1, `2: timeouts.client_body: must be a duration like 800ms or 30s, got boolean true`, 0},
		{"timeouts list", "timeouts: [1s]\n" + pools1 + routes1, `1: timeouts: must be a mapping, got a list`, 0},

		// limits, sizes.
		{"header bytes too small", "limits:\n  max_header_bytes: 512\n" + pools1 + routes1, `2: limits.max_header_bytes: must be between 1KB and 1MB, got 512B`, 0},
		{"header bytes too big", "limits:\n  max_header_bytes: 2MB\n" + pools1 + routes1, `2: limits.max_header_bytes: must be between 1KB and 1MB, got 2MB`, 0},
		{"header fields zero", "limits:\n  max_header_fields: 0\n" + pools1 + routes1, `2: limits.max_header_fields: must be between 1 and 10000, got 0`, 0},
		{"header fields too many", "limits:\n  max_header_fields: 10001\n" + pools1 + routes1, `2: limits.max_header_fields: must be between 1 and 10000, got 10001`, 0},
		{"size bad unit", "limits:\n  max_request_body: 64XB\n" + pools1 + routes1, `2: limits.max_request_body: invalid size "64XB"`, 0},
		{"size fraction", "limits:\n  max_request_body: 1.5GB\n" + pools1 + routes1, `2: limits.max_request_body: invalid size "1.5GB"`, 0},
		{"size float", "limits:\n  max_request_body: 1.5\n" + pools1 + routes1, `2: limits.max_request_body: invalid size "1.5"`, 0},
		{"size negative", "limits:\n  max_request_body: -1MB\n" + pools1 + routes1, `2: limits.max_request_body: size must not be negative, got "-1MB"`, 0},
		{"size negative bare", "limits:\n  max_request_body: -5\n" + pools1 + routes1, `2: limits.max_request_body: size must not be negative`, 0},
		{"size overflow", "limits:\n  max_request_body: 99999999999GB\n" + pools1 + routes1, `2: limits.max_request_body: size "99999999999GB" is too large`, 0},
		{"size overflow bare", "limits:\n  max_request_body: 99999999999999999999\n" + pools1 + routes1, `2: limits.max_request_body: invalid size`, 0},
		{"size zero body", "limits:\n  max_request_body: 0\n" + pools1 + routes1, `2: limits.max_request_body: must be between 1B and 64GB, got 0B`, 0},
		{"int as string", "limits:\n  max_conns: many\n" + pools1 + routes1, `2: limits.max_conns: must be an integer, got string "many"`, 0},
		{"int quoted", "limits:\n  max_conns: \"5\"\n" + pools1 + routes1, `2: limits.max_conns: must be an integer, got string "5"`, 0},
		{"int float", "limits:\n  max_conns: 1.5\n" + pools1 + routes1, `2: limits.max_conns: must be an integer, got number 1.5`, 0},
		{"int overflow", "limits:\n  max_conns: 99999999999999999999\n" + pools1 + routes1, `2: limits.max_conns: must be an integer`, 0},
		{"max conns negative", "limits:\n  max_conns: -1\n" + pools1 + routes1, `2: limits.max_conns: must be between 0 and 10000000, got -1`, 0},
		{"per ip above total", "limits:\n  max_conns: 10\n  max_conns_per_ip: 20\n" + pools1 + routes1, `3: limits.max_conns_per_ip: must not exceed limits.max_conns (10), got 20`, 0},

		// tls, admin, access log, cache, capture, trusted proxies.
		{"tls no certificates", "tls:\n  listen: \":8443\"\n" + pools1 + routes1, `1: tls.certificates: at least one {cert_file, key_file} pair is required`, 0},
		{"tls missing key file", "tls:\n  certificates:\n    - cert_file: a.crt\n" + pools1 + routes1, `3: tls.certificates[0].key_file: required`, 0},
		{"tls empty item", "tls:\n  certificates:\n    - \n" + pools1 + routes1, `3: tls.certificates[0]: empty list item`, 0},
		{"tls redirect not bool", "tls: {certificates: [{cert_file: a, key_file: b}], redirect_http: yes}\n" + pools1 + routes1, `1: tls.redirect_http: must be true or false, got string "yes"`, 0},
		{"admin public without token", "admin:\n  listen: \"0.0.0.0:9090\"\n" + pools1 + routes1, `2: admin.token_file: required when admin.listen is not loopback`, 0},
		{"admin all interfaces without token", "admin:\n  listen: \":9090\"\n" + pools1 + routes1, `2: admin.token_file: required when admin.listen is not loopback`, 0},
		{"admin named host without token", "admin: {listen: \"admin.internal:9090\"}\n" + pools1 + routes1, `1: admin.token_file: required when admin.listen is not loopback`, 0},
		{"admin drain zero", "admin: {drain_timeout: 0s}\n" + pools1 + routes1, `1: admin.drain_timeout: must be greater than 0`, 0},
		{"trusted proxy host bits", "trusted_proxies: [\"10.0.0.1/8\"]\n" + pools1 + routes1, `1: trusted_proxies[0]: CIDR "10.0.0.1/8" has host bits set, did you mean 10.0.0.0/8?`, 0},
		{"trusted proxy garbage", "trusted_proxies:\n  - 10.0.0.0/8\n  - nope\n" + pools1 + routes1, `3: trusted_proxies[1]: invalid IP address or CIDR "nope"`, 0},
		{"trusted proxy bad mask", "trusted_proxies: [\"10.0.0.0/33\"]\n" + pools1 + routes1, `1: trusted_proxies[0]: invalid CIDR "10.0.0.0/33"`, 0},
		{"trusted proxies not a list", "trusted_proxies: 10.0.0.0/8\n" + pools1 + routes1, `1: trusted_proxies: must be a list, got string "10.0.0.0/8"`, 0},
		{"access log without path", "access_log: {}\n" + pools1 + routes1, `1: access_log.path: required`, 0},
		{"cache size bad", "cache: {max_bytes: lots}\n" + pools1 + routes1, `1: cache.max_bytes: invalid size "lots"`, 0},
		{"capture without dir", "capture: {replay_rate: 10/s}\n" + pools1 + routes1, `1: capture.dir: required`, 0},
		{"rate without unit", "capture:\n  dir: /j\n  replay_rate: 50\n" + pools1 + routes1, `3: capture.replay_rate: invalid rate "50", want N/s, N/m or N/h`, 0},
		{"rate zero", "capture:\n  dir: /j\n  replay_rate: 0/s\n" + pools1 + routes1, `3: capture.replay_rate: invalid rate "0/s"`, 0},
		{"rate bad unit", "capture:\n  dir: /j\n  replay_rate: 5/d\n" + pools1 + routes1, `3: capture.replay_rate: invalid rate "5/d"`, 0},
		{"rate too high", "capture:\n  dir: /j\n  replay_rate: 2000000/s\n" + pools1 + routes1, `3: capture.replay_rate: must be at most 1000000/s, got 2e+06/s`, 0},
		{"rate is a map", "capture:\n  dir: /j\n  replay_rate: {n: 5}\n" + pools1 + routes1, `3: capture.replay_rate: must be a rate like 50/s`, 0},
		{"replay concurrency zero", "capture:\n  dir: /j\n  replay_concurrency: 0\n" + pools1 + routes1, `3: capture.replay_concurrency: must be between 1 and 256, got 0`, 0},
		{"replay concurrency too high", "capture:\n  dir: /j\n  replay_concurrency: 257\n" + pools1 + routes1, `3: capture.replay_concurrency: must be between 1 and 256, got 257`, 0},
		{"replay concurrency not int", "capture: {dir: /j, replay_concurrency: 8/s}\n" + pools1 + routes1, `1: capture.replay_concurrency: must be an integer, got string "8/s"`, 0},

		// pools.
		{"no pools", routes1, `1: pools: at least one pool is required`, 2},
		{"empty pools", "pools: []\n" + routes1, `1: pools: at least one pool is required`, 2},
		{"pools is a map", "pools: {name: shop}\n" + routes1, `1: pools: must be a list, got a mapping`, 2},
		{"pool not a map", "pools: [shop]\n" + routes1, `1: pools[0]: must be a mapping, got string "shop"`, 2},
		{"pool without name", "pools:\n  - backends: []\n" + routes1, `2: pools[0].name: required`, 2},
		{"pool bad name", "pools:\n  - name: shop one\n" + routes1, `2: pools[0].name: must be 1 to 64 characters from A-Z a-z 0-9 _ . -, got "shop one"`, 2},
		{"duplicate pool", "pools:\n  - name: shop\n  - name: shop\n" + routes1, `3: pools[1].name: duplicate pool name "shop", first at line 2`, 0},
		{"backend without port", "pools:\n  - name: shop\n    backends:\n      - address: 10.0.0.1\n" + routes1, `4: pools[0].backends[0].address: must be host:port`, 0},
		{"backend without host", "pools:\n  - name: shop\n    backends:\n      - address: \":8080\"\n" + routes1, `4: pools[0].backends[0].address: needs a host`, 0},
		{"backend without address", "pools:\n  - name: shop\n    backends:\n      - weight: 3\n" + routes1, `4: pools[0].backends[0].address: required`, 0},
		{"backend ipv6 without brackets", "pools:\n  - name: shop\n    backends:\n      - address: \"::1:80\"\n" + routes1, `4: pools[0].backends[0].address: must be host:port`, 0},
		{"duplicate backend", "pools:\n  - name: shop\n    backends:\n      - address: \"10.0.0.1:80\"\n      - address: \"10.0.0.1:80\"\n" + routes1, `5: pools[0].backends[1].address: duplicate backend "10.0.0.1:80", first at line 4`, 0},
		{"weight too big", "pools:\n  - name: shop\n    backends:\n      - {address: \"10.0.0.1:80\", weight: 5000}\n" + routes1, `4: pools[0].backends[0].weight: must be between 0 and 1000, got 5000`, 0},
		{"weight negative", "pools:\n  - name: shop\n    backends:\n      - address: \"10.0.0.1:80\"\n        weight: -1\n" + routes1, `5: pools[0].backends[0].weight: must be between 0 and 1000, got -1`, 0},
		{"backend max conns negative", "pools:\n  - name: shop\n    backends:\n      - address: \"10.0.0.1:80\"\n        max_conns: -1\n" + routes1, `5: pools[0].backends[0].max_conns: must be between 0 and 1000000, got -1`, 0},
		{"backend max conns too big", "pools:\n  - name: shop\n    max_conns_per_backend: 4\n    backends:\n      - {address: \"10.0.0.1:80\"}\n      - {address: \"10.0.0.2:80\", max_conns: 1000001}\n" + routes1, `6: pools[0].backends[1].max_conns: must be between 0 and 1000000, got 1000001`, 0},
		{"backend max conns string", "pools:\n  - name: shop\n    backends:\n      - address: \"10.0.0.1:80\"\n        max_conns: lots\n" + routes1, `5: pools[0].backends[0].max_conns: must be an integer, got string "lots"`, 0},
		{"weight string", "pools:\n  - name: shop\n    backends:\n      - address: \"10.0.0.1:80\"\n        weight: heavy\n" + routes1, `5: pools[0].backends[0].weight: must be an integer, got string "heavy"`, 0},
		{"backend unknown key", "pools:\n  - name: shop\n    backends:\n      - address: \"10.0.0.1:80\"\n        wieght: 2\n" + routes1, `5: pools[0].backends[0].wieght: unknown key, did you mean weight?`, 0},
		{"backends empty item", "pools:\n  - name: shop\n    backends: [~]\n" + routes1, `3: pools[0].backends[0]: empty list item`, 0},
		{"health type typo", "pools:\n  - name: shop\n    health: {type: htp}\n" + routes1, `3: pools[0].health.type: must be one of http, tcp, none, got "htp", did you mean http?`, 0},
		{"health path relative", "pools:\n  - name: shop\n    health:\n      path: healthz\n" + routes1, `4: pools[0].health.path: must start with /, got "healthz"`, 0},
		{"health timeout above interval", "pools:\n  - name: shop\n    health:\n      interval: 1s\n      timeout: 2s\n" + routes1, `5: pools[0].health.timeout: must not exceed health.interval (1s), got 2s`, 0},
		{"health timeout above default interval", "pools:\n  - name: shop\n    health:\n      timeout: 3s\n" + routes1, `4: pools[0].health.timeout: must not exceed health.interval (2s), got 3s`, 0},
		{"health timeout above unhealthy interval", "pools:\n  - name: shop\n    health:\n      unhealthy_interval: 500ms\n" + routes1, `3: pools[0].health.timeout: must not exceed health.unhealthy_interval (500ms), got 1s`, 0},
		{"health rise zero", "pools:\n  - name: shop\n    health:\n      rise: 0\n" + routes1, `4: pools[0].health.rise: must be between 1 and 100, got 0`, 0},
		{"health fall too big", "pools:\n  - name: shop\n    health:\n      fall: 101\n" + routes1, `4: pools[0].health.fall: must be between 1 and 100, got 101`, 0},
		{"health expect status", "pools:\n  - name: shop\n    health:\n      expect_status: 700\n" + routes1, `4: pools[0].health.expect_status: must be between 100 and 599, got 700`, 0},
		{"health tcp with path", "pools:\n  - name: shop\n    health:\n      type: tcp\n      path: /x\n" + routes1, `5: pools[0].health.path: only valid with health type http`, 0},
		{"health interval too long", "pools:\n  - name: shop\n    health: {interval: 90m}\n" + routes1, `3: pools[0].health.interval: must be at most 1h, got 1h30m0s`, 0},
		{"health is a string", "pools:\n  - name: shop\n    health: http\n" + routes1, `3: pools[0].health: must be a mapping, got string "http"`, 0},
		{"retries too many", "pools:\n  - name: shop\n    retries: 6\n" + routes1, `3: pools[0].retries: must be between 0 and 5, got 6`, 0},
		{"max conns per backend", "pools:\n  - name: shop\n    max_conns_per_backend: 2000000\n" + routes1, `3: pools[0].max_conns_per_backend: must be between 0 and 1000000, got 2000000`, 0},
		{"queue without limit", "pools:\n  - name: shop\n    queue: {max: 10}\n" + routes1, `3: pools[0].queue.max: needs max_conns_per_backend > 0`, 0},
		{"queue with a backend without limit", "pools:\n  - name: shop\n    queue: {max: 10}\n    backends: [{address: \"10.0.0.1:80\", max_conns: 2}, {address: \"10.0.0.2:80\"}]\n" + routes1, `3: pools[0].queue.max: needs max_conns_per_backend > 0 (or max_conns on every backend)`, 0},
		{"queue timeout zero", "pools:\n  - name: shop\n    queue:\n      timeout: 0s\n" + routes1, `4: pools[0].queue.timeout: must be greater than 0`, 0},
		{"slow start negative", "pools:\n  - name: shop\n    slow_start: -5s\n" + routes1, `3: pools[0].slow_start: must not be negative, got -5s`, 0},
		{"connect timeout bare", "pools:\n  - name: shop\n    connect_timeout: 2\n" + routes1, `3: pools[0].connect_timeout: duration needs a unit`, 0},
		{"passive eject zero", "pools:\n  - name: shop\n    passive: {max_fails: 3, eject_for: 0s}\n" + routes1, `3: pools[0].passive.eject_for: must be greater than 0`, 0},
		{"degrade enter empty", "pools:\n  - name: shop\n    degrade:\n      hold: 10s\n" + routes1, `3: pools[0].degrade.enter: set at least one of inflight_ratio`, 0},
		{"degrade exit above enter", "pools:\n  - name: shop\n    degrade:\n      enter: {inflight_ratio: 0.8}\n      exit: {inflight_ratio: 0.9}\n" + routes1, `5: pools[0].degrade.exit.inflight_ratio: must be lower than enter.inflight_ratio (0.8), got 0.9`, 0},
		{"degrade exit equal duration", "pools:\n  - name: shop\n    degrade:\n      enter: {p95_latency: 800ms}\n      exit: {p95_latency: 800ms}\n" + routes1, `5: pools[0].degrade.exit.p95_latency: must be lower than enter.p95_latency (800ms), got 800ms`, 0},
		{"degrade exit missing", "pools:\n  - name: shop\n    degrade:\n      enter: {queue_wait: 200ms}\n" + routes1, `3: pools[0].degrade.exit.queue_wait: required because enter.queue_wait is set`, 0},
		{"degrade exit extra", "pools:\n  - name: shop\n    degrade:\n      enter: {queue_wait: 200ms}\n      exit: {queue_wait: 20ms, error_rate: 0.1}\n" + routes1, `5: pools[0].degrade.exit.error_rate: set, but enter.error_rate is not`, 0},
		{"degrade ratio above 1", "pools:\n  - name: shop\n    degrade:\n      enter: {inflight_ratio: 1.5}\n      exit: {inflight_ratio: 0.5}\n" + routes1, `4: pools[0].degrade.enter.inflight_ratio: must be between 0 and 1, got 1.5`, 0},
		{"degrade ratio nan", "pools:\n  - name: shop\n    degrade:\n      enter: {error_rate: .nan}\n" + routes1, `4: pools[0].degrade.enter.error_rate: must be a finite number, got ".nan"`, 2},
		{"degrade ratio string", "pools:\n  - name: shop\n    degrade:\n      enter: {error_rate: \"0.5\"}\n" + routes1, `4: pools[0].degrade.enter.error_rate: must be a number, got string "0.5"`, 2},
		{"degrade window too short", "pools:\n  - name: shop\n    degrade:\n      enter: {error_rate: 0.5}\n      exit: {error_rate: 0.1}\n      window: 10ms\n" + routes1, `6: pools[0].degrade.window: must be at least 100ms, got 10ms`, 0},
		{"degrade windows zero", "pools:\n  - name: shop\n    degrade:\n      enter: {error_rate: 0.5}\n      exit: {error_rate: 0.1}\n      windows: 0\n" + routes1, `6: pools[0].degrade.windows: must be between 1 and 100, got 0`, 0},

		// routes.
		{"no routes", pools1, `1: routes: at least one route is required`, 0},
		{"route without name", pools1 + "routes:\n  - path_prefix: /\n    pool: shop\n", `3: routes[0].name: required`, 0},
		{"route path relative", pools1 + "routes:\n  - name: site\n    path_prefix: api\n    pool: shop\n", `4: routes[0].path_prefix: must start with /, got "api"`, 0},
		{"route path with query", pools1 + "routes:\n  - name: site\n    path_prefix: /a?b\n    pool: shop\n", `4: routes[0].path_prefix: must be a URL path without spaces, ? or #`, 0},
		{"route path missing", pools1 + "routes:\n  - name: site\n    pool: shop\n", `3: routes[0].path_prefix: required, e.g. /`, 0},
		{"route path typo", pools1 + "routes:\n  - name: site\n    path_prefx: /\n    pool: shop\n", `3: routes[0].path_prefix: required`, 2},
		{"unknown pool", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n  - name: b\n    path_prefix: /b\n    pool: shop\n  - name: c\n    path_prefix: /c\n    pool: shp\n", `11: routes[2].pool: unknown pool "shp", did you mean shop?`, 0},
		{"unknown pool no hint", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: backoffice\n", `5: routes[0].pool: unknown pool "backoffice"`, 0},
		{"route without pool", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n", `3: routes[0].pool: required`, 0},
		{"duplicate route name", pools1 + "routes:\n  - {name: a, path_prefix: /a, pool: shop}\n  - {name: a, path_prefix: /b, pool: shop}\n", `4: routes[1].name: duplicate route name "a", first at line 3`, 0},
		{"duplicate match", pools1 + "routes:\n  - {name: a, path_prefix: /a, pool: shop, host: Example.com}\n  - {name: b, path_prefix: /a, pool: shop, host: example.COM}\n", `4: routes[1].path_prefix: routes[0] (line 3) already matches this host and path_prefix`, 0},
		{"duplicate match ipv6 spelling", pools1 + "routes:\n  - {name: a, path_prefix: /a, pool: shop, host: \"[2001:DB8::1]\"}\n  - {name: b, path_prefix: /a, pool: shop, host: \"[2001:db8:0:0::1]\"}\n", `4: routes[1].path_prefix: routes[0] (line 3) already matches this host and path_prefix`, 0},
		{"methods lower case", pools1 + "routes:\n  - {name: a, path_prefix: /a, pool: shop, methods: [GET, post]}\n", `3: routes[0].methods[1]: methods are case-sensitive and upper-case, did you mean POST?`, 0},
		{"methods not a list", pools1 + "routes:\n  - {name: a, path_prefix: /a, pool: shop, methods: GET}\n", `3: routes[0].methods: must be a list, got string "GET"`, 0},
		{"methods duplicate", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    methods:\n      - GET\n      - GET\n", `8: routes[0].methods[1]: duplicate method GET`, 0},
		{"priority unknown", pools1 + "routes:\n  - {name: a, path_prefix: /a, pool: shop, priority: urgent}\n", `3: routes[0].priority: must be one of critical, high, normal, low, got "urgent"`, 0},
		{"priority typo", pools1 + "routes:\n  - {name: a, path_prefix: /a, pool: shop, priority: hihg}\n", `3: routes[0].priority: must be one of critical, high, normal, low, got "hihg", did you mean high?`, 0},
		{"host with port", pools1 + "routes:\n  - {name: a, path_prefix: /a, pool: shop, host: \"example.com:80\"}\n", `3: routes[0].host: must not include a port`, 0},
		{"host inner wildcard", pools1 + "routes:\n  - {name: a, path_prefix: /a, pool: shop, host: \"foo.*.com\"}\n", `3: routes[0].host: a wildcard is only allowed as a leading *. label`, 0},
		{"host bad chars", pools1 + "routes:\n  - {name: a, path_prefix: /a, pool: shop, host: \"exa mple.com\"}\n", `3: routes[0].host: invalid host "exa mple.com"`, 0},
		{"rate limit bad key", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    rate_limit:\n      key: cookie\n      rate: 1/s\n", `7: routes[0].rate_limit.key: must be "ip" or "header:NAME", got "cookie"`, 0},
		{"rate limit bad header", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    rate_limit: {key: \"header:\", rate: 1/s}\n", `6: routes[0].rate_limit.key: must be "ip" or "header:NAME"`, 0},
		{"rate limit without rate", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    rate_limit: {key: ip}\n", `6: routes[0].rate_limit.rate: required, e.g. 20/s`, 0},
		{"rate limit burst zero", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    rate_limit: {rate: 5/s, burst: 0}\n", `6: routes[0].rate_limit.burst: must be between 1 and 10000000, got 0`, 0},
		{"rate limit max keys zero", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    rate_limit: {rate: 5/s, max_keys: 0}\n", `6: routes[0].rate_limit.max_keys: must be between 1 and 10000000, got 0`, 0},
		{"allow cidr bad", pools1 + "routes:\n  - {name: a, path_prefix: /a, pool: shop, allow_cidrs: [\"10.0.0.0/8\", \"office\"]}\n", `3: routes[0].allow_cidrs[1]: invalid IP address or CIDR "office"`, 0},
		{"deny cidr zone", pools1 + "routes:\n  - {name: a, path_prefix: /a, pool: shop, deny_cidrs: [\"fe80::1%eth0\"]}\n", `3: routes[0].deny_cidrs[0]: invalid IP address or CIDR`, 0},
		{"action unknown", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    on_degraded: {action: explode}\n", `6: routes[0].on_degraded.action: must be one of stale, static, shed, capture, got "explode"`, 0},
		{"action missing", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    on_degraded: {status: 503}\n", `6: routes[0].on_degraded.action: required: one of stale, static, shed, capture`, 2},
		{"shed status 500", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    on_degraded:\n      action: shed\n      status: 500\n", `8: routes[0].on_degraded.status: must be 503 or 429, got 500`, 0},
		{"shed retry after fraction", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    on_degraded:\n      action: shed\n      retry_after: 1500ms\n", `8: routes[0].on_degraded.retry_after: must be whole seconds`, 0},
		{"shed with file", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    on_degraded:\n      action: shed\n      file: /x.html\n", `8: routes[0].on_degraded.file: only valid with action static`, 0},
		{"static without file", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    on_degraded:\n      action: static\n", `6: routes[0].on_degraded.file: required`, 0},
		{"static with status", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    on_degraded: {action: static, file: /x.html, status: 503}\n", `6: routes[0].on_degraded.status: only valid with action shed`, 0},
		{"capture GET", "capture: {dir: /j}\n" + pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    on_degraded:\n      action: capture\n      methods: [POST, GET]\n", `9: routes[0].on_degraded.methods[1]: GET cannot be captured`, 0},
		{"capture empty methods", "capture: {dir: /j}\n" + pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    on_degraded:\n      action: capture\n      methods: []\n", `9: routes[0].on_degraded.methods: list at least one method`, 0},
		{"capture without capture section", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    on_degraded:\n      action: capture\n", `7: capture.dir: required because routes[0] uses on_degraded action capture`, 0},
		{"capture when unknown", "capture: {dir: /j}\n" + pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    on_degraded:\n      action: capture\n      when: refuse\n", `9: routes[0].on_degraded.when: must be one of refused, degraded, got "refuse", did you mean refused?`, 0},
		{"max_wait with shed", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    on_degraded: {action: shed, max_wait: 100ms}\n", `6: routes[0].on_degraded.max_wait: only valid with action capture`, 0},
		{"max_wait too long", pools1 + "capture: {dir: /tmp/j}\nroutes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    on_degraded: {action: capture, max_wait: 2m}\n", `7: routes[0].on_degraded.max_wait: must be at most 1m, got 2m0s`, 0},
		{"max_wait negative", pools1 + "capture: {dir: /tmp/j}\nroutes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    on_degraded: {action: capture, max_wait: -1s}\n", `7: routes[0].on_degraded.max_wait: must not be negative`, 0},
		{"when with shed", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    on_degraded: {action: shed, when: degraded}\n", `6: routes[0].on_degraded.when: only valid with action capture`, 0},
		{"methods with shed", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    on_degraded: {action: shed, methods: [POST]}\n", `6: routes[0].on_degraded.methods: only valid with action capture`, 0},
		{"stale without cache", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    on_degraded:\n      action: stale\n", `7: routes[0].on_degraded.action: stale needs cache.enabled on this route`, 0},
		{"stale with max_stale 0", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    cache: {enabled: true, max_stale: 0s}\n    on_degraded:\n      action: stale\n", `8: routes[0].on_degraded.action: stale needs cache.max_stale > 0`, 0},
		{"cache without budget", "cache: {max_bytes: 0}\n" + pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    cache:\n      enabled: true\n", `8: routes[0].cache.enabled: needs cache.max_bytes > 0`, 0},
		{"cache object above budget", "cache: {max_bytes: 1MB}\n" + pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    cache:\n      enabled: true\n", `7: routes[0].cache.max_object_bytes: must not exceed cache.max_bytes (1048576 bytes), got 8388608 bytes`, 0},
		{"cache enabled string", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    cache: {enabled: \"true\"}\n", `6: routes[0].cache.enabled: must be true or false, got string "true"`, 0},
		{"cache ttl too long", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    cache: {enabled: true, ttl: 1000h}\n", `6: routes[0].cache.ttl: must be at most 720h, got 1000h0m0s`, 0},
		{"route timeouts empty", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    timeouts: {}\n", `6: routes[0].timeouts.response_timeout: required when the route has a timeouts section`, 0},
		{"route timeouts unknown key", pools1 + "routes:\n  - name: a\n    path_prefix: /a\n    pool: shop\n    timeouts: {connect_timeout: 1s, response_timeout: 5s}\n", `6: routes[0].timeouts.connect_timeout: unknown key`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			es := parseErrs(t, tt.yaml)
			got := strings.TrimPrefix(es[0].Error(), "t.yaml:")
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("first error\n got: %s\nwant: %s...\nall:\n%v", got, tt.want, es)
			}
			if n := max(tt.n, 1); len(es) != n {
				t.Errorf("got %d errors, want %d:\n%v", len(es), n, es)
			}
		})
	}
}

func TestParseFileLevelErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"empty", "", "t.yaml:1: config file is empty"},
		{"whitespace", "  \n\t\n  ", "t.yaml:1: config file is empty"},
		{"comments only", "# nothing here\n# at all\n", "t.yaml:1: config file is empty"},
		{"null document", "---\n~\n", "t.yaml:1: config file is empty"},
		{"two documents", pools1 + routes1 + "---\n" + pools1 + routes1, "t.yaml:3: more than one YAML document (---); a config file holds exactly one"},
		{"trailing separator", pools1 + routes1 + "---\n", "t.yaml:3: more than one YAML document"},
		{"too large", strings.Repeat("#", MaxFileSize+1), "t.yaml:1: config file too large: 1048577 bytes, the limit is 1048576"},
		{"scalar", "hello", "t.yaml:1: the top level must be a mapping of keys such as listen: and pools:, got string \"hello\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			es := parseErrs(t, tt.yaml)
			if len(es) != 1 || !strings.HasPrefix(es[0].Error(), tt.want) {
				t.Errorf("got\n%v\nwant one error starting %q", es, tt.want)
			}
		})
	}
}

func TestParseReportsEveryProblemInLineOrder(t *testing.T) {
	y := `listen: ":0"
pools:
  - name: shop
    backends:
      - {address: "10.0.0.1:8080", weight: 5000}
    health: {timeout: 5s, rise: 0}
routes:
  - name: site
    path_prefx: /
    pool: shp
timeouts:
  client_body: 5
`
	es := parseErrs(t, y)
	want := []string{
		`t.yaml:1: listen: port must be a number between 1 and 65535, got "0"`,
		`t.yaml:5: pools[0].backends[0].weight: must be between 0 and 1000, got 5000`,
		`t.yaml:6: pools[0].health.timeout: must not exceed health.interval (2s), got 5s`,
		`t.yaml:6: pools[0].health.rise: must be between 1 and 100, got 0`,
		`t.yaml:8: routes[0].path_prefix: required, e.g. /`,
		`t.yaml:9: routes[0].path_prefx: unknown key, did you mean path_prefix?`,
		`t.yaml:10: routes[0].pool: unknown pool "shp", did you mean shop?`,
		`t.yaml:12: timeouts.client_body: duration needs a unit, e.g. 800ms or 30s, got 5`,
	}
	if got := es.Error(); got != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
}

func TestErrorsCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString(routes1 + "pools:\n  - name: shop\n    backends:\n")
	for i := range 150 {
		b.WriteString("      - {address: \"10.0.0.1:" + strconv.Itoa(1000+i) + "\", weight: 9999}\n")
	}
	es := parseErrs(t, b.String())
	if len(es) != maxErrors+1 {
		t.Fatalf("got %d errors, want %d", len(es), maxErrors+1)
	}
	if last := es[maxErrors]; last.Msg != "and 50 more problems" || last.Line != 5+maxErrors {
		t.Errorf("last error = %q", last)
	}
}

func TestErrorFormat(t *testing.T) {
	e := &Error{Path: "floodgate.yaml", Line: 14, Field: "pools[1].backends[0].weight", Msg: "must be between 0 and 1000, got 5000"}
	if got, want := e.Error(), "floodgate.yaml:14: pools[1].backends[0].weight: must be between 0 and 1000, got 5000"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	e = &Error{Path: "f.yaml", Line: 2, Msg: "invalid YAML: x"}
	if got, want := e.Error(), "f.yaml:2: invalid YAML: x"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	es := Errors{e, e}
	if got, want := es.Error(), "f.yaml:2: invalid YAML: x\nf.yaml:2: invalid YAML: x"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	var target *Error
	if !errors.As(error(es), &target) || target != e {
		t.Errorf("errors.As did not reach the *Error")
	}
}

// TestDefaults pins every default of docs/configuration.md on a minimal file.
func TestDefaults(t *testing.T) {
	c := mustParse(t, `pools:
  - name: shop
    backends:
      - address: "10.0.0.1:8080"
      - {address: "10.0.0.2:8080", weight: 0}
  - name: api
    health: {}
    degrade:
      enter: {p95_latency: 1s}
      exit: {p95_latency: 500ms}
capture: {dir: /var/lib/floodgate/journal}
tls:
  certificates: [{cert_file: a.crt, key_file: a.key}]
access_log: {path: stderr}
routes:
  - {name: site, path_prefix: /, pool: shop, host: "*.Example.COM"}
  - name: api
    path_prefix: /api/
    pool: api
    cache: {enabled: true}
    rate_limit: {rate: 90/m}
    timeouts: {response_timeout: 5s}
    on_degraded: {action: shed}
  - name: order
    path_prefix: /order
    pool: api
    on_degraded: {action: capture}
`)
	s := time.Second
	want := &Config{
		Listen:    ":8080",
		Timeouts:  Timeouts{ClientHeader: 10 * s, ClientBody: 60 * s, ClientIdle: 60 * s, ShutdownGrace: 30 * s},
		Limits:    Limits{MaxRequestBody: 64 << 20, MaxHeaderBytes: 16 << 10, MaxHeaderFields: 100, MaxConns: 10000, MaxConnsPerIP: 0},
		TLS:       &TLS{Listen: ":8443", Certificates: []Certificate{{CertFile: "a.crt", KeyFile: "a.key"}}},
		Admin:     Admin{Listen: "127.0.0.1:9090", DrainTimeout: 30 * s},
		AccessLog: &AccessLog{Path: "stderr"},
		Cache:     Cache{MaxBytes: 256 << 20},
		Capture:   &Capture{Dir: "/var/lib/floodgate/journal", ReplayRate: Rate{Events: 50, Per: s}, ReplayConcurrency: 8},
		Pools: []Pool{
			{
				Name:            "shop",
				Backends:        []Backend{{Address: "10.0.0.1:8080", Weight: 1}, {Address: "10.0.0.2:8080", Weight: 0}},
				Health:          Health{Type: HealthNone, Interval: 2 * s, UnhealthyInterval: 2 * s, Timeout: s, Rise: 2, Fall: 3},
				Queue:           Queue{Timeout: s},
				ConnectTimeout:  2 * s,
				ResponseTimeout: 30 * s,
				Retries:         1,
				Passive:         Passive{MaxFails: 5, EjectFor: 10 * s, MaxEjectionPercent: 50},
			},
			{
				Name:            "api",
				Health:          Health{Type: HealthHTTP, Path: "/healthz", Interval: 2 * s, UnhealthyInterval: 2 * s, Timeout: s, Rise: 2, Fall: 3},
				Queue:           Queue{Timeout: s},
				ConnectTimeout:  2 * s,
				ResponseTimeout: 30 * s,
				Retries:         1,
				Passive:         Passive{MaxFails: 5, EjectFor: 10 * s, MaxEjectionPercent: 50},
				Degrade: &Degrade{
					Enter: Thresholds{P95Latency: s}, Exit: Thresholds{P95Latency: s / 2},
					Hold: 30 * s, Window: 2 * s, Windows: 2,
				},
			},
		},
		Routes: []Route{
			{Name: "site", Host: "*.example.com", PathPrefix: "/", Pool: "shop", Priority: PriorityNormal},
			{
				Name: "api", PathPrefix: "/api/", Pool: "api", Priority: PriorityNormal,
				Cache:      &RouteCache{Enabled: true, MaxStale: time.Hour, MaxObjectBytes: 8 << 20},
				RateLimit:  &RateLimit{Key: "ip", Rate: Rate{Events: 90, Per: time.Minute}, Burst: 2, MaxKeys: 100000},
				Timeouts:   &RouteTimeouts{ResponseTimeout: 5 * s},
				OnDegraded: &OnDegraded{Action: ActionShed, Status: 503, RetryAfter: 30 * s},
			},
			{
				Name: "order", PathPrefix: "/order", Pool: "api", Priority: PriorityNormal,
				OnDegraded: &OnDegraded{Action: ActionCapture, Methods: []string{"POST"}, When: "refused"},
			},
		},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults differ\n got: %+v\nwant: %+v", c, want)
		for i := range min(len(c.Pools), len(want.Pools)) {
			if !reflect.DeepEqual(c.Pools[i], want.Pools[i]) {
				t.Errorf("pools[%d]\n got: %+v\nwant: %+v", i, c.Pools[i], want.Pools[i])
			}
		}
		for i := range min(len(c.Routes), len(want.Routes)) {
			if !reflect.DeepEqual(c.Routes[i], want.Routes[i]) {
				t.Errorf("routes[%d]\n got: %+v\nwant: %+v", i, c.Routes[i], want.Routes[i])
			}
		}
	}
}

// TestArchitectureExample parses the reference config of the original design (with the
// backoffice pool it routes to) and checks what it sets and what it defaults.
func TestArchitectureExample(t *testing.T) {
	c, err := Load("testdata/architecture.yaml")
	if err != nil {
		t.Fatal(err)
	}
	shop := c.Pool("shop")
	if shop == nil || c.Pool("backoffice") == nil || c.Pool("nope") != nil {
		t.Fatalf("Pool lookup wrong: %v", c.Pools)
	}
	if got := shop.Backends; !reflect.DeepEqual(got, []Backend{{Address: "10.0.0.1:8080", Weight: 60}, {Address: "10.0.0.2:8080", Weight: 40}}) {
		t.Errorf("shop backends = %v", got)
	}
	if h := shop.Health; h != (Health{Type: HealthHTTP, Path: "/healthz", Interval: time.Second, UnhealthyInterval: time.Second, Timeout: 500 * time.Millisecond, Rise: 2, Fall: 2}) {
		t.Errorf("shop health = %+v", h)
	}
	if q := shop.Queue; q != (Queue{Max: 1000, Timeout: 800 * time.Millisecond}) {
		t.Errorf("shop queue = %+v", q)
	}
	if g := shop.Degrade; g == nil || g.Enter.InflightRatio != 0.9 || g.Exit.ErrorRate != 0.05 || g.Exit.QueueWait != 20*time.Millisecond || g.Hold != 30*time.Second || g.Windows != 2 {
		t.Errorf("shop degrade = %+v", g)
	}
	if c.TLS == nil || c.TLS.Listen != ":8443" || c.TLS.Certificates[0].KeyFile != "site.key" {
		t.Errorf("tls = %+v", c.TLS)
	}
	if c.Admin.TokenFile != "admin.token" || c.Admin.StateFile != "floodgate-state.json" {
		t.Errorf("admin = %+v", c.Admin)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}; !reflect.DeepEqual(c.TrustedProxies, want) {
		t.Errorf("trusted_proxies = %v", c.TrustedProxies)
	}
	if c.Capture.ReplayRate.PerSecond() != 50 || c.Capture.ReplayConcurrency != 8 || c.Cache.MaxBytes != 256<<20 || c.AccessLog.Path != "stdout" {
		t.Errorf("capture/cache/access_log = %+v %+v %+v", c.Capture, c.Cache, c.AccessLog)
	}
	names := []string{}
	for _, r := range c.Routes {
		names = append(names, r.Name)
	}
	if strings.Join(names, ",") != "static,search,checkout,backoffice,site" {
		t.Errorf("routes = %v", names)
	}
	search := c.Routes[1]
	if search.Priority != PriorityLow || search.RateLimit.Burst != 40 || search.RateLimit.Rate != (Rate{20, time.Second}) || search.OnDegraded.Status != 503 {
		t.Errorf("search = %+v %+v %+v", search, search.RateLimit, search.OnDegraded)
	}
	if co := c.Routes[2].OnDegraded; co.Action != ActionCapture || !reflect.DeepEqual(co.Methods, []string{"POST"}) {
		t.Errorf("checkout on_degraded = %+v", co)
	}
	if bo := c.Routes[3]; bo.Priority != PriorityCritical || bo.AllowCIDRs[0] != netip.MustParsePrefix("10.0.0.0/8") {
		t.Errorf("backoffice = %+v", bo)
	}
	if st := c.Routes[0].Cache; st.MaxStale != 10*time.Minute || st.MaxObjectBytes != 8<<20 {
		t.Errorf("static cache = %+v", st)
	}
}

func TestWeightOmittedVersusZero(t *testing.T) {
	c := mustParse(t, "pools:\n  - name: shop\n    backends:\n      - address: \"a:1\"\n      - {address: \"b:1\", weight: 0}\n      - {address: \"c:1\", weight: ~}\n"+routes1)
	got := []int{c.Pools[0].Backends[0].Weight, c.Pools[0].Backends[1].Weight, c.Pools[0].Backends[2].Weight}
	if !reflect.DeepEqual(got, []int{1, 0, 1}) {
		t.Errorf("weights = %v, want [1 0 1] (omitted, explicit 0 = draining, null = omitted)", got)
	}
}

func TestValidValues(t *testing.T) {
	tests := []struct {
		name, yaml string
		check      func(*Config) bool
	}{
		{"ipv6 listen", "listen: \"[::]:80\"\n" + pools1 + routes1, func(c *Config) bool { return c.Listen == "[::]:80" }},
		{"named listen", "listen: \"proxy.internal:80\"\n" + pools1 + routes1, func(c *Config) bool { return true }},
		{"admin localhost", "admin: {listen: \"localhost:9090\"}\n" + pools1 + routes1, func(c *Config) bool { return c.Admin.TokenFile == "" }},
		{"admin ipv6 loopback", "admin: {listen: \"[::1]:9090\"}\n" + pools1 + routes1, func(c *Config) bool { return true }},
		{"admin public with token", "admin: {listen: \":9090\", token_file: /etc/t}\n" + pools1 + routes1, func(c *Config) bool { return c.Admin.Listen == ":9090" }},
		{"sizes", "limits: {max_request_body: 3GiB, max_header_bytes: 32 KB}\ncache: {max_bytes: 1048576}\n" + pools1 + routes1, func(c *Config) bool {
			return c.Limits.MaxRequestBody == 3<<30 && c.Limits.MaxHeaderBytes == 32<<10 && c.Cache.MaxBytes == 1<<20
		}},
		{"size hex and underscores", "limits: {max_header_bytes: 0x1000}\ncache: {max_bytes: 1_048_576}\n" + pools1 + routes1, func(c *Config) bool {
			return c.Limits.MaxHeaderBytes == 4096 && c.Cache.MaxBytes == 1<<20
		}},
		{"size lower case unit", "limits: {max_request_body: 10mb}\n" + pools1 + routes1, func(c *Config) bool { return c.Limits.MaxRequestBody == 10<<20 }},
		{"backends' own max_conns", "pools: [{name: shop, max_conns_per_backend: 5, backends: [{address: \"10.0.0.1:80\", max_conns: 1}, {address: \"10.0.0.2:80\"}]}]\n" + routes1, func(c *Config) bool {
			return c.Pools[0].Backends[0].MaxConns == 1 && c.Pools[0].Backends[1].MaxConns == 0
		}},
		{"queue with max_conns on every backend", "pools: [{name: shop, queue: {max: 10}, backends: [{address: \"10.0.0.1:80\", max_conns: 1}, {address: \"10.0.0.2:80\", max_conns: 3}]}]\n" + routes1, func(c *Config) bool {
			return c.Pools[0].Queue.Max == 10 && c.Pools[0].MaxConnsPerBackend == 0
		}},
		{"zero duration without unit", "pools: [{name: shop, slow_start: 0}]\n" + routes1, func(c *Config) bool { return c.Pools[0].SlowStart == 0 }},
		{"bare ip cidrs", "trusted_proxies: [192.0.2.7, \"2001:db8::1\", \"2001:db8::/32\"]\n" + pools1 + routes1, func(c *Config) bool {
			return c.TrustedProxies[0] == netip.MustParsePrefix("192.0.2.7/32") && c.TrustedProxies[1] == netip.MustParsePrefix("2001:db8::1/128") && c.TrustedProxies[2].Bits() == 32
		}},
		{"header rate limit", pools1 + "routes: [{name: a, path_prefix: /, pool: shop, rate_limit: {key: \"header:X-Api-Key\", rate: 0.5/s}}]\n", func(c *Config) bool {
			rl := c.Routes[0].RateLimit
			return rl.Key == "header:X-Api-Key" && rl.Burst == 1 && rl.Rate.PerSecond() == 0.5
		}},
		{"rate per hour", pools1 + "routes: [{name: a, path_prefix: /, pool: shop, rate_limit: {rate: 3600/h}}]\n", func(c *Config) bool {
			return c.Routes[0].RateLimit.Rate.PerSecond() == 1 && c.Routes[0].RateLimit.Burst == 1
		}},
		{"health tcp", "pools: [{name: shop, health: {type: tcp}}]\n" + routes1, func(c *Config) bool { return c.Pools[0].Health.Path == "" }},
		{"unhealthy interval explicit", "pools: [{name: shop, health: {interval: 5s, unhealthy_interval: 30s}}]\n" + routes1, func(c *Config) bool {
			return c.Pools[0].Health.UnhealthyInterval == 30*time.Second
		}},
		{"unhealthy interval follows interval", "pools: [{name: shop, health: {interval: 5s}}]\n" + routes1, func(c *Config) bool {
			return c.Pools[0].Health.UnhealthyInterval == 5*time.Second
		}},
		{"shed 429", pools1 + "routes: [{name: a, path_prefix: /, pool: shop, on_degraded: {action: shed, status: 429, retry_after: 0s}}]\n", func(c *Config) bool {
			return c.Routes[0].OnDegraded.Status == 429 && c.Routes[0].OnDegraded.RetryAfter == 0
		}},
		{"static", pools1 + "routes: [{name: a, path_prefix: /, pool: shop, on_degraded: {action: static, file: /srv/busy.html}}]\n", func(c *Config) bool {
			return c.Routes[0].OnDegraded.File == "/srv/busy.html" && c.Routes[0].OnDegraded.Status == 0
		}},
		{"same prefix different hosts", pools1 + "routes: [{name: a, path_prefix: /, pool: shop, host: a.example}, {name: b, path_prefix: /, pool: shop, host: b.example}, {name: c, path_prefix: /, pool: shop}]\n", func(c *Config) bool { return len(c.Routes) == 3 }},
		{"replay concurrency bounds", "capture: {dir: /j, replay_concurrency: 1}\n" + pools1 + routes1, func(c *Config) bool { return c.Capture.ReplayConcurrency == 1 }},
		{"replay concurrency max", "capture: {dir: /j, replay_concurrency: 256}\n" + pools1 + routes1, func(c *Config) bool { return c.Capture.ReplayConcurrency == 256 }},
		{"replay concurrency default", "capture: {dir: /j}\n" + pools1 + routes1, func(c *Config) bool { return c.Capture.ReplayConcurrency == 8 }},
		{"pool with no backends", "pools: [{name: shop}]\n" + routes1, func(c *Config) bool { return c.Pools[0].Backends == nil }},
		{"empty sections", "tls:\nadmin:\naccess_log:\ncapture:\n" + pools1 + routes1, func(c *Config) bool {
			return c.TLS == nil && c.AccessLog == nil && c.Capture == nil && c.Admin.Listen == "127.0.0.1:9090"
		}},
		{"numbers as strings where a string is expected", "pools: [{name: 2024}]\nroutes: [{name: 1, path_prefix: /, pool: 2024}]\n", func(c *Config) bool {
			return c.Pools[0].Name == "2024" && c.Routes[0].Name == "1"
		}},
		{"explicit document markers", "---\n" + pools1 + routes1 + "...\n", func(c *Config) bool { return true }},
		{"ipv6 route host", pools1 + "routes: [{name: a, path_prefix: /, pool: shop, host: \"[2001:DB8::1]\"}]\n", func(c *Config) bool { return c.Routes[0].Host == "[2001:db8::1]" }},
		{"ipv6 backend", "pools: [{name: shop, backends: [{address: \"[2001:db8::1]:80\"}]}]\n" + routes1, func(c *Config) bool { return true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if c := mustParse(t, tt.yaml); !tt.check(c) {
				t.Errorf("unexpected value: %+v", c)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	_, err := Load(missing)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("Load(missing) = %v, want a not-exist error naming the path", err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Errorf("Load(dir) = %v, want an error naming the path", err)
	}

	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte(strings.Repeat("#", 3*MaxFileSize)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(big)
	if err == nil || !strings.HasPrefix(err.Error(), big+":1: config file too large") {
		t.Errorf("Load(big) = %v", err)
	}

	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(pools1+routes1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(good); err != nil {
		t.Errorf("Load(good) = %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(pools1+routes1+"x: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || err.Error() != bad+":3: x: unknown key" {
		t.Errorf("Load(bad) = %v", err)
	}
}

func TestAliasBomb(t *testing.T) {
	// The billion laughs: nine levels of ten aliases each.
	y := `a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
trusted_proxies: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
`
	es := parseErrs(t, y)
	found := false
	for _, e := range es {
		if e.Field == "trusted_proxies" && strings.Contains(e.Msg, "anchors") {
			found = true
		}
	}
	if !found {
		t.Errorf("no anchor error on trusted_proxies:\n%v", es)
	}
}

func TestRatePerSecond(t *testing.T) {
	for _, tt := range []struct {
		r    Rate
		want float64
	}{
		{Rate{}, 0},
		{Rate{Events: 50, Per: time.Second}, 50},
		{Rate{Events: 120, Per: time.Minute}, 2},
		{Rate{Events: 1800, Per: time.Hour}, 0.5},
	} {
		if got := tt.r.PerSecond(); got != tt.want {
			t.Errorf("%+v.PerSecond() = %v, want %v", tt.r, got, tt.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"1", 1, true}, {"10B", 10, true}, {"1KB", 1024, true}, {"1 KiB", 1024, true},
		{"64MB", 64 << 20, true}, {"2MiB", 2 << 20, true}, {"1GB", 1 << 30, true}, {"8gib", 8 << 30, true},
		{"8589934591GB", 8589934591 << 30, true}, {"8589934592GB", 0, false},
		{"", 0, false}, {"MB", 0, false}, {"-1", 0, false}, {"1.5MB", 0, false}, {"1TB", 0, false},
		{"1e6", 0, false}, {"+", 0, false}, {"1 M B", 0, false}, {"9223372036854775808", 0, false},
	} {
		got, err := parseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"listen", "path_prefix", "pool", "priority", "max_conns_per_backend"}
	for in, want := range map[string]string{
		"path_prefx": "path_prefix", "pathPrefix": "path_prefix", "PATH-PREFIX": "path_prefix",
		"pol": "pool", "lisen": "listen", "maxConnsPerBackend": "max_conns_per_backend",
		"xyz": "", "colour": "", "": "", "prioirty": "priority", "lsiten": "listen",
	} {
		if got := suggest(in, keys); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}
