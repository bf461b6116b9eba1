package cache

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// These table-driven tests follow the checks of the HTTP cache conformance
// suite (github.com/http-tests/cache-tests), run as a shared cache: each
// case scripts the origin's responses and says, per request, whether the
// origin must (or must not) have been contacted. "pause" in the suite is a
// clock advance here.

type tri int8

const (
	dontCare tri = iota
	fromCache
	fromOrigin
)

type step struct {
	advance time.Duration
	method  string // default GET
	uri     string // default /r
	req     []string
	resp    *originResp // the origin's answer; nil: a plain 200 "body-N"
	fail    bool        // the fetch fails before reaching the origin

	cached    tri
	status    int
	result    string
	body      string
	has       []string // "Name: value" (exact) or "Name" (present)
	hasNot    []string // names
	origin    []string // fields the origin must have received ("Name: value" or "Name")
	originNot []string
	check     func(t *testing.T, a answer)
	waitBG    bool // wait for background refreshes after this step
}

type rfcCase struct {
	name   string
	policy PolicyOptions
	steps  []step
}

func resp(hdrs ...string) *originResp { return &originResp{headers: hdrs, body: "stored"} }

func respStatus(status int, hdrs ...string) *originResp {
	return &originResp{status: status, headers: hdrs, body: "stored-" + strconv.Itoa(status)}
}

const pause = 3 * time.Second

// reuse is the suite's most common shape: store a response, optionally
// wait, request again and check whether the origin was contacted.
func reuse(name string, wait time.Duration, cached bool, hdrs ...string) rfcCase {
	want := fromOrigin
	if cached {
		want = fromCache
	}
	return rfcCase{name: name, steps: []step{
		{resp: resp(hdrs...), cached: fromOrigin},
		{advance: wait, cached: want},
	}}
}

func runCases(t *testing.T, cases []rfcCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runCase(t, tc)
		})
	}
}

func runCase(t *testing.T, tc rfcCase) {
	h := newHarness(t, harnessOpts{policy: tc.policy})
	for i, s := range tc.steps {
		if s.resp != nil {
			r := *s.resp
			h.setScript(func(int, seenReq) originResp { return r })
		} else {
			h.setScript(func(n int, _ seenReq) originResp { return originResp{body: "body-" + strconv.Itoa(n)} })
		}
		if s.fail {
			h.failN.Store(1)
		}
		h.clock.Advance(s.advance)
		method := s.method
		if method == "" {
			method = "GET"
		}
		uri := s.uri
		if uri == "" {
			uri = "/r"
		}
		seenBefore := len(h.seenCopy())
		a := h.do(method, uri, s.req...)
		h.failN.Store(0)
		if s.waitBG {
			h.cache.bg.Wait()
		}
		where := "step " + strconv.Itoa(i+1) + " (" + method + " " + uri + ")"
		switch s.cached {
		case fromCache:
			if a.origin != 0 {
				t.Errorf("%s: origin contacted, want answer from cache (result %s, Cache-Status %q)", where, a.result, a.get("Cache-Status"))
			}
		case fromOrigin:
			if a.origin == 0 {
				t.Errorf("%s: answered from cache, want origin contacted (result %s, Cache-Status %q)", where, a.result, a.get("Cache-Status"))
			}
		}
		if s.status != 0 && a.status != s.status {
			t.Errorf("%s: status %d, want %d (Cache-Status %q)", where, a.status, s.status, a.get("Cache-Status"))
		}
		if s.result != "" && a.result != s.result {
			t.Errorf("%s: result %s, want %s (Cache-Status %q)", where, a.result, s.result, a.get("Cache-Status"))
		}
		if s.body != "" && a.body != s.body {
			t.Errorf("%s: body %q, want %q", where, a.body, s.body)
		}
		for _, want := range s.has {
			if !hasField(a.headers, want) {
				t.Errorf("%s: response lacks %q; got %v", where, want, a.headers)
			}
		}
		for _, name := range s.hasNot {
			if v, ok := a.headers[strings.ToLower(name)]; ok {
				t.Errorf("%s: response has %s: %q, want it absent", where, name, v)
			}
		}
		if len(s.origin) > 0 || len(s.originNot) > 0 {
			seen := h.seenCopy()
			if len(seen) <= seenBefore {
				t.Errorf("%s: origin saw no request, want fields %v", where, s.origin)
			} else {
				got := seen[len(seen)-1]
				for _, want := range s.origin {
					if !hasField(got.headers, want) {
						t.Errorf("%s: origin request lacks %q; got %v", where, want, got.headers)
					}
				}
				for _, name := range s.originNot {
					if _, ok := got.headers[strings.ToLower(name)]; ok {
						t.Errorf("%s: origin request has %s, want it absent", where, name)
					}
				}
			}
		}
		if s.check != nil {
			s.check(t, a)
		}
	}
}

func (h *harness) seenCopy() []seenReq {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]seenReq(nil), h.seen...)
}

func hasField(m map[string][]string, want string) bool {
	name, value, withValue := strings.Cut(want, ":")
	vs, ok := m[strings.ToLower(strings.TrimSpace(name))]
	if !withValue {
		return ok
	}
	value = strings.TrimSpace(value)
	for _, v := range vs {
		if v == value {
			return true
		}
	}
	return false
}

// TestFreshness covers RFC 9111 §4.2.1 (lifetime: s-maxage over max-age over
// Expires), §1.2.2 (delta-seconds), §5.2 (directive syntax) and §4.2.3
// (Age), after the suite's cc-freshness, cc-parse and age-parse checks.
func TestFreshness(t *testing.T) {
	runCases(t, []rfcCase{
		reuse("no explicit freshness is not reused", pause, false),
		reuse("max-age", pause, true, "Cache-Control: max-age=3600"),
		reuse("quoted max-age", pause, true, `Cache-Control: max-age="3600"`),
		reuse("single-quoted max-age is invalid", pause, false, "Cache-Control: max-age='3600'"),
		reuse("max-age inside a quoted string is ignored", pause, false, `Cache-Control: extension="max-age=100", max-age=1`),
		reuse("max-age inside a later quoted string is ignored", pause, false, `Cache-Control: max-age=1, extension="max-age=100"`),
		reuse("max-age inside a quoted string with quoted max-age", pause, false, `Cache-Control: extension="max-age=100", max-age="1"`),
		reuse("space before = is invalid", pause, false, "Cache-Control: max-age =100"),
		reuse("space after = is invalid", pause, false, "Cache-Control: max-age= 100"),
		reuse("max-age=0", 0, false, "Cache-Control: max-age=0"),
		reuse("max-age with leading alpha", 0, false, "Cache-Control: max-age=a100"),
		reuse("max-age with trailing alpha", 0, false, "Cache-Control: max-age=100a"),
		reuse("negative max-age", 0, false, "Cache-Control: max-age=-100"),
		reuse("max-age 2^31", pause, true, "Cache-Control: max-age=2147483648"),
		reuse("max-age beyond 2^31 is clamped", pause, true, "Cache-Control: max-age=99999999999"),
		reuse("max-age with leading zeros", pause, true, "Cache-Control: max-age=003600"),
		reuse("Age beyond max-age", pause, false, "Date: @0", "Cache-Control: max-age=10", "Age: 15"),
		reuse("max-age wins over a past Expires", pause, true, "Cache-Control: max-age=3600", "Expires: @-10000", "Date: @0"),
		reuse("max-age wins over an invalid Expires", pause, true, "Cache-Control: max-age=3600", "Expires: 0", "Date: @0"),
		reuse("max-age=0 wins over a future Expires", pause, false, "Expires: @+10000", "Cache-Control: max-age=0", "Date: @0"),
		reuse("unknown extension directive", pause, true, "Cache-Control: foobar, max-age=3600"),
		reuse("directive names are case-insensitive", pause, true, "Cache-Control: MaX-aGe=3600"),
		reuse("s-maxage", pause, true, "Cache-Control: s-maxage=3600"),
		reuse("s-maxage shorter than max-age", pause, false, "Cache-Control: max-age=3600, s-maxage=1"),
		reuse("s-maxage shorter than max-age, reversed", pause, false, "Cache-Control: s-maxage=1, max-age=3600"),
		reuse("s-maxage shorter than max-age, two lines", pause, false, "Cache-Control: max-age=3600", "Cache-Control: s-maxage=1"),
		reuse("s-maxage longer than max-age", pause, true, "Cache-Control: max-age=1, s-maxage=3600"),
		reuse("first max-age wins, same line", pause, true, "Cache-Control: max-age=1800, max-age=1"),
		reuse("first max-age wins, two lines", pause, true, "Cache-Control: max-age=1800", "Cache-Control: max-age=1"),
		reuse("non-numeric Age is ignored", pause, true, "Date: @0", "Cache-Control: max-age=3600", "Age: abc"),
		reuse("negative Age is ignored", pause, true, "Date: @0", "Cache-Control: max-age=3600", "Age: -7200"),
		reuse("Age list uses its first member", pause, true, "Date: @0", "Cache-Control: max-age=3600", "Age: 0, 7200"),
		reuse("Date in year 1 does not overflow the age", 0, false, "Cache-Control: max-age=3600", "Date: Mon, 01 Jan 0001 00:00:00 GMT"),
		reuse("Expires in year 9999 is clamped, not overflowed", pause, true, "Expires: Fri, 31 Dec 9999 23:59:59 GMT", "Date: @0"),
		reuse("Age uses its first line", pause, true, "Date: @0", "Cache-Control: max-age=3600", "Age: 0", "Age: 7200"),
		reuse("old Age", 0, false, "Date: @0", "Cache-Control: max-age=3600", "Age: 7200"),
		{name: "freshness lifetime ends", steps: []step{
			{resp: resp("Cache-Control: max-age=10"), cached: fromOrigin},
			{advance: 9 * time.Second, cached: fromCache, result: "hit"},
			{advance: time.Second, cached: fromOrigin, result: "miss"},
		}},
		{name: "apparent age from Date counts", steps: []step{
			{resp: resp("Cache-Control: max-age=10", "Date: @-8"), cached: fromOrigin},
			{advance: time.Second, cached: fromCache, check: ageAtLeast(9)},
			{advance: time.Second, cached: fromOrigin},
		}},
		{name: "Date in the future does not make a response younger", steps: []step{
			{resp: resp("Cache-Control: max-age=10", "Date: @+100"), cached: fromOrigin},
			{advance: 9 * time.Second, cached: fromCache},
			{advance: time.Second, cached: fromOrigin},
		}},
	})
}

func ageAtLeast(n int) func(t *testing.T, a answer) {
	return func(t *testing.T, a answer) {
		t.Helper()
		age, err := strconv.Atoi(a.get("Age"))
		if err != nil || age < n {
			t.Errorf("Age %q, want >= %d", a.get("Age"), n)
		}
	}
}

// TestExpires covers RFC 9111 §5.3 and the HTTP-date formats of RFC 9110
// §5.6.7, after the suite's expires-freshness and expires-parse checks.
func TestExpires(t *testing.T) {
	runCases(t, []rfcCase{
		reuse("future Expires", pause, true, "Expires: @+2592000", "Date: @0"),
		reuse("past Expires", pause, false, "Expires: @-2592000", "Date: @0"),
		reuse("Expires equal to Date", 0, false, "Expires: @0", "Date: @0"),
		reuse("Expires before Date", pause, false, "Expires: @300", "Date: @400"),
		reuse("Expires minus Date, not now", pause, true, "Expires: @+3600", "Date: @-1800"),
		reuse("weekday in upper case", pause, true, "Expires: THU, 18 Aug 2050 02:01:18 GMT", "Date: @0"),
		reuse("month in upper case", pause, true, "Expires: Thu, 18 AUG 2050 02:01:18 GMT", "Date: @0"),
		reuse("zone in mixed case", pause, true, "Expires: Thu, 18 Aug 2050 02:01:18 gMT", "Date: @0"),
		reuse("RFC 850 date", pause, true, "Expires: Thursday, 18-Aug-50 02:01:18 GMT", "Date: @0"),
		reuse("asctime date", pause, true, "Expires: Thu Aug 18 02:01:18 2050", "Date: @0"),
		reuse("invalid Expires 0", pause, false, "Expires: 0", "Date: @0"),
		reuse("invalid Expires in UTC", pause, false, "Expires: Thu, 18 Aug 2050 02:01:18 UTC", "Date: @0"),
		reuse("invalid Expires two-digit year", pause, false, "Expires: Thu, 18 Aug 50 02:01:18 GMT", "Date: @0"),
		reuse("invalid Expires without comma", pause, false, "Expires: Thu 18 Aug 2050 02:01:18 GMT", "Date: @0"),
		reuse("invalid Expires multiple spaces", 0, false, "Expires: Thu, 18  Aug  2050 02:01:18 GMT", "Date: @0"),
		reuse("invalid Expires date dashes", 0, false, "Expires: Thu, 18-Aug-2050 02:01:18 GMT", "Date: @0"),
		reuse("invalid Expires time periods", 0, false, "Expires: Thu, 18 Aug 2050 02.01.18 GMT", "Date: @0"),
		reuse("invalid Expires one-digit hour", 0, false, "Expires: Thu, 18 Aug 2050 2:01:18 GMT", "Date: @0"),
		reuse("Expires with an invalid Date", 0, true, "Date: foo", "Expires: @+10"),
		reuse("Age beyond Expires-Date, slow Date", 0, false, "Date: @-10", "Expires: @+10", "Age: 25"),
		reuse("Age beyond Expires-Date, fast Date", 0, false, "Date: @+10", "Expires: @+20", "Age: 15"),
	})
}

// TestHeuristicFreshness covers RFC 9111 §4.2.2: heuristic freshness from
// Last-Modified only for heuristically cacheable statuses or public
// responses, after the suite's heuristic-freshness checks.
func TestHeuristicFreshness(t *testing.T) {
	var cases []rfcCase
	for _, tc := range []struct {
		status int
		public bool
		cached bool
	}{
		{200, false, true}, {201, false, false}, {202, false, false}, {203, false, true},
		{204, false, true}, {403, false, false}, {404, false, true}, {405, false, true},
		{410, false, true}, {414, false, true}, {501, false, true}, {502, false, false},
		{503, false, false}, {504, false, false}, {599, false, false}, {599, true, true},
	} {
		hdrs := []string{"Last-Modified: @-86400", "Date: @0"}
		name := strconv.Itoa(tc.status)
		if tc.public {
			hdrs = append(hdrs, "Cache-Control: public")
			name += " public"
		}
		want := fromOrigin
		if tc.cached {
			want = fromCache
		}
		cases = append(cases, rfcCase{name: name, steps: []step{
			{resp: respStatus(tc.status, hdrs...), cached: fromOrigin},
			{advance: pause, resp: respStatus(tc.status, hdrs...), cached: want, status: tc.status},
		}})
	}
	cases = append(cases,
		reuse("10% of the age since Last-Modified", 100*time.Second, true, "Last-Modified: @-1200", "Date: @0"),
		reuse("heuristic lifetime runs out", 121*time.Second, false, "Last-Modified: @-1200", "Date: @0"),
		reuse("heuristic lifetime is capped at a day", 25*time.Hour, false, "Last-Modified: @-31536000", "Date: @0"),
		rfcCase{name: "DefaultTTL replaces the heuristic", policy: PolicyOptions{DefaultTTL: time.Minute}, steps: []step{
			{resp: resp(), cached: fromOrigin},
			{advance: 59 * time.Second, cached: fromCache},
			{advance: time.Second, cached: fromOrigin},
		}},
		rfcCase{name: "DefaultTTL does not override no-store", policy: PolicyOptions{DefaultTTL: time.Minute}, steps: []step{
			{resp: resp("Cache-Control: no-store"), cached: fromOrigin},
			{cached: fromOrigin},
		}},
		rfcCase{name: "DefaultTTL does not apply to 500", policy: PolicyOptions{DefaultTTL: time.Minute}, steps: []step{
			{resp: respStatus(500), cached: fromOrigin},
			{cached: fromOrigin},
		}},
	)
	runCases(t, cases)
}

// TestStatusCodes covers RFC 9111 §3: any final status with explicit
// freshness may be stored; a stale one must not be reused. 206 is never
// stored (no range support).
func TestStatusCodes(t *testing.T) {
	var cases []rfcCase
	for _, code := range []int{200, 203, 204, 299, 301, 302, 303, 307, 308, 400, 404, 410, 499, 500, 502, 503, 504, 599} {
		fresh := []string{"Expires: @+100000", "Cache-Control: max-age=100000", "Last-Modified: @0", "Date: @0"}
		stale := []string{"Expires: @-5000", "Last-Modified: @-100000", "Date: @0"}
		cases = append(cases,
			rfcCase{name: strconv.Itoa(code) + " fresh", steps: []step{
				{resp: respStatus(code, fresh...), cached: fromOrigin},
				{cached: fromCache, status: code},
			}},
			rfcCase{name: strconv.Itoa(code) + " stale", steps: []step{
				{resp: respStatus(code, stale...), cached: fromOrigin},
				{resp: respStatus(code, stale...), cached: fromOrigin, status: code},
			}},
		)
	}
	cases = append(cases, rfcCase{name: "206 is not stored", steps: []step{
		{req: []string{"Range: bytes=0-1"}, resp: respStatus(206, "Cache-Control: max-age=3600", "Content-Range: bytes 0-1/10"), cached: fromOrigin, status: 206, origin: []string{"Range: bytes=0-1"}},
		{req: []string{"Range: bytes=0-1"}, cached: fromOrigin},
	}})
	runCases(t, cases)
}

// TestResponseDirectives covers RFC 9111 §5.2.2 and §3.1 (fields not
// stored), after the suite's cc-response, headers and uncached checks.
func TestResponseDirectives(t *testing.T) {
	runCases(t, []rfcCase{
		reuse("private is not stored by a shared cache", 0, false, "Cache-Control: private, max-age=3600"),
		reuse("no-store", 0, false, "Cache-Control: no-store"),
		reuse("no-store is case-insensitive", 0, false, "Cache-Control: No-StOrE"),
		reuse("no-store with max-age and Expires", 0, false, "Cache-Control: max-age=10000, no-store", "Expires: @+10000", "Date: @0"),
		reuse("no-cache with max-age and Expires", 0, false, "Cache-Control: max-age=10000, no-cache", "Expires: @+10000", "Date: @0"),
		reuse("no-cache is case-insensitive", 0, false, "Cache-Control: max-age=10000, No-CaChE", "Expires: @+10000", "Date: @0"),
		reuse("must-understand without no-store", 0, true, "Cache-Control: max-age=3600, must-understand"),
		reuse("must-understand overrides no-store for an understood status", 0, true, "Cache-Control: max-age=3600, must-understand, no-store"),
		{name: "must-understand with an unknown status is not stored", steps: []step{
			{resp: respStatus(299, "Cache-Control: max-age=3600, must-understand, no-store"), cached: fromOrigin},
			{cached: fromOrigin},
		}},
		{name: "no-cache is stored and revalidated", steps: []step{
			{resp: resp("Cache-Control: no-cache", `ETag: "abcd"`), cached: fromOrigin},
			{resp: respStatus(304, `ETag: "abcd"`), cached: fromOrigin, origin: []string{`If-None-Match: "abcd"`}, status: 200, body: "stored", result: "revalidated"},
		}},
		{name: "no-cache with max-age is revalidated", steps: []step{
			{resp: resp("Cache-Control: max-age=10000, no-cache", "Expires: @+10000", "Date: @0", `ETag: "abcd"`), cached: fromOrigin},
			{resp: respStatus(304, `ETag: "abcd"`), cached: fromOrigin, origin: []string{`If-None-Match: "abcd"`}, body: "stored", result: "revalidated"},
		}},
		{name: "qualified no-cache omits the field", steps: []step{
			{resp: resp(`Cache-Control: no-cache="a"`, "a: 1", "b: 2", "Cache-Control: max-age=3600", "Date: @0"), cached: fromOrigin, has: []string{"a: 1"}},
			{advance: pause, cached: fromCache, has: []string{"b: 2"}, hasNot: []string{"a"}},
		}},
		{name: "qualified no-cache omits several fields", steps: []step{
			{resp: resp(`Cache-Control: no-cache="a, b"`, "a: 1", "b: 2", "c: 3", "Cache-Control: max-age=3600", "Date: @0"), cached: fromOrigin},
			{advance: pause, cached: fromCache, has: []string{"c: 3"}, hasNot: []string{"a", "b"}},
		}},
		{name: "qualified private omits the field", steps: []step{
			{resp: resp(`Cache-Control: private="x-user", max-age=3600`, "X-User: alice", "X-Other: 1"), cached: fromOrigin, has: []string{"X-User: alice"}},
			{cached: fromCache, has: []string{"X-Other: 1"}, hasNot: []string{"X-User"}},
		}},
		{name: "Connection-listed fields are not stored", steps: []step{
			{resp: resp("Connection: a, b", "a: 1", "b: 2", "c: 3", "Cache-Control: max-age=3600", "Date: @0"), cached: fromOrigin},
			{advance: pause, cached: fromCache, has: []string{"c: 3"}, hasNot: []string{"a", "b"}},
		}},
		{name: "end-to-end fields are stored, hop-by-hop ones are not", steps: []step{
			{resp: resp("Cache-Control: max-age=3600", "Test-Header: t", "X-Test-Header: x", "Content-Type: text/plain", "X-Frame-Options: deny",
				"X-XSS-Protection: 1", "Clear-Site-Data: cookies", "Public-Key-Pins: p", "Strict-Transport-Security: s", "WWW-Authenticate: w",
				"Keep-Alive: timeout=5", "Proxy-Authenticate: pa", "Proxy-Connection: pc"), cached: fromOrigin},
			{advance: pause, cached: fromCache, has: []string{"Test-Header: t", "X-Test-Header: x", "Content-Type: text/plain", "X-Frame-Options: deny",
				"X-XSS-Protection: 1", "Clear-Site-Data: cookies", "Public-Key-Pins: p", "Strict-Transport-Security: s", "WWW-Authenticate: w"},
				hasNot: []string{"Keep-Alive", "Proxy-Authenticate", "Proxy-Connection"}},
		}},
		reuse("must-revalidate fresh", 0, true, "Cache-Control: max-age=10000, must-revalidate", `ETag: "abcd"`),
		{name: "must-revalidate stale is revalidated", steps: []step{
			{resp: resp("Cache-Control: max-age=2, must-revalidate", `ETag: "abcd"`), cached: fromOrigin},
			{advance: pause, resp: respStatus(304, "Cache-Control: max-age=2, must-revalidate", `ETag: "abcd"`), cached: fromOrigin,
				origin: []string{`If-None-Match: "abcd"`}, result: "revalidated", body: "stored"},
		}},
		{name: "pragma in a response is ignored", steps: []step{
			{resp: resp("Cache-Control: max-age=3600", "Pragma: no-cache"), cached: fromOrigin},
			{cached: fromCache},
		}},
	})
}

// TestRequestDirectives covers RFC 9111 §5.2.1 and §5.4 (Pragma), after the
// suite's cc-request and pragma checks.
func TestRequestDirectives(t *testing.T) {
	fresh := []string{"Expires: @+100000", "Cache-Control: max-age=100000", "Last-Modified: @0", "Date: @0"}
	runCases(t, []rfcCase{
		{name: "max-age=0 revalidates a fresh response", steps: []step{
			{resp: resp(fresh...), cached: fromOrigin},
			{advance: pause, req: []string{"Cache-Control: max-age=0"}, cached: fromOrigin, origin: []string{"If-Modified-Since"}},
		}},
		{name: "max-age=0 without a pause", steps: []step{
			{resp: resp(fresh...), cached: fromOrigin},
			{req: []string{"Cache-Control: max-age=0"}, cached: fromOrigin},
		}},
		{name: "max-age=1 after a pause", steps: []step{
			{resp: resp(fresh...), cached: fromOrigin},
			{advance: pause, req: []string{"Cache-Control: max-age=1"}, cached: fromOrigin},
		}},
		{name: "max-age below the Age", steps: []step{
			{resp: resp("Cache-Control: max-age=3600", "Age: 1800"), cached: fromOrigin},
			{req: []string{"Cache-Control: max-age=600"}, cached: fromOrigin},
		}},
		{name: "max-age above the Age", steps: []step{
			{resp: resp("Cache-Control: max-age=3600", "Age: 1800"), cached: fromOrigin},
			{req: []string{"Cache-Control: max-age=2000"}, cached: fromCache},
		}},
		{name: "max-stale allows a stale response", steps: []step{
			{resp: resp("Cache-Control: max-age=1"), cached: fromOrigin},
			{advance: pause, req: []string{"Cache-Control: max-stale=1000"}, cached: fromCache, result: "stale"},
		}},
		{name: "max-stale allows an aged response", steps: []step{
			{resp: resp("Cache-Control: max-age=1500", "Age: 2000", `ETag: "a"`), cached: fromOrigin},
			{req: []string{"Cache-Control: max-stale=1000"}, cached: fromCache},
		}},
		{name: "max-stale without a value", steps: []step{
			{resp: resp("Cache-Control: max-age=1", `ETag: "a"`), cached: fromOrigin},
			{advance: time.Hour, req: []string{"Cache-Control: max-stale"}, cached: fromCache},
		}},
		{name: "max-stale reaches a validator-less entry within the grace period", steps: []step{
			{resp: resp("Cache-Control: max-age=1"), cached: fromOrigin},
			{advance: 30 * time.Second, req: []string{"Cache-Control: max-stale"}, cached: fromCache},
		}},
		{name: "validator-less entries die after the grace period", steps: []step{
			{resp: resp("Cache-Control: max-age=1"), cached: fromOrigin},
			{advance: 2 * time.Minute, req: []string{"Cache-Control: max-stale"}, cached: fromOrigin},
		}},
		{name: "max-stale beyond its value", steps: []step{
			{resp: resp("Cache-Control: max-age=1"), cached: fromOrigin},
			{advance: 20 * time.Second, req: []string{"Cache-Control: max-stale=10"}, cached: fromOrigin},
		}},
		{name: "max-stale does not override must-revalidate", steps: []step{
			{resp: resp("Cache-Control: max-age=1, must-revalidate"), cached: fromOrigin},
			{advance: pause, req: []string{"Cache-Control: max-stale=1000"}, cached: fromOrigin},
		}},
		{name: "min-fresh beyond the lifetime", steps: []step{
			{resp: resp("Cache-Control: max-age=1500"), cached: fromOrigin},
			{req: []string{"Cache-Control: min-fresh=2000"}, cached: fromOrigin},
		}},
		{name: "min-fresh with Age", steps: []step{
			{resp: resp("Cache-Control: max-age=1500", "Age: 1000"), cached: fromOrigin},
			{req: []string{"Cache-Control: min-fresh=1000"}, cached: fromOrigin},
		}},
		{name: "min-fresh satisfied", steps: []step{
			{resp: resp("Cache-Control: max-age=1500"), cached: fromOrigin},
			{req: []string{"Cache-Control: min-fresh=100"}, cached: fromCache},
		}},
		{name: "no-cache forwards", steps: []step{
			{resp: resp("Cache-Control: max-age=3600"), cached: fromOrigin},
			{req: []string{"Cache-Control: no-cache"}, cached: fromOrigin, result: "miss"},
		}},
		{name: "no-cache validates with Last-Modified", steps: []step{
			{resp: resp("Cache-Control: max-age=3600", "Last-Modified: @-10000", "Date: @0"), cached: fromOrigin},
			{req: []string{"Cache-Control: no-cache"}, resp: respStatus(304), cached: fromOrigin, origin: []string{"If-Modified-Since"}, result: "revalidated", body: "stored"},
		}},
		{name: "no-cache validates with ETag", steps: []step{
			{resp: resp("Cache-Control: max-age=3600", `ETag: "abc"`), cached: fromOrigin},
			{req: []string{"Cache-Control: no-cache"}, resp: respStatus(304), cached: fromOrigin, origin: []string{`If-None-Match: "abc"`}, result: "revalidated", check: func(t *testing.T, a answer) {
				if !strings.Contains(a.get("Cache-Status"), "fwd=request") {
					t.Errorf("Cache-Status %q, want fwd=request", a.get("Cache-Status"))
				}
			}},
		}},
		{name: "no-store request is not stored", steps: []step{
			{req: []string{"Cache-Control: no-store"}, resp: resp("Cache-Control: max-age=3600"), cached: fromOrigin},
			{cached: fromOrigin},
		}},
		{name: "no-store request may be answered from the store", steps: []step{
			{resp: resp("Cache-Control: max-age=3600"), cached: fromOrigin},
			{req: []string{"Cache-Control: no-store"}, cached: fromCache},
		}},
		{name: "only-if-cached without a stored response is 504", steps: []step{
			{req: []string{"Cache-Control: only-if-cached"}, cached: fromCache, status: 504},
		}},
		{name: "only-if-cached with a fresh stored response", steps: []step{
			{resp: resp("Cache-Control: max-age=3600"), cached: fromOrigin},
			{req: []string{"Cache-Control: only-if-cached"}, cached: fromCache, status: 200, body: "stored"},
		}},
		{name: "only-if-cached with a stale stored response is 504", steps: []step{
			{resp: resp("Cache-Control: max-age=1", `ETag: "x"`), cached: fromOrigin},
			{advance: pause, req: []string{"Cache-Control: only-if-cached"}, cached: fromCache, status: 504},
		}},
		{name: "Pragma: no-cache without Cache-Control forwards", steps: []step{
			{resp: resp("Cache-Control: max-age=3600"), cached: fromOrigin},
			{req: []string{"Pragma: no-cache"}, cached: fromOrigin},
		}},
		{name: "Pragma: no-cache is ignored next to Cache-Control", steps: []step{
			{resp: resp("Cache-Control: max-age=3600"), cached: fromOrigin},
			{req: []string{"Pragma: no-cache", "Cache-Control: max-age=3600"}, cached: fromCache},
		}},
		{name: "unknown Pragma is ignored", steps: []step{
			{resp: resp("Cache-Control: max-age=3600"), cached: fromOrigin},
			{req: []string{"Pragma: unrecognised-extension"}, cached: fromCache},
		}},
	})
}

// TestVary covers RFC 9111 §4.1, after the suite's vary and vary-parse
// checks, including field-value normalisation and several variants per URL.
func TestVary(t *testing.T) {
	v := func(vary string) *originResp {
		return resp("Expires: @+5000", "Last-Modified: @-3000", "Date: @0", "Vary: "+vary)
	}
	cases := []rfcCase{
		{name: "match", steps: []step{
			{req: []string{"Foo: 1"}, resp: v("Foo"), cached: fromOrigin},
			{req: []string{"Foo: 1"}, cached: fromCache},
		}},
		{name: "no match", steps: []step{
			{req: []string{"Foo: 1"}, resp: v("Foo"), cached: fromOrigin},
			{req: []string{"Foo: 2"}, cached: fromOrigin},
		}},
		{name: "request omits the field", steps: []step{
			{req: []string{"Foo: 1"}, resp: v("Foo"), cached: fromOrigin},
			{cached: fromOrigin},
		}},
		{name: "absent field matches absent field", steps: []step{
			{resp: v("Foo"), cached: fromOrigin},
			{cached: fromCache},
			{req: []string{"Foo: "}, cached: fromOrigin},
		}},
		{name: "variants coexist", steps: []step{
			{req: []string{"Foo: 1"}, resp: &originResp{headers: []string{"Cache-Control: max-age=5000", "Vary: Foo"}, body: "foo_1"}, cached: fromOrigin},
			{req: []string{"Foo: 2"}, resp: &originResp{headers: []string{"Cache-Control: max-age=5000", "Vary: Foo"}, body: "foo_2"}, cached: fromOrigin},
			{req: []string{"Foo: 1"}, cached: fromCache, body: "foo_1"},
			{req: []string{"Foo: 2"}, cached: fromCache, body: "foo_2"},
		}},
		{name: "fields not listed are not part of the key", steps: []step{
			{req: []string{"Foo: 1", "Other: 2"}, resp: v("Foo"), cached: fromOrigin},
			{req: []string{"Foo: 1", "Other: 3"}, cached: fromCache},
		}},
		{name: "two-way match", steps: []step{
			{req: []string{"Foo: 1", "Bar: abc"}, resp: v("Foo, Bar"), cached: fromOrigin},
			{req: []string{"Foo: 1", "Bar: abc"}, cached: fromCache},
		}},
		{name: "two-way no match", steps: []step{
			{req: []string{"Foo: 1", "Bar: abc"}, resp: v("Foo, Bar"), cached: fromOrigin},
			{req: []string{"Foo: 2", "Bar: abc"}, cached: fromOrigin},
		}},
		{name: "two-way omitted field", steps: []step{
			{req: []string{"Foo: 1"}, resp: v("Foo, Bar"), cached: fromOrigin},
			{cached: fromOrigin},
		}},
		{name: "three-way match", steps: []step{
			{req: []string{"Foo: 1", "Bar: abc", "Baz: 789"}, resp: v("Foo, Bar, Baz"), cached: fromOrigin},
			{req: []string{"Foo: 1", "Bar: abc", "Baz: 789"}, cached: fromCache},
		}},
		{name: "three-way no match", steps: []step{
			{req: []string{"Foo: 1", "Bar: abc", "Baz: 789"}, resp: v("Foo, Bar, Baz"), cached: fromOrigin},
			{req: []string{"Foo: 2", "Bar: abc", "Baz: 789"}, cached: fromOrigin},
		}},
		{name: "three-way no match regardless of order", steps: []step{
			{req: []string{"Foo: 1", "Bar: abc4", "Baz: 789"}, resp: v("Foo, Bar, Baz"), cached: fromOrigin},
			{req: []string{"Foo: 1", "Bar: abc", "Baz: 789"}, cached: fromOrigin},
		}},
		{name: "three-way both omit the same field", steps: []step{
			{req: []string{"Foo: 1", "Baz: 789"}, resp: v("Foo, Bar, Baz"), cached: fromOrigin},
			{req: []string{"Foo: 1", "Baz: 789"}, cached: fromCache},
		}},
		{name: "Vary names are case-insensitive and unordered", steps: []step{
			{req: []string{"Foo: 1", "Bar: 2"}, resp: v("bar, FOO"), cached: fromOrigin},
			{req: []string{"Foo: 1", "Bar: 2"}, cached: fromCache},
		}},
		{name: "normalise whitespace", steps: []step{
			{req: []string{"Foo: 1,2"}, resp: v("Foo"), cached: fromOrigin},
			{req: []string{"Foo:  1, 2 "}, cached: fromCache},
		}},
		{name: "normalise by combining field lines", steps: []step{
			{req: []string{"Foo: 1, 2"}, resp: v("Foo"), cached: fromOrigin},
			{req: []string{"Foo: 1", "Foo: 2"}, cached: fromCache},
		}},
		{name: "Accept-Encoding is compared case-insensitively", steps: []step{
			{req: []string{"Accept-Encoding: GZIP, br"}, resp: v("Accept-Encoding"), cached: fromOrigin},
			{req: []string{"Accept-Encoding: gzip,br"}, cached: fromCache},
		}},
		{name: "stale variant validation sends the selecting fields", steps: []step{
			{req: []string{"Abc: 123"}, resp: resp("Expires: @+1", `ETag: "abcdef"`, "Date: @0", "Vary: Abc"), cached: fromOrigin},
			{advance: pause, req: []string{"Abc: 123"}, resp: respStatus(304, `ETag: "abcdef"`), cached: fromOrigin,
				origin: []string{"Abc: 123", `If-None-Match: "abcdef"`}, result: "revalidated", body: "stored"},
		}},
		{name: "other variant is not validated with this one's ETag", steps: []step{
			{req: []string{"Abc: 123"}, resp: resp("Expires: @+10000", `ETag: "abcdef"`, "Date: @0", "Vary: Abc"), cached: fromOrigin},
			{advance: pause, req: []string{"Abc: 456"}, cached: fromOrigin, originNot: []string{"If-None-Match"}},
		}},
	}
	for _, vary := range [][]string{{"*"}, {"*, *"}, {"*", "*"}, {", *"}, {"*, Foo"}, {"Foo, *"}} {
		hdrs := []string{"Cache-Control: max-age=5000", "Last-Modified: @-3000", "Date: @0"}
		for _, v := range vary {
			hdrs = append(hdrs, "Vary: "+v)
		}
		cases = append(cases, rfcCase{name: "Vary " + strings.Join(vary, " | ") + " is not reused", steps: []step{
			{req: []string{"Foo: 1", "Baz: 789"}, resp: resp(hdrs...), cached: fromOrigin},
			{req: []string{"Foo: 1", "Baz: 789"}, cached: fromOrigin},
		}})
	}
	runCases(t, cases)
}

// TestConditional covers RFC 9111 §4.3.1 (sending validators), §4.3.2
// (answering conditional requests from the store) and RFC 9110 §13, after
// the suite's conditional-etag and conditional-lm checks.
func TestConditional(t *testing.T) {
	fresh := func(extra ...string) *originResp {
		return resp(append([]string{"Expires: @+100000", "Cache-Control: max-age=100000", "Date: @0"}, extra...)...)
	}
	cases := []rfcCase{
		{name: "If-None-Match with a matching strong ETag is 304 with the ETag", steps: []step{
			{resp: fresh(`ETag: "abcdef"`), cached: fromOrigin},
			{req: []string{`If-None-Match: "abcdef"`}, cached: fromCache, status: 304, has: []string{`ETag: "abcdef"`}, result: "hit"},
		}},
		{name: "If-None-Match with a weak ETag", steps: []step{
			{resp: fresh(`ETag: W/"abcdef"`), cached: fromOrigin},
			{req: []string{`If-None-Match: W/"abcdef"`}, cached: fromCache, status: 304},
		}},
		{name: "If-None-Match weak comparison of a strong ETag", steps: []step{
			{resp: fresh(`ETag: "abcdef"`), cached: fromOrigin},
			{req: []string{`If-None-Match: W/"abcdef"`}, cached: fromCache, status: 304},
		}},
		{name: "If-None-Match list, middle member", steps: []step{
			{resp: fresh(`ETag: "abcdef"`), cached: fromOrigin},
			{req: []string{`If-None-Match: "1234", "abcdef", "5678"`}, cached: fromCache, status: 304},
		}},
		{name: "If-None-Match list, last member", steps: []step{
			{resp: fresh(`ETag: "abcdef"`), cached: fromOrigin},
			{req: []string{`If-None-Match: "1234", "5678", "abcdef"`}, cached: fromCache, status: 304},
		}},
		{name: "If-None-Match star", steps: []step{
			{resp: fresh(`ETag: "abcdef"`), cached: fromOrigin},
			{req: []string{`If-None-Match: *`}, cached: fromCache, status: 304},
		}},
		{name: "If-None-Match without a match is a full response", steps: []step{
			{resp: fresh(`ETag: "abcdef"`), cached: fromOrigin},
			{req: []string{`If-None-Match: "other"`}, cached: fromCache, status: 200, body: "stored"},
		}},
		{name: "If-None-Match takes precedence over If-Modified-Since", steps: []step{
			{resp: fresh(`ETag: "abcdef"`, "Last-Modified: @-5000"), cached: fromOrigin},
			{req: []string{`If-None-Match: "other"`, "If-Modified-Since: @-1"}, cached: fromCache, status: 200},
		}},
		{name: "If-Modified-Since equal to Last-Modified", steps: []step{
			{resp: fresh("Last-Modified: @-3000"), cached: fromOrigin},
			{advance: pause, req: []string{"If-Modified-Since: @-3003"}, cached: fromCache, status: 304},
		}},
		{name: "If-Modified-Since later than Last-Modified", steps: []step{
			{resp: fresh("Last-Modified: @-3000"), cached: fromOrigin},
			{advance: pause, req: []string{"If-Modified-Since: @-2000"}, cached: fromCache, status: 304},
		}},
		{name: "If-Modified-Since earlier than Last-Modified", steps: []step{
			{resp: fresh("Last-Modified: @-3000"), cached: fromOrigin},
			{req: []string{"If-Modified-Since: @-4000"}, cached: fromCache, status: 200},
		}},
		{name: "If-Modified-Since compares with Date without Last-Modified", steps: []step{
			{resp: fresh(), cached: fromOrigin},
			{advance: pause, req: []string{"If-Modified-Since: @-1"}, cached: fromCache, status: 304},
		}},
		{name: "client validators on a miss are answered locally", steps: []step{
			{req: []string{`If-None-Match: "abcdef"`}, resp: fresh(`ETag: "abcdef"`), cached: fromOrigin, status: 304, originNot: []string{"If-None-Match"}},
			{cached: fromCache, status: 200, body: "stored"},
		}},
		{name: "stale response with If-Modified-Since is validated then 304", steps: []step{
			{resp: resp("Cache-Control: max-age=2", "Last-Modified: @-3000", "Date: @0"), cached: fromOrigin},
			{advance: pause, req: []string{"If-Modified-Since: @-3003"}, resp: respStatus(304), cached: fromOrigin, origin: []string{"If-Modified-Since"}, status: 304, result: "revalidated"},
		}},
		{name: "strong ETag sent as If-None-Match", steps: []step{
			{resp: resp("Cache-Control: max-age=2", "Template-A: 1", `ETag: "abcdef"`), cached: fromOrigin},
			{advance: pause, resp: respStatus(304), cached: fromOrigin, origin: []string{`If-None-Match: "abcdef"`}, result: "revalidated", has: []string{"Template-A: 1"}},
		}},
		{name: "weak ETag sent as If-None-Match", steps: []step{
			{resp: resp("Cache-Control: max-age=2", `ETag: W/"abcdef"`), cached: fromOrigin},
			{advance: pause, resp: respStatus(304), cached: fromOrigin, origin: []string{`If-None-Match: W/"abcdef"`}, result: "revalidated"},
		}},
		{name: "Last-Modified sent as If-Modified-Since", steps: []step{
			{resp: resp("Cache-Control: max-age=2", "Last-Modified: @-10000"), cached: fromOrigin},
			{advance: pause, resp: respStatus(304), cached: fromOrigin, origin: []string{"If-Modified-Since"}, result: "revalidated"},
		}},
		{name: "200 to a validation replaces the stored response", steps: []step{
			{resp: resp("Cache-Control: max-age=2", `ETag: "v1"`), cached: fromOrigin},
			{advance: pause, resp: &originResp{headers: []string{"Cache-Control: max-age=100", `ETag: "v2"`}, body: "new"}, cached: fromOrigin, body: "new", result: "miss"},
			{cached: fromCache, body: "new", has: []string{`ETag: "v2"`}},
		}},
		{name: "304 with another ETag does not update the stored response", steps: []step{
			{resp: resp("Cache-Control: max-age=2", `ETag: "v1"`), cached: fromOrigin},
			{advance: pause, resp: respStatus(304, `ETag: "v2"`, "Cache-Control: max-age=100"), cached: fromOrigin, check: func(t *testing.T, a answer) {
				if a.body == "stored" && a.get("ETag") == `"v1"` && a.result == "revalidated" {
					t.Errorf("a 304 for another representation freshened the stored one")
				}
			}},
		}},
	}
	runCases(t, cases)
}

// TestUpdateOn304 covers RFC 9111 §3.2 and §4.3.4: a 304 replaces the
// stored fields it carries, keeps the others and the body, after the
// suite's update304 checks.
func TestUpdateOn304(t *testing.T) {
	var cases []rfcCase
	for _, f := range []struct{ name, a, b string }{
		{"Test-Header", "a", "b"},
		{"X-Test-Header", "a", "b"},
		{"Content-Foo", "a", "b"},
		{"X-Content-Foo", "a", "b"},
		{"Content-Type", "text/plain", "text/plain;charset=utf-8"},
		{"Content-MD5", "rL0Y20zC+Fzt72VPzMSk2A==", "N7UdGUp1E+RbVvZSTy1R8g=="},
		{"Content-Location", "/foo", "/bar"},
		{"Content-Security-Policy", "default-src 'self'", "default-src 'self' cdn.example.com"},
		{"X-Frame-Options", "deny", "sameorigin"},
		{"X-XSS-Protection", "1", "1; mode=block"},
		{"Clear-Site-Data", "cache", "cookies"},
		{"Public-Key-Pins", "a", "b"},
	} {
		for _, validator := range []string{`ETag: "e1"`, "Last-Modified: Thu, 13 Mar 2025 12:00:00 GMT"} {
			first := resp("Cache-Control: max-age=1", "Date: @0", validator, f.name+": "+f.a)
			update := respStatus(304, "Cache-Control: max-age=3600", "Date: @0", validator, f.name+": "+f.b)
			kind := "ETag"
			if strings.HasPrefix(validator, "Last") {
				kind = "Last-Modified"
			}
			cases = append(cases, rfcCase{name: f.name + " via " + kind, steps: []step{
				{resp: first, cached: fromOrigin},
				{advance: pause, resp: update, cached: fromOrigin, result: "revalidated", has: []string{f.name + ": " + f.b}, body: "stored"},
				{cached: fromCache, has: []string{f.name + ": " + f.b}, body: "stored"},
			}})
		}
	}
	cases = append(cases,
		rfcCase{name: "Cache-Control", steps: []step{
			{resp: resp("a: b", "Date: @0", `ETag: "e1"`, "Cache-Control: max-age=1"), cached: fromOrigin},
			{advance: pause, resp: respStatus(304, "a: b", "Date: @0", `ETag: "e1"`, "Cache-Control: max-age=3600"), cached: fromOrigin, has: []string{"Cache-Control: max-age=3600"}},
			{advance: pause, cached: fromCache, has: []string{"Cache-Control: max-age=3600"}},
		}},
		rfcCase{name: "a field the 304 omits keeps its stored value", steps: []step{
			{resp: resp("Cache-Control: max-age=1", "Last-Modified: Thu, 13 Mar 2025 12:00:00 GMT", "Date: @0", "Test-Header: a"), cached: fromOrigin},
			{advance: pause, resp: respStatus(304, "Cache-Control: max-age=3600", "Date: @0"), cached: fromOrigin, result: "revalidated", has: []string{"Test-Header: a"}},
		}},
		rfcCase{name: "Set-Cookie on a 304 reaches only this client", policy: PolicyOptions{CacheSetCookie: true}, steps: []step{
			{resp: resp("Cache-Control: max-age=1", `ETag: "e1"`, "Set-Cookie: a=b"), cached: fromOrigin, has: []string{"Set-Cookie: a=b"}},
			{advance: pause, resp: respStatus(304, "Cache-Control: max-age=3600", `ETag: "e1"`, "Set-Cookie: a=c"), cached: fromOrigin, result: "revalidated", has: []string{"Set-Cookie: a=c"}},
			{cached: fromCache, hasNot: []string{"Set-Cookie"}},
		}},
	)
	runCases(t, cases)
}

// TestInvalidation covers RFC 9111 §4.4, after the suite's invalidation
// checks.
func TestInvalidation(t *testing.T) {
	fresh := resp("Expires: @+100000", "Cache-Control: max-age=100000", "Last-Modified: @0", "Date: @0")
	var cases []rfcCase
	for _, m := range []string{"POST", "PUT", "DELETE", "M-SEARCH", "PATCH"} {
		cases = append(cases,
			rfcCase{name: m + " invalidates the target URI", steps: []step{
				{resp: fresh, cached: fromOrigin},
				{cached: fromCache},
				{method: m, cached: fromOrigin, result: "bypass"},
				{cached: fromOrigin},
			}},
			rfcCase{name: "failed " + m + " does not invalidate", steps: []step{
				{resp: fresh, cached: fromOrigin},
				{method: m, resp: respStatus(500), cached: fromOrigin},
				{cached: fromCache},
			}},
			rfcCase{name: m + " invalidates a relative Location", steps: []step{
				{uri: "/dir/location_target", resp: fresh, cached: fromOrigin},
				{uri: "/dir/r", method: m, resp: resp("Location: location_target", "Content-Location: content_location_target"), cached: fromOrigin},
				{uri: "/dir/location_target", cached: fromOrigin},
			}},
			rfcCase{name: m + " invalidates an absolute Content-Location", steps: []step{
				{uri: "/content_location_target", resp: fresh, cached: fromOrigin},
				{method: m, resp: resp("Content-Location: http://example.test/content_location_target"), cached: fromOrigin},
				{uri: "/content_location_target", cached: fromOrigin},
			}},
		)
	}
	cases = append(cases,
		rfcCase{name: "Location on another origin is not invalidated", steps: []step{
			{uri: "/t", resp: fresh, cached: fromOrigin},
			{method: "POST", resp: resp("Location: http://elsewhere.test/t"), cached: fromOrigin},
			{uri: "/t", cached: fromCache},
		}},
		rfcCase{name: "all variants are invalidated", steps: []step{
			{req: []string{"Foo: 1"}, resp: resp("Cache-Control: max-age=3600", "Vary: Foo"), cached: fromOrigin},
			{req: []string{"Foo: 2"}, resp: resp("Cache-Control: max-age=3600", "Vary: Foo"), cached: fromOrigin},
			{method: "POST", cached: fromOrigin},
			{req: []string{"Foo: 1"}, cached: fromOrigin},
			{req: []string{"Foo: 2"}, cached: fromOrigin},
		}},
		rfcCase{name: "OPTIONS does not invalidate", steps: []step{
			{resp: fresh, cached: fromOrigin},
			{method: "OPTIONS", cached: fromOrigin},
			{cached: fromCache},
		}},
	)
	runCases(t, cases)
}

// TestAuthorization covers RFC 9111 §3.5 and brief rule 8: a response to a
// request with Authorization is stored only with public, s-maxage or
// must-revalidate.
func TestAuthorization(t *testing.T) {
	runCases(t, []rfcCase{
		{name: "not stored by default", steps: []step{
			{req: []string{"Authorization: FOO"}, resp: resp("Expires: @+2592000", "Date: @0"), cached: fromOrigin, origin: []string{"Authorization: FOO"}},
			{advance: pause, cached: fromOrigin},
		}},
		{name: "public", steps: []step{
			{req: []string{"Authorization: FOO"}, resp: resp("Cache-Control: max-age=3600, public", "Date: @0"), cached: fromOrigin},
			{advance: pause, cached: fromCache},
		}},
		{name: "must-revalidate", steps: []step{
			{req: []string{"Authorization: FOO"}, resp: resp("Cache-Control: max-age=3600, must-revalidate", "Date: @0"), cached: fromOrigin},
			{advance: pause, cached: fromCache},
		}},
		{name: "s-maxage", steps: []step{
			{req: []string{"Authorization: FOO"}, resp: resp("Cache-Control: s-maxage=3600", "Date: @0"), cached: fromOrigin},
			{advance: pause, cached: fromCache},
		}},
		{name: "lower-case authorization field", steps: []step{
			{req: []string{"authorization: FOO"}, resp: resp("Cache-Control: max-age=3600"), cached: fromOrigin},
			{cached: fromOrigin},
		}},
	})
}

// TestOther covers Age and Date on stored responses (RFC 9111 §4, §5.1),
// query strings in the key, Set-Cookie and Cookie, after the suite's
// "other" checks.
func TestOther(t *testing.T) {
	var date string
	runCases(t, []rfcCase{
		{name: "Age is generated", steps: []step{
			{resp: resp("Expires: @+2592000", "Date: @0"), cached: fromOrigin},
			{advance: pause, cached: fromCache, check: ageAtLeast(3)},
		}},
		{name: "Age is updated with Expires", steps: []step{
			{resp: resp("Expires: @+2592000", "Date: @0", "Age: 30"), cached: fromOrigin},
			{advance: pause, cached: fromCache, check: ageAtLeast(33)},
		}},
		{name: "Age is updated with max-age", steps: []step{
			{resp: resp("Cache-Control: max-age=600", "Date: @0", "Age: 30"), cached: fromOrigin},
			{advance: pause, cached: fromCache, check: ageAtLeast(33)},
		}},
		{name: "Date is not updated", steps: []step{
			{resp: resp("Expires: @+2592000", "Date: @0"), cached: fromOrigin, check: func(t *testing.T, a answer) { date = a.get("Date") }},
			{advance: pause, cached: fromCache, check: func(t *testing.T, a answer) {
				if a.get("Date") != date || date == "" {
					t.Errorf("Date %q, want the stored %q", a.get("Date"), date)
				}
			}},
		}},
		{name: "different query strings are different keys", steps: []step{
			{uri: "/r?test=1", resp: resp("Cache-Control: max-age=100000"), cached: fromOrigin},
			{uri: "/r?test=2", cached: fromOrigin},
		}},
		{name: "same query string is the same key", steps: []step{
			{uri: "/r?test=1", resp: resp("Cache-Control: max-age=100000"), cached: fromOrigin},
			{uri: "/r?test=1", cached: fromCache},
		}},
		{name: "query is byte-exact", steps: []step{
			{uri: "/r?a=1&b=2", resp: resp("Cache-Control: max-age=100000"), cached: fromOrigin},
			{uri: "/r?b=2&a=1", cached: fromOrigin},
		}},
		{name: "Set-Cookie responses are not stored by default", steps: []step{
			{resp: resp("Cache-Control: max-age=3600", "Set-Cookie: a=b"), cached: fromOrigin, has: []string{"Set-Cookie: a=b"}},
			{cached: fromOrigin},
		}},
		{name: "CacheSetCookie stores without the cookie", policy: PolicyOptions{CacheSetCookie: true}, steps: []step{
			{resp: resp("Cache-Control: max-age=3600", "Set-Cookie: a=b"), cached: fromOrigin, has: []string{"Set-Cookie: a=b"}},
			{cached: fromCache, hasNot: []string{"Set-Cookie"}},
		}},
		{name: "request Cookie does not prevent reuse", steps: []step{
			{resp: resp("Cache-Control: max-age=3600"), cached: fromOrigin},
			{req: []string{"Cookie: a=b"}, cached: fromCache},
		}},
		reuse("Content-Disposition: attachment", 0, true, "Cache-Control: max-age=3600", "Content-Disposition: attachment; filename=example.txt"),
		{name: "Cache-Status on a miss, a hit and a revalidation", steps: []step{
			{resp: resp("Cache-Control: max-age=10", `ETag: "x"`), cached: fromOrigin, has: []string{"Cache-Status: floodgate; fwd=uri-miss; fwd-status=200; stored; ttl=10"}},
			{advance: 4 * time.Second, cached: fromCache, has: []string{"Cache-Status: floodgate; hit; ttl=6", "Age: 4"}},
			{advance: 10 * time.Second, resp: respStatus(304), cached: fromOrigin, has: []string{"Cache-Status: floodgate; fwd=stale; fwd-status=304; ttl=10"}},
		}},
		{name: "upstream Cache-Status is kept and ours appended", steps: []step{
			{resp: resp("Cache-Control: max-age=10", "Cache-Status: origin-cache; hit"), cached: fromOrigin},
			{cached: fromCache, check: func(t *testing.T, a answer) {
				cs := a.headers["cache-status"]
				if len(cs) != 2 || cs[0] != "origin-cache; hit" || !strings.HasPrefix(cs[1], "floodgate; hit") {
					t.Errorf("Cache-Status %q, want the upstream member then ours", cs)
				}
			}},
		}},
	})
}

// TestStale covers RFC 9111 §4.2.4 and RFC 5861 (stale-while-revalidate,
// stale-if-error), after the suite's stale and cc-stale checks, and the
// 504 for must-revalidate (RFC 9111 §5.2.2.2).
func TestStale(t *testing.T) {
	var cases []rfcCase
	for _, cc := range []string{"must-revalidate", "proxy-revalidate", "s-maxage=2"} {
		cases = append(cases,
			rfcCase{name: cc + " is not served stale when disconnected", steps: []step{
				{resp: resp("Cache-Control: max-age=2, stale-if-error=60, " + cc), cached: fromOrigin},
				{advance: pause, fail: true, status: 504},
			}},
			rfcCase{name: cc + " gives 504 on a 5xx during revalidation", steps: []step{
				{resp: resp("Cache-Control: max-age=2, "+cc, `ETag: "a"`), cached: fromOrigin},
				{advance: pause, resp: respStatus(500), cached: fromOrigin, status: 504, origin: []string{`If-None-Match: "a"`}},
			}},
		)
	}
	cases = append(cases,
		rfcCase{name: "no-cache is not served stale when disconnected", steps: []step{
			{resp: resp("Cache-Control: max-age=2, stale-if-error=60, no-cache"), cached: fromOrigin},
			{advance: pause, fail: true, status: 502},
		}},
		rfcCase{name: "without stale-if-error a failure is an error", steps: []step{
			{resp: resp("Cache-Control: max-age=2"), cached: fromOrigin},
			{advance: pause, fail: true, status: 502, result: "miss"},
		}},
		rfcCase{name: "a 5xx without stale-if-error passes through", steps: []step{
			{resp: resp("Cache-Control: max-age=2", `ETag: "a"`), cached: fromOrigin},
			{advance: pause, resp: respStatus(503), cached: fromOrigin, status: 503},
		}},
		rfcCase{name: "stale-if-error on a failed fetch", steps: []step{
			{resp: resp("Cache-Control: max-age=2, stale-if-error=60"), cached: fromOrigin},
			{advance: pause, fail: true, status: 200, body: "stored", result: "stale", has: []string{"Cache-Status: floodgate; fwd=stale; ttl=-1; detail=stale-if-error"}},
		}},
		rfcCase{name: "stale-if-error on a 503", steps: []step{
			{resp: resp("Cache-Control: max-age=2, stale-if-error=60", `ETag: "a"`), cached: fromOrigin},
			{advance: pause, resp: respStatus(503), cached: fromOrigin, status: 200, body: "stored", result: "stale"},
		}},
		rfcCase{name: "stale-if-error window elapsed", steps: []step{
			{resp: resp("Cache-Control: max-age=0, stale-if-error=1"), cached: fromOrigin},
			{advance: pause, resp: respStatus(500), cached: fromOrigin, status: 500},
		}},
		rfcCase{name: "request stale-if-error", steps: []step{
			{resp: resp("Cache-Control: max-age=1", `ETag: "a"`), cached: fromOrigin},
			{advance: pause, req: []string{"Cache-Control: stale-if-error=3600"}, resp: respStatus(500), cached: fromOrigin, status: 200, body: "stored"},
		}},
		rfcCase{name: "request stale-if-error elapsed", steps: []step{
			{resp: resp("Cache-Control: max-age=1", `ETag: "a"`), cached: fromOrigin},
			{advance: 10 * time.Second, req: []string{"Cache-Control: stale-if-error=1"}, resp: respStatus(500), cached: fromOrigin, status: 500},
		}},
		rfcCase{name: "stale-while-revalidate serves stale and refreshes in the background", steps: []step{
			{resp: resp("Cache-Control: max-age=1, stale-while-revalidate=3600", `ETag: "abc"`), cached: fromOrigin},
			{advance: pause, resp: &originResp{headers: []string{"Cache-Control: max-age=3600", `ETag: "def"`}, body: "fresh"}, waitBG: true,
				status: 200, body: "stored", result: "stale", has: []string{`ETag: "abc"`}},
			{cached: fromCache, body: "fresh", has: []string{`ETag: "def"`, "Cache-Control: max-age=3600"}, result: "hit"},
		}},
		rfcCase{name: "stale-while-revalidate background 304 freshens", steps: []step{
			{resp: resp("Cache-Control: max-age=1, stale-while-revalidate=3600", `ETag: "abc"`, "X-V: 1"), cached: fromOrigin},
			{advance: pause, resp: respStatus(304, "Cache-Control: max-age=3600", `ETag: "abc"`, "X-V: 2"), waitBG: true, result: "stale", has: []string{"X-V: 1"}},
			{cached: fromCache, body: "stored", has: []string{"X-V: 2"}},
		}},
		rfcCase{name: "stale-while-revalidate window elapsed", steps: []step{
			{resp: resp("Cache-Control: max-age=1, stale-while-revalidate=10"), cached: fromOrigin},
			{advance: time.Minute, cached: fromOrigin, result: "miss"},
		}},
		rfcCase{name: "stale-while-revalidate does not override must-revalidate", steps: []step{
			{resp: resp("Cache-Control: max-age=1, stale-while-revalidate=3600, must-revalidate"), cached: fromOrigin},
			{advance: pause, cached: fromOrigin, result: "miss"},
		}},
	)
	runCases(t, cases)
}

// TestHead covers HEAD: answered from a stored GET, never creating a body
// entry, and updating a stored GET response (RFC 9111 §4.3.5).
func TestHead(t *testing.T) {
	runCases(t, []rfcCase{
		{name: "HEAD is answered from a stored GET", steps: []step{
			{resp: resp("Cache-Control: max-age=3600"), cached: fromOrigin},
			{method: "HEAD", cached: fromCache, status: 200, result: "hit", has: []string{"Content-Length: 6"}, check: func(t *testing.T, a answer) {
				if a.body != "" {
					t.Errorf("HEAD body %q", a.body)
				}
			}},
		}},
		{name: "HEAD does not create an entry", steps: []step{
			{method: "HEAD", resp: resp("Cache-Control: max-age=3600"), cached: fromOrigin, has: []string{"Content-Length: 6"}},
			{method: "HEAD", cached: fromOrigin},
			{cached: fromOrigin},
		}},
		{name: "HEAD 200 freshens the stored GET", steps: []step{
			{resp: resp("Cache-Control: max-age=2", "Template-A: 1"), cached: fromOrigin},
			{advance: pause, method: "HEAD", resp: resp("Cache-Control: max-age=1000", "Template-A: 2"), cached: fromOrigin, result: "revalidated", has: []string{"Template-A: 2"}},
			{cached: fromCache, body: "stored", has: []string{"Template-A: 2"}},
		}},
		{name: "HEAD response keeps stored fields it does not repeat", steps: []step{
			{resp: resp("Cache-Control: max-age=2", "Template-A: 1"), cached: fromOrigin},
			{advance: pause, method: "HEAD", resp: resp("Cache-Control: max-age=1000"), cached: fromOrigin, has: []string{"Template-A: 1", "Content-Length: 6"}},
		}},
		{name: "HEAD with another ETag invalidates the stored GET", steps: []step{
			{resp: resp("Cache-Control: max-age=2", `ETag: "a"`), cached: fromOrigin},
			{advance: pause, method: "HEAD", resp: resp("Cache-Control: max-age=1000", `ETag: "b"`), cached: fromOrigin},
			{cached: fromOrigin},
		}},
	})
}

// TestRange covers single byte ranges served from a stored full response
// (RFC 9110 §14) and If-Range (§13.1.5).
func TestRange(t *testing.T) {
	full := &originResp{headers: []string{"Cache-Control: max-age=3600", `ETag: "r1"`, "Last-Modified: @-100"}, body: "01234567890"}
	runCases(t, []rfcCase{
		{name: "byte-range-spec", steps: []step{
			{resp: full, cached: fromOrigin},
			{req: []string{"Range: bytes=0-1"}, cached: fromCache, status: 206, body: "01", has: []string{"Content-Range: bytes 0-1/11"}},
		}},
		{name: "absent last-byte-pos", steps: []step{
			{resp: full, cached: fromOrigin},
			{req: []string{"Range: bytes=1-"}, cached: fromCache, status: 206, body: "1234567890"},
		}},
		{name: "suffix-byte-range-spec", steps: []step{
			{resp: full, cached: fromOrigin},
			{req: []string{"Range: bytes=-1"}, cached: fromCache, status: 206, body: "0"},
		}},
		{name: "several ranges get the whole response", steps: []step{
			{resp: full, cached: fromOrigin},
			{req: []string{"Range: bytes=0-1, 3-4"}, cached: fromCache, status: 200, body: "01234567890"},
		}},
		{name: "unsatisfiable range gets the whole response", steps: []step{
			{resp: full, cached: fromOrigin},
			{req: []string{"Range: bytes=50-60"}, cached: fromCache, status: 200},
		}},
		{name: "If-Range with the ETag", steps: []step{
			{resp: full, cached: fromOrigin},
			{req: []string{"Range: bytes=0-1", `If-Range: "r1"`}, cached: fromCache, status: 206},
		}},
		{name: "If-Range with another ETag", steps: []step{
			{resp: full, cached: fromOrigin},
			{req: []string{"Range: bytes=0-1", `If-Range: "r0"`}, cached: fromCache, status: 200},
		}},
		{name: "If-Range with the Last-Modified date", steps: []step{
			{resp: full, cached: fromOrigin},
			{req: []string{"Range: bytes=0-1", "If-Range: @-100"}, cached: fromCache, status: 206},
		}},
		{name: "Range on a miss is forwarded", steps: []step{
			{req: []string{"Range: bytes=0-1"}, resp: respStatus(206, "Cache-Control: max-age=3600", "Content-Range: bytes 0-1/11"), cached: fromOrigin, status: 206, origin: []string{"Range: bytes=0-1"}},
			{cached: fromOrigin},
		}},
	})
}

// TestPreconditions checks that If-Match and If-Unmodified-Since, which only
// the origin can evaluate (RFC 9111 §4.3.2), bypass the cache.
func TestPreconditions(t *testing.T) {
	runCases(t, []rfcCase{
		{name: "If-Match bypasses", steps: []step{
			{resp: resp("Cache-Control: max-age=3600", `ETag: "a"`), cached: fromOrigin},
			{req: []string{`If-Match: "a"`}, cached: fromOrigin, result: "bypass", origin: []string{`If-Match: "a"`}},
			{cached: fromCache},
		}},
		{name: "If-Unmodified-Since bypasses", steps: []step{
			{resp: resp("Cache-Control: max-age=3600"), cached: fromOrigin},
			{req: []string{"If-Unmodified-Since: @0"}, cached: fromOrigin, result: "bypass"},
		}},
	})
}

// TestCDNCacheControl covers RFC 9213, after the suite's cdn-cache-control
// checks: a valid CDN-Cache-Control replaces Cache-Control and Expires for
// this cache; an invalid one is ignored whole.
func TestCDNCacheControl(t *testing.T) {
	runCases(t, []rfcCase{
		reuse("max-age", pause, true, "CDN-Cache-Control: max-age=3600"),
		reuse("max-age beyond 2^31 is clamped", pause, true, "CDN-Cache-Control: max-age=99999999999"),
		reuse("Age beyond max-age", pause, false, "Date: @0", "CDN-Cache-Control: max-age=3600", "Age: 7200"),
		reuse("max-age=0", pause, false, "CDN-Cache-Control: max-age=0"),
		reuse("unknown member", pause, true, "CDN-Cache-Control: foobar, max-age=3600"),
		reuse("past Expires ignored", pause, true, "CDN-Cache-Control: max-age=3600", "Expires: @-10000", "Date: @0"),
		reuse("max-age=0 wins over a future Expires", pause, false, "CDN-Cache-Control: max-age=0", "Expires: @+10000", "Date: @0"),
		reuse("longer than Cache-Control", pause, true, "Cache-Control: max-age=1", "CDN-Cache-Control: max-age=3600"),
		reuse("shorter than Cache-Control", pause, false, "Cache-Control: max-age=3600", "CDN-Cache-Control: max-age=1"),
		reuse("private", pause, false, "CDN-Cache-Control: private", "Cache-Control: max-age=10000", "Expires: @+10000", "Date: @0"),
		reuse("no-cache", pause, false, "CDN-Cache-Control: no-cache", "Cache-Control: max-age=10000", "Expires: @+10000", "Date: @0"),
		reuse("no-store", pause, false, "Cache-Control: max-age=10000", "CDN-Cache-Control: no-store", "Expires: @+10000", "Date: @0"),
		reuse("fresh despite Cache-Control no-store", pause, true, "Cache-Control: no-store", "CDN-Cache-Control: max-age=10000"),
		reuse("not a Structured Field: ignored", pause, false, "CDN-Cache-Control: max-age=10000, &&&&&", "Cache-Control: no-store"),
		reuse("max-age not an Integer: ignored", pause, false, `CDN-Cache-Control: max-age="10000"`, "Cache-Control: no-store"),
		reuse("trailing comma: ignored", pause, false, "CDN-Cache-Control: max-age=10000,", "Cache-Control: no-store"),
		reuse("parameters and inner lists parse", pause, true, `CDN-Cache-Control: max-age=3600, x=(1 "b" c);y, z=?1;q=2, w=:aGk=:, v=1.5`),
	})
}

// TestContentRangeOnComplete: Content-Range has a meaning only on 206 and 416
// (RFC 9110 §14.4); a 200 carrying one is a complete response and is stored
// with the field, as the suite's headers-store-Content-Range expects.
func TestContentRangeOnComplete(t *testing.T) {
	runCases(t, []rfcCase{
		{name: "200 with Content-Range", steps: []step{
			{resp: resp("Cache-Control: max-age=3600", "Content-Range: bytes 1-2/3"), cached: fromOrigin},
			{advance: pause, cached: fromCache, body: "stored", has: []string{"Content-Range: bytes 1-2/3"}},
		}},
	})
}

// TestDateAddedWhenMissing (issue 13, item 11, the cache's part): a response
// without Date gets the time it was received, on the miss and in the stored
// copy, so every hit carries that same Date (RFC 9110 §6.6.1) and the age is
// counted from it; an origin's Date is kept as sent and used for the age
// and for Expires.
func TestDateAddedWhenMissing(t *testing.T) {
	var noDate, kept sameDate
	runCases(t, []rfcCase{
		{name: "no Date", steps: []step{
			{resp: resp("Cache-Control: max-age=3600"), cached: fromOrigin, check: noDate.record},
			{advance: 10 * time.Second, cached: fromCache, has: []string{"Age: 10"}, check: noDate.same},
		}},
		{name: "origin Date kept", steps: []step{
			{resp: resp("Cache-Control: max-age=3600", "Date: Fri, 14 Mar 2025 11:59:55 GMT"), cached: fromOrigin,
				has: []string{"Date: Fri, 14 Mar 2025 11:59:55 GMT"}, check: kept.record},
			{advance: 10 * time.Second, cached: fromCache, has: []string{"Age: 15"}, check: kept.same},
		}},
		{name: "Expires relative to Date", steps: []step{
			{resp: resp("Expires: @300", "Date: @400"), cached: fromOrigin},
			{advance: pause, cached: fromOrigin},
		}},
	})
}

// sameDate checks that a later answer carries the Date an earlier one had.
type sameDate struct{ v string }

func (d *sameDate) record(t *testing.T, a answer) {
	t.Helper()
	d.v = a.get("Date")
	if _, err := time.Parse(time.RFC1123, d.v); err != nil {
		t.Errorf("Date %q: %v", d.v, err)
	}
}

func (d *sameDate) same(t *testing.T, a answer) {
	t.Helper()
	if got := a.get("Date"); got != d.v {
		t.Errorf("Date %q, want %q (the first answer's)", got, d.v)
	}
}
