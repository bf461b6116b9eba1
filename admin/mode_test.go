package admin

import (
	"strings"
	"testing"

	"github.com/floodgate/floodgate/degrade/capture"
)

func TestModeEndpoints(t *testing.T) {
	s := newStack(t, stackOptions{backends: []string{"10.0.0.1:80"}})
	m := s.expect("GET", "/api/v1/pools/shop/mode", "", 200)
	if m["pool"] != "shop" || m["mode"] != "normal" || m["override"] != "auto" || m["auto"] != "normal" || m["level"] != "normal" || m["transitions"] != 0.0 {
		t.Fatalf("%v", m)
	}
	if _, ok := m["signals"].(map[string]any)["inflight_ratio"]; !ok {
		t.Fatalf("no signals: %v", m)
	}
	m = s.expect("PUT", "/api/v1/pools/shop/mode", `{"mode": "degraded"}`, 200)
	if m["mode"] != "degraded" || m["override"] != "degraded" || m["reason"] != "admin override: degraded" || m["since"] == nil || m["transitions"] != 1.0 {
		t.Fatalf("degraded: %v", m)
	}
	if st, _ := s.mon.Status("shop"); st.Mode.String() != "degraded" {
		t.Fatalf("monitor: %+v", st)
	}
	// Idempotent: the same override again changes nothing.
	if m = s.expect("PUT", "/api/v1/pools/shop/mode", `{"mode": "degraded"}`, 200); m["transitions"] != 1.0 {
		t.Fatalf("repeated override: %v", m)
	}
	m = s.expect("PUT", "/api/v1/pools/shop/mode", `{"mode": "normal"}`, 200)
	if m["mode"] != "normal" || m["override"] != "normal" {
		t.Fatalf("normal: %v", m)
	}
	m = s.expect("PUT", "/api/v1/pools/shop/mode", `{"mode": "auto"}`, 200)
	if m["mode"] != "normal" || m["override"] != "auto" {
		t.Fatalf("auto: %v", m)
	}
	if !strings.Contains(s.log.String(), `msg="admin: pool mode override" pool=shop mode=degraded`) {
		t.Fatalf("override not logged:\n%s", s.log.String())
	}

	for _, tt := range []struct {
		name, method, path, body string
		want                     int
	}{
		{"unknown mode", "PUT", "/api/v1/pools/shop/mode", `{"mode": "off"}`, 400},
		{"no mode", "PUT", "/api/v1/pools/shop/mode", `{}`, 400},
		{"unknown field", "PUT", "/api/v1/pools/shop/mode", `{"mode": "auto", "until": "never"}`, 400},
		{"no body", "PUT", "/api/v1/pools/shop/mode", ``, 400},
		{"unknown pool", "PUT", "/api/v1/pools/nope/mode", `{"mode": "auto"}`, 404},
		{"unknown pool get", "GET", "/api/v1/pools/nope/mode", ``, 404},
		{"wrong method", "POST", "/api/v1/pools/shop/mode", `{"mode": "auto"}`, 405},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s.t = t
			s.expect(tt.method, tt.path, tt.body, tt.want)
		})
	}
	s.t = t
	if st, _ := s.mon.Status("shop"); st.Override.String() != "auto" {
		t.Fatalf("a refused request changed the override: %+v", st)
	}
}

func TestCaptureEndpoints(t *testing.T) {
	s := newStack(t, stackOptions{backends: []string{"10.0.0.1:80"}})
	appendOne := func(target string, body string) string {
		id, _, err := s.journal.Append(&capture.Record{Pool: "shop", Route: "checkout", Method: "POST", Target: target,
			Header: []byte("Content-Type: application/json\r\n"), Body: []byte(body), Client: "192.0.2.7:5151", IdemKey: target})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	first := appendOne("/checkout/1", `{"sku": 1}`)
	second := appendOne("/checkout/2", "\xff\xfe")
	dead := appendOne("/checkout/3", `{"sku": 3}`)
	if err := s.journal.MarkDead(dead, "backend answered 422"); err != nil {
		t.Fatal(err)
	}

	m := s.expect("GET", "/api/v1/captures", "", 200)
	if m["pending"] != 2.0 || m["backlog_by_pool"].(map[string]any)["shop"] != 2.0 || m["captured"] != 3.0 {
		t.Fatalf("%v", m)
	}
	dl := m["dead_letters"].([]any)
	if len(dl) != 1 || dl[0].(map[string]any)["id"] != dead || dl[0].(map[string]any)["reason"] != "backend answered 422" {
		t.Fatalf("dead letters: %v", dl)
	}

	m = s.expect("GET", "/api/v1/pools/shop/captures?limit=1", "", 200)
	recs := m["records"].([]any)
	if m["backlog"] != 2.0 || len(recs) != 1 || recs[0].(map[string]any)["id"] != first || recs[0].(map[string]any)["body"] != nil {
		t.Fatalf("pending: %v", m)
	}
	m = s.expect("GET", "/api/v1/captures/"+first, "", 200)
	if m["status"] != "pending" || m["target"] != "/checkout/1" || m["body"] != `{"sku": 1}` || m["client"] != "192.0.2.7:5151" ||
		m["header"] != "Content-Type: application/json\r\n" || m["idempotency_key"] != "/checkout/1" {
		t.Fatalf("record: %v", m)
	}
	if m = s.expect("GET", "/api/v1/captures/"+second, "", 200); m["body_base64"] != "//4=" || m["body"] != nil {
		t.Fatalf("binary body: %v", m)
	}

	// Retry and discard apply to dead letters only.
	s.expect("POST", "/api/v1/captures/"+first+"/retry", "", 409)
	s.expect("DELETE", "/api/v1/captures/"+first, "", 409)
	if m = s.expect("POST", "/api/v1/captures/"+dead+"/retry", "", 200); m["status"] != "pending" {
		t.Fatalf("retry: %v", m)
	}
	if err := s.journal.MarkDead(dead, "backend answered 422 again"); err != nil {
		t.Fatal(err)
	}
	if m = s.expect("DELETE", "/api/v1/captures/"+dead, "", 200); m["status"] != "discarded" {
		t.Fatalf("discard: %v", m)
	}
	if _, st, _ := s.journal.Get(dead); st != capture.StatusDiscarded {
		t.Fatalf("journal says %v", st)
	}

	// Pause and resume replay.
	if m = s.expect("GET", "/api/v1/pools/shop/replay", "", 200); m["paused"] != false || m["backlog"] != 2.0 {
		t.Fatalf("replay: %v", m)
	}
	if m = s.expect("PUT", "/api/v1/pools/shop/replay", `{"paused": true}`, 200); m["paused"] != true || !s.journal.ReplayPaused("shop") {
		t.Fatalf("pause: %v", m)
	}
	if m = s.expect("PUT", "/api/v1/pools/shop/replay", `{"paused": false}`, 200); m["paused"] != false || s.journal.ReplayPaused("shop") {
		t.Fatalf("resume: %v", m)
	}

	for _, tt := range []struct {
		name, method, path, body string
		want                     int
	}{
		{"unknown capture", "GET", "/api/v1/captures/0000000000000000000zz", ``, 404},
		{"retry unknown", "POST", "/api/v1/captures/nope/retry", ``, 404},
		{"discard unknown", "DELETE", "/api/v1/captures/nope", ``, 404},
		{"retry with a body", "POST", "/api/v1/captures/" + first + "/retry", `{"now": true}`, 400},
		{"pending of unknown pool", "GET", "/api/v1/pools/nope/captures", ``, 404},
		{"bad limit", "GET", "/api/v1/pools/shop/captures?limit=0", ``, 400},
		{"limit too high", "GET", "/api/v1/pools/shop/captures?limit=100000", ``, 400},
		{"replay of unknown pool", "PUT", "/api/v1/pools/nope/replay", `{"paused": true}`, 404},
		{"replay without paused", "PUT", "/api/v1/pools/shop/replay", `{}`, 400},
		{"replay wrong type", "PUT", "/api/v1/pools/shop/replay", `{"paused": "yes"}`, 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s.t = t
			s.expect(tt.method, tt.path, tt.body, tt.want)
		})
	}
}
