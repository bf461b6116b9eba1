package health

import (
	"errors"
	"fmt"
	"strings"
	"time"

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

// Validate reports every problem with c, joined, each prefixed with the field
// it concerns (lowercase, as in the config file), so conf can wrap them with a
// path such as "pools[1].health.". A check for TypeNone only needs a valid Type.
// Validate is a pure function of c and safe for concurrent use.
func (c Check) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch c.Type {
	case "", TypeNone:
		return nil
	case TypeHTTP, TypeTCP:
	default:
		return fmt.Errorf("type: %q is not one of http, tcp, none", c.Type)
	}
	if c.Interval <= 0 {
		bad("interval: must be > 0, got %s", c.Interval)
	}
	if c.UnhealthyInterval < 0 {
		bad("unhealthy_interval: must be >= 0, got %s", c.UnhealthyInterval)
	}
	if c.Timeout < 0 {
		bad("timeout: must be >= 0, got %s", c.Timeout)
	} else {
		// A timeout longer than the interval would make probes of one backend
		// run back to back, and the interval meaningless.
		if c.Interval > 0 && c.Timeout > c.Interval {
			bad("timeout: %s must be <= interval %s", c.Timeout, c.Interval)
		}
		if c.UnhealthyInterval > 0 && c.Timeout > c.UnhealthyInterval {
			bad("timeout: %s must be <= unhealthy_interval %s", c.Timeout, c.UnhealthyInterval)
		}
	}
	if c.Rise < 0 {
		bad("rise: must be >= 0, got %d", c.Rise)
	}
	if c.Fall < 0 {
		bad("fall: must be >= 0, got %d", c.Fall)
	}
	if c.Type == TypeTCP {
		return errors.Join(errs...)
	}
	if c.Path != "" {
		if !strings.HasPrefix(c.Path, "/") {
			bad("path: %q must start with /", c.Path)
		} else if !httpwire.IsOriginForm(c.Path) {
			bad("path: %q is not a valid request target", c.Path)
		}
	}
	if strings.ContainsAny(c.Host, " \t\r\n/") {
		bad("host: %q is not a valid Host header", c.Host)
	}
	if c.ExpectStatus != 0 && (c.ExpectStatus < 100 || c.ExpectStatus > 599) {
		bad("expect_status: must be 0 or 100-599, got %d", c.ExpectStatus)
	}
	return errors.Join(errs...)
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
