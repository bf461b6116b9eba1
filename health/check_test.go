package health

import (
	"strings"
	"testing"
	"time"
)

func TestCheckValidate(t *testing.T) {
	ok := Check{Type: TypeHTTP, Path: "/healthz", Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 2, Fall: 2}
	with := func(f func(*Check)) Check { c := ok; f(&c); return c }
	tests := []struct {
		name    string
		check   Check
		wantErr []string // substrings, all required; nil means valid
	}{
		{"valid http", ok, nil},
		{"zero check is none", Check{}, nil},
		{"none ignores timings", Check{Type: TypeNone, Interval: -1}, nil},
		{"tcp ignores path", Check{Type: TypeTCP, Interval: time.Second, Path: "nope"}, nil},
		{"defaults spelled as zero", Check{Type: TypeHTTP, Interval: time.Second}, nil},
		{"zero timeout under a short unhealthy interval", Check{Type: TypeHTTP, Interval: time.Second, UnhealthyInterval: time.Millisecond}, nil},
		{"query in path", with(func(c *Check) { c.Path = "/healthz?deep=1" }), nil},
		{"unknown type", Check{Type: "icmp"}, []string{`type: must be one of http, tcp, none, got "icmp"`}},
		{"zero interval", with(func(c *Check) { c.Interval = 0 }), []string{"interval: must be greater than 0"}},
		{"timeout above interval", with(func(c *Check) { c.Timeout = 2 * time.Second }), []string{"timeout: must not exceed health.interval (1s), got 2s"}},
		{"timeout above unhealthy interval", with(func(c *Check) { c.UnhealthyInterval = 100 * time.Millisecond }),
			[]string{"timeout: must not exceed health.unhealthy_interval (100ms), got 500ms"}},
		{"negative durations", with(func(c *Check) { c.Timeout, c.UnhealthyInterval = -1, -1 }),
			[]string{"timeout: must not be negative", "unhealthy_interval: must not be negative"}},
		{"negative thresholds", with(func(c *Check) { c.Rise, c.Fall = -1, -2 }), []string{"rise:", "fall:"}},
		{"bounds", with(func(c *Check) { c.Interval, c.Rise, c.Fall = 2*time.Hour, 101, 101 }), []string{"interval: must be at most 1h", "rise: must be between 1 and 100", "fall: must be between 1 and 100"}},
		{"long path", with(func(c *Check) { c.Path = "/" + strings.Repeat("a", MaxPathLen) }), []string{"path: must be a URL path of at most 1024 characters"}},
		{"relative path", with(func(c *Check) { c.Path = "healthz" }), []string{"path:"}},
		{"host with space", with(func(c *Check) { c.Host = "a b" }), []string{"host:"}},
		{"expect status out of range", with(func(c *Check) { c.ExpectStatus = 42 }), []string{"expect_status:"}},
		{"all problems at once", Check{Type: TypeHTTP, Rise: -1, Path: "x", ExpectStatus: 1000},
			[]string{"interval:", "rise:", "path:", "expect_status:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.check.Validate()
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors containing %q", tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %q, want it to contain %q", err, want)
				}
			}
		})
	}
}

func TestCheckNormalizedAndEvidence(t *testing.T) {
	base := Check{Type: TypeHTTP, Interval: time.Second}
	n := base.normalized()
	want := Check{Type: TypeHTTP, Path: "/", Interval: time.Second, UnhealthyInterval: time.Second,
		Timeout: time.Second, Rise: 1, Fall: 1}
	if n != want {
		t.Fatalf("normalized() = %+v, want %+v", n, want)
	}
	if got := (Check{Type: TypeTCP, Interval: time.Second, UnhealthyInterval: 100 * time.Millisecond}).normalized().Timeout; got != 100*time.Millisecond {
		t.Errorf("zero Timeout normalized to %s, want the shorter interval", got)
	}
	if (Check{}).normalized() != (Check{Type: TypeNone}) {
		t.Errorf("zero Check does not normalize to none")
	}
	tests := []struct {
		name string
		d    Check
		same bool
	}{
		{"timings and thresholds", Check{Type: TypeHTTP, Interval: 2 * time.Second, Timeout: time.Second, Rise: 3, Fall: 5}, true},
		{"path spelled out", Check{Type: TypeHTTP, Path: "/", Interval: time.Second}, true},
		{"path", Check{Type: TypeHTTP, Path: "/other", Interval: time.Second}, false},
		{"host", Check{Type: TypeHTTP, Host: "example.com", Interval: time.Second}, false},
		{"expect status", Check{Type: TypeHTTP, ExpectStatus: 204, Interval: time.Second}, false},
		{"type", Check{Type: TypeTCP, Interval: time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := n.sameEvidence(tt.d.normalized()); got != tt.same {
				t.Errorf("sameEvidence = %v, want %v", got, tt.same)
			}
		})
	}
}
