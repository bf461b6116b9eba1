package degrade

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/floodgate/floodgate/internal/field"
	"github.com/floodgate/floodgate/internal/httpwire"
)

// MaxStaticSize caps a static degraded answer. The body is held in memory and
// written on every degraded request, at the moment the site is busiest: a
// light page is the point.
const MaxStaticSize = 1 << 20

// The two statuses a degraded answer uses, spelled out rather than taken
// from net/http, which degrade has no other reason to link.
const (
	statusUnavailable = 503
	statusTooMany     = 429
)

// ErrStaticTooLarge means a static answer's file exceeds MaxStaticSize.
var ErrStaticTooLarge = errors.New("degrade: static answer too large")

// Header is one response header field.
type Header struct {
	Name, Value string
}

// Static is a route's static degraded answer, read once into memory by
// LoadStatic. It is immutable and safe for concurrent use: the proxy writes
// Status, ContentType, Header and Body as they are (with fasthttp's
// SetStatusCode, SetContentType, Header.Set and SetBodyRaw, none of which
// allocate). Do not modify it.
type Static struct {
	// Status is the response status, 503 by default.
	Status int
	// ContentType is the configured Content-Type header, or the one guessed
	// from the file's extension, or application/octet-stream.
	ContentType string
	// Header holds the other configured headers, canonicalised and sorted by
	// name. It never holds Content-Type or Content-Length.
	Header []Header
	// Body is the file's contents, at most MaxStaticSize bytes.
	Body []byte
}

// LoadStatic reads the file at path into a Static answer. status 0 means 503,
// so that caches and crawlers do not take the busy page for the real one;
// otherwise it must be 200..599. headers may set Content-Type (which wins over
// the guess) and anything else except framing and hop-by-hop headers, which
// the proxy owns; names and values are checked, so a config can never inject
// a header line. Retry-After, when wanted, goes in headers (see RetryAfter).
//
// Call it when building a generation: a missing or oversized file then fails
// the reload instead of a request.
func LoadStatic(path string, status int, headers map[string]string) (*Static, error) {
	if status == 0 {
		status = statusUnavailable
	}
	st := &Static{Status: status}
	var errs []error
	if status < 200 || status > 599 {
		errs = append(errs, fmt.Errorf("status %d: must be in [200, 599]", status))
	}
	// Map order is random: walk the names sorted so errors read the same on
	// every run.
	names := make([]string, 0, len(headers))
	for name := range headers {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		value := headers[name]
		canon := canonicalKey(name)
		switch {
		case !httpwire.IsToken(name):
			errs = append(errs, fmt.Errorf("header %q: invalid name", name))
		case !validHeaderValue(value):
			errs = append(errs, fmt.Errorf("header %s: invalid value %q", canon, value))
		case forbiddenHeader(canon):
			errs = append(errs, fmt.Errorf("header %s: set by the proxy, not configurable", canon))
		case canon == "Content-Type":
			st.ContentType = value
		default:
			st.Header = append(st.Header, Header{Name: canon, Value: value})
		}
	}
	slices.SortFunc(st.Header, func(a, b Header) int { return strings.Compare(a.Name, b.Name) })

	body, err := readCapped(path, MaxStaticSize)
	if err != nil {
		errs = append(errs, err)
	}
	st.Body = body
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("degrade: static answer %s: %w", path, err)
	}
	if st.ContentType == "" {
		st.ContentType = mime.TypeByExtension(filepath.Ext(path))
	}
	if st.ContentType == "" {
		st.ContentType = "application/octet-stream"
	}
	return st, nil
}

// readCapped reads a regular file of at most limit bytes.
func readCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file")
	}
	// Read one byte past the limit rather than trust Stat: the file may grow
	// between the two.
	body, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrStaticTooLarge, limit)
	}
	return body, nil
}

// forbiddenHeader lists the headers the proxy sets itself: framing (a wrong
// Content-Length would desynchronise the client connection) and the
// hop-by-hop set of RFC 9110 §7.6.1.
func forbiddenHeader(canon string) bool {
	switch canon {
	case "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive",
		"Proxy-Connection", "Te", "Trailer", "Upgrade":
		return true
	}
	return false
}

// canonicalKey is textproto.CanonicalMIMEHeaderKey for valid names
// ("retry-after" gives "Retry-After"), written out so that degrade does not
// link the net package.
func canonicalKey(s string) string {
	b := []byte(s)
	upper := true
	for i, c := range b {
		switch {
		case upper && 'a' <= c && c <= 'z':
			b[i] = c - ('a' - 'A')
		case !upper && 'A' <= c && c <= 'Z':
			b[i] = c + ('a' - 'A')
		}
		upper = c == '-'
	}
	return string(b)
}

// validHeaderValue refuses control characters other than tab (CR and LF
// above all: they would start a new header line).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// RetryAfter formats a Retry-After value in delay-seconds (RFC 9110 §10.2.3),
// rounding up so that a client never comes back early: 30s gives "30",
// 1500ms gives "2", zero or less gives "0". Call it once when building a
// route, not per response.
func RetryAfter(d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}

// Shed is a route's shed answer: a status (503 or 429), a preformatted
// Retry-After value, and a short plain-text body. Build it once per route
// with NewShed; it is immutable and safe for concurrent use.
type Shed struct {
	Status int
	// RetryAfter is the header value; empty means no header.
	RetryAfter string
	// Body is "503 Service Unavailable\n" or "429 Too Many Requests\n", sent
	// as text/plain; charset=utf-8.
	Body []byte
}

// CheckShed returns every problem with a route's shed settings: status must
// be 503 or 429, the statuses clients and crawlers understand as "come back
// later"; retryAfter at most MaxDuration and in whole seconds (Retry-After has
// no fractions). It is the one rule: NewShed applies it and conf checks the
// file's on_degraded sections with it. Each problem's Key is its key in the
// on_degraded section.
func CheckShed(status int, retryAfter time.Duration) []field.Problem {
	var ps []field.Problem
	if status != statusUnavailable && status != statusTooMany {
		ps = append(ps, field.Errorf("status", "must be 503 or 429, got %d", status))
	}
	switch {
	case retryAfter < 0:
		ps = append(ps, field.Errorf("retry_after", "must not be negative, got %s", retryAfter))
	case retryAfter > MaxDuration:
		ps = append(ps, field.Errorf("retry_after", "must be at most %s, got %s", field.Duration(MaxDuration), retryAfter))
	case retryAfter%time.Second != 0:
		ps = append(ps, field.Errorf("retry_after", "must be whole seconds (Retry-After has no fractions), got %s", retryAfter))
	}
	return ps
}

// NewShed builds a shed answer. status 0 means 503; otherwise the settings
// must pass CheckShed. retryAfter 0 leaves out the Retry-After header.
func NewShed(status int, retryAfter time.Duration) (*Shed, error) {
	if status == 0 {
		status = statusUnavailable
	}
	if ps := CheckShed(status, retryAfter); len(ps) > 0 {
		errs := make([]error, len(ps))
		for i, p := range ps {
			errs[i] = p
		}
		return nil, fmt.Errorf("degrade: shed: %w", errors.Join(errs...))
	}
	text := "Service Unavailable"
	if status == statusTooMany {
		text = "Too Many Requests"
	}
	s := &Shed{Status: status, Body: []byte(strconv.Itoa(status) + " " + text + "\n")}
	if retryAfter > 0 {
		s.RetryAfter = RetryAfter(retryAfter)
	}
	return s, nil
}

// MaxCaptureWait bounds a capture route's max_wait: an order waits for a slot
// at most this long before it is journalled instead (and the pool's queue
// timeout, if shorter, still applies).
const MaxCaptureWait = time.Minute

// CheckMaxWait returns the problem with a capture route's max_wait, the
// longest an order may be expected to wait for a backend slot before it is
// journalled and confirmed at once: 0 (unset: the pool's queue timeout), or
// 1ms to MaxCaptureWait. It is the one rule: the proxy applies it when it
// builds a generation and conf checks the file's on_degraded sections with
// it. The problem's Key is "max_wait".
func CheckMaxWait(d time.Duration) []field.Problem {
	switch {
	case d < 0:
		return []field.Problem{field.Errorf("max_wait", "must not be negative, got %s", d)}
	case d > 0 && d < time.Millisecond:
		return []field.Problem{field.Errorf("max_wait", "must be at least 1ms (or 0 for the pool's queue timeout), got %s", d)}
	case d > MaxCaptureWait:
		return []field.Problem{field.Errorf("max_wait", "must be at most %s, got %s", field.Duration(MaxCaptureWait), d)}
	}
	return nil
}
