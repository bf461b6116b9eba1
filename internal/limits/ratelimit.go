package limits

import (
	"math"
	"strconv"

	"github.com/floodgate/floodgate/internal/field"
	"github.com/floodgate/floodgate/internal/httpwire"
)

// A route's rate limit: the one rule, which conf checks the file's rate_limit
// sections with and the proxy applies when it builds a generation. It lives
// here rather than in proxy because conf must not import proxy.
const (
	// MaxRate bounds the rate, in requests per second.
	MaxRate = 1_000_000
	// MaxBurst bounds the burst.
	MaxBurst = 10_000_000
	// MaxKeys bounds the keys (client addresses or header values) tracked
	// per route: the table's memory.
	MaxKeys = 10_000_000
	// DefaultMaxKeys is the keys tracked when none is set.
	DefaultMaxKeys = 100_000
	// MaxHeaderName bounds the name of the header a limit is keyed on.
	MaxHeaderName = 64
)

// DefaultBurst is the burst of a rate limit that sets none: one second's worth
// of requests, at least 1.
func DefaultBurst(rate float64) int {
	return int(max(1, min(math.Ceil(rate), MaxBurst)))
}

// CheckRateLimit returns every problem with a rate limit whose defaults are
// filled in: header is "" for a limit per client address, else the name of
// the header whose value is the key. Each problem's Key is its key in a
// route's rate_limit section.
func CheckRateLimit(header string, rate float64, burst, maxKeys int) []field.Problem {
	var ps []field.Problem
	if header != "" && (len(header) > MaxHeaderName || !httpwire.IsToken(header)) {
		ps = append(ps, field.Errorf("key", "header name %s is not a field name of at most %d characters", strconv.Quote(header), MaxHeaderName))
	}
	switch {
	case !(rate > 0) || math.IsInf(rate, 0):
		ps = append(ps, field.Errorf("rate", "required, e.g. 20/s"))
	case rate > MaxRate:
		ps = append(ps, field.Errorf("rate", "must be at most %d/s, got %s/s", MaxRate, strconv.FormatFloat(rate, 'g', -1, 64)))
	}
	if burst < 1 || burst > MaxBurst {
		ps = append(ps, field.Errorf("burst", "must be between 1 and %d, got %d", MaxBurst, burst))
	}
	if maxKeys < 1 || maxKeys > MaxKeys {
		ps = append(ps, field.Errorf("max_keys", "must be between 1 and %d, got %d", MaxKeys, maxKeys))
	}
	return ps
}
