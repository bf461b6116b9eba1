package health

import (
	"errors"
	"strings"
	"time"

	"github.com/floodgate/floodgate/internal/field"
	"github.com/floodgate/floodgate/internal/httpwire"
)

// Check types accepted in Check.Type.
const (
	TypeHTTP = "http" // GET Check.Path; up on 2xx/3xx or exactly Check.ExpectStatus
	TypeTCP  = "tcp"  // connect within Check.Timeout, then close
	TypeNone = "none" // no probing: the target is set up once and left alone
)

// maxBody bounds how much of a probe response body is read. A health endpoint
// that streams megabytes must not cost the prober more than this.
const maxBody = 4 << 10

// userAgent lets backend operators tell probes apart from client traffic in
// their access logs (and exclude them from their own metrics).
const userAgent = "floodgate-health"

// Check describes one active health check. It is a plain value: copy it freely.
//
// Zero values: Type "" means TypeNone (no active checking), Path "" means "/",
// ExpectStatus 0 accepts any 2xx or 3xx, UnhealthyInterval 0 means Interval,
// Timeout 0 means the shorter of the two intervals, and Rise or Fall 0 mean 1.
// Interval has no default: it must be > 0 for http and tcp checks, so a
// forgotten interval is an error, not a hot loop.
type Check struct {
	Type              string        // "http", "tcp" or "none"
	Path              string        // http: request path (may carry a query), e.g. /healthz
	Host              string        // http: Host header; "" sends the backend address
	ExpectStatus      int           // http: 0 = any 2xx or 3xx is up; else exactly this status
	Interval          time.Duration // time between probes while the backend is up
	UnhealthyInterval time.Duration // time between probes while the backend is down; 0 = Interval
	Timeout           time.Duration // bound on dial plus the whole exchange; <= both intervals
	Rise, Fall        int           // consecutive successes to go up / failures to go down
}

// Bounds of a check: the one rule, which Validate applies (at start, on
// reload and for every Sync) and conf checks the config file's health sections
// against (by calling Problems), so that -check and a start agree.
const (
	// MaxInterval bounds Interval, UnhealthyInterval and Timeout: a typo
	// ("h" for "s") is an error, not a backend probed once a week.
	MaxInterval = time.Hour
	// MaxRiseFall bounds Rise and Fall.
	MaxRiseFall = 100
	// MaxPathLen bounds Path.
	MaxPathLen = 1024
)

// Validate reports every problem with c (Problems), joined, each prefixed with
// the field it concerns (lowercase, as in the config file). Validate is a pure
// function of c and safe for concurrent use.
func (c Check) Validate() error {
	ps := c.Problems()
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// Problems returns every problem with c, each with its key in a pool's health
// section ("timeout"), in the config file's wording. Zero values mean what the
// type's documentation says (a zero Timeout is the shorter interval); a check
// for TypeNone only needs a valid Type.
func (c Check) Problems() []field.Problem {
	var ps []field.Problem
	bad := func(key, format string, args ...any) { ps = append(ps, field.Errorf(key, format, args...)) }
	switch c.Type {
	case "", TypeNone:
		return nil
	case TypeHTTP, TypeTCP:
	default:
		return []field.Problem{field.Errorf("type", "must be one of http, tcp, none, got %q", c.Type)}
	}
	dur := func(key string, v time.Duration, zeroOK bool) bool {
		switch {
		case v < 0 && zeroOK:
			bad(key, "must not be negative, got %s", v)
		case v <= 0 && !zeroOK:
			bad(key, "must be greater than 0, got %s", v)
		case v > MaxInterval:
			bad(key, "must be at most %s, got %s", field.Duration(MaxInterval), v)
		default:
			return true
		}
		return false
	}
	dur("interval", c.Interval, false)
	dur("unhealthy_interval", c.UnhealthyInterval, true)
	if dur("timeout", c.Timeout, true) && c.Timeout > 0 {
		// A timeout longer than the interval would make probes of one backend
		// run back to back, and the interval meaningless.
		switch {
		case c.Interval > 0 && c.Timeout > c.Interval:
			bad("timeout", "must not exceed health.interval (%s), got %s", c.Interval, c.Timeout)
		case c.UnhealthyInterval > 0 && c.Timeout > c.UnhealthyInterval:
			bad("timeout", "must not exceed health.unhealthy_interval (%s), got %s", c.UnhealthyInterval, c.Timeout)
		}
	}
	if c.Rise < 0 || c.Rise > MaxRiseFall {
		bad("rise", "must be between 1 and %d, got %d", MaxRiseFall, c.Rise)
	}
	if c.Fall < 0 || c.Fall > MaxRiseFall {
		bad("fall", "must be between 1 and %d, got %d", MaxRiseFall, c.Fall)
	}
	if c.Type == TypeTCP {
		return ps
	}
	if c.Path != "" {
		switch {
		case !strings.HasPrefix(c.Path, "/"):
			bad("path", "must start with /, got %q", c.Path)
		case len(c.Path) > MaxPathLen || strings.ContainsAny(c.Path, " #"):
			bad("path", "must be a URL path of at most %d characters without spaces or #", MaxPathLen)
		case !httpwire.IsOriginForm(c.Path):
			bad("path", "%q is not a valid request target", c.Path)
		}
	}
	if strings.ContainsAny(c.Host, " \t\r\n/") {
		bad("host", "%q is not a valid Host header", c.Host)
	}
	if c.ExpectStatus != 0 && (c.ExpectStatus < 100 || c.ExpectStatus > 599) {
		bad("expect_status", "must be between 100 and 599, got %d", c.ExpectStatus)
	}
	return ps
}

// normalized returns c with its zero values replaced by what they mean, so two
// checks that behave the same compare equal (a reload that spells a default
// out does not restart a prober).
func (c Check) normalized() Check {
	if c.Type == "" {
		c.Type = TypeNone
	}
	if c.Type == TypeNone {
		return Check{Type: TypeNone}
	}
	if c.UnhealthyInterval == 0 {
		c.UnhealthyInterval = c.Interval
	}
	if c.Timeout == 0 {
		c.Timeout = min(c.Interval, c.UnhealthyInterval)
	}
	c.Rise = max(c.Rise, 1)
	c.Fall = max(c.Fall, 1)
	if c.Type == TypeTCP {
		c.Path, c.Host, c.ExpectStatus = "", "", 0
	} else if c.Path == "" {
		c.Path = "/"
	}
	return c
}

// sameEvidence reports whether c and d probe the same thing with the same success
// criterion, so that results gathered under c remain evidence under d. Only
// timings and thresholds may then differ: consecutive counts still mean the
// same, whatever the new Rise or Fall. Both must be normalized.
func (c Check) sameEvidence(d Check) bool {
	return c.Type == d.Type && c.Path == d.Path && c.Host == d.Host && c.ExpectStatus == d.ExpectStatus
}
