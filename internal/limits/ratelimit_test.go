package limits

import (
	"strings"
	"testing"
)

func TestCheckRateLimit(t *testing.T) {
	if ps := CheckRateLimit("X-Api-Key", 20, DefaultBurst(20), DefaultMaxKeys); len(ps) != 0 {
		t.Fatalf("valid limit refused: %v", ps)
	}
	tests := []struct {
		header       string
		rate         float64
		burst, keys  int
		key, message string
	}{
		{"", 0, 1, 1, "rate", "required"},
		{"", MaxRate + 1, 1, 1, "rate", "must be at most 1000000/s"},
		{"", 1, 0, 1, "burst", "must be between 1 and 10000000, got 0"},
		{"", 1, 1, MaxKeys + 1, "max_keys", "must be between 1 and 10000000"},
		{"X Api", 1, 1, 1, "key", `header name "X Api"`},
		{strings.Repeat("x", MaxHeaderName+1), 1, 1, 1, "key", "at most 64 characters"},
	}
	for _, tt := range tests {
		ps := CheckRateLimit(tt.header, tt.rate, tt.burst, tt.keys)
		if len(ps) != 1 || ps[0].Key != tt.key || !strings.Contains(ps[0].Msg, tt.message) {
			t.Errorf("CheckRateLimit(%q, %v, %d, %d) = %v, want one %s problem containing %q", tt.header, tt.rate, tt.burst, tt.keys, ps, tt.key, tt.message)
		}
	}
	for rate, want := range map[float64]int{0: 1, 0.5: 1, 20: 20, 20.1: 21, 1e9: MaxBurst} {
		if got := DefaultBurst(rate); got != want {
			t.Errorf("DefaultBurst(%v) = %d, want %d", rate, got, want)
		}
	}
}
