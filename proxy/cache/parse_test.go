package cache

import (
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

func TestParseHTTPDate(t *testing.T) {
	want := time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC).Unix()
	tests := []struct {
		in string
		ok bool
	}{
		{"Sun, 06 Nov 1994 08:49:37 GMT", true},
		{"SUN, 06 NOV 1994 08:49:37 gmt", true},
		{"Sunday, 06-Nov-94 08:49:37 GMT", true},
		{"Sun Nov  6 08:49:37 1994", true},
		{" Sun, 06 Nov 1994 08:49:37 GMT ", true},
		{"Sun, 06 Nov 1994 08:49:37 UTC", false},
		{"Sun, 06 Nov 94 08:49:37 GMT", false},
		{"Sun 06 Nov 1994 08:49:37 GMT", false},
		{"Sun, 06  Nov 1994 08:49:37 GMT", false},
		{"Sun, 06-Nov-1994 08:49:37 GMT", false},
		{"Sun, 06 Nov 1994 08.49.37 GMT", false},
		{"Sun, 06 Nov 1994 8:49:37 GMT", false},
		{"Sun, 06 Nov 1994 24:49:37 GMT", false},
		{"Sun, 00 Nov 1994 08:49:37 GMT", false},
		{"Xyz, 06 Nov 1994 08:49:37 GMT", false},
		{"0", false},
		{"", false},
	}
	for _, tt := range tests {
		got, ok := parseHTTPDate([]byte(tt.in))
		if ok != tt.ok || (ok && got != want) {
			t.Errorf("parseHTTPDate(%q) = %d, %v; want %d, %v", tt.in, got, ok, want, tt.ok)
		}
	}
}

func TestResponseDirectivesParse(t *testing.T) {
	tests := []struct {
		in      string
		flags   uint32
		maxAge  int64
		sMaxAge int64
	}{
		{"max-age=60", rcMaxAge, 60, 0},
		{`max-age="60"`, rcMaxAge, 60, 0},
		{"max-age='60'", rcMaxAge, 0, 0},
		{"MAX-AGE=60, PUBLIC", rcMaxAge | rcPublic, 60, 0},
		{"max-age =60", 0, 0, 0},
		{"max-age= 60", 0, 0, 0},
		{"max-age", rcMaxAge, 0, 0},
		{`ext="max-age=5, no-store", s-maxage=7`, rcSMaxAge, 0, 7},
		{`ext="a\"b, no-store", no-cache`, rcNoCache, 0, 0},
		{"max-age=99999999999999999999", rcMaxAge, maxDelta, 0},
		{"max-age=10, max-age=20", rcMaxAge, 10, 0},
		{" , ,no-store,, ", rcNoStore, 0, 0},
		{`private="x-user", no-cache="a, b"`, rcPrivateFields | rcNoCacheFields, 0, 0},
		{"must-revalidate, proxy-revalidate, must-understand, immutable", rcMustRevalidate | rcProxyRevalidate | rcMustUnderstand | rcImmutable, 0, 0},
		{"stale-while-revalidate=30, stale-if-error=x", rcSWR, 0, 0},
		{`no-cache="unterminated`, 0, 0, 0},
	}
	for _, tt := range tests {
		var d respDirectives
		d.parse([]byte(tt.in))
		if d.flags != tt.flags || d.maxAge != tt.maxAge || d.sMaxAge != tt.sMaxAge {
			t.Errorf("%q: flags %b max-age %d s-maxage %d; want %b %d %d", tt.in, d.flags, d.maxAge, d.sMaxAge, tt.flags, tt.maxAge, tt.sMaxAge)
		}
	}
	var d respDirectives
	d.parse([]byte(`no-cache="Set-Cookie, X-A", private=x-b`))
	for name, want := range map[string]bool{"set-cookie": true, "X-A": true, "x-b": false, "X-C": false} {
		if got := listsField(d.noCacheFields[:d.nNoCache], []byte(name)); got != want {
			t.Errorf("no-cache lists %s = %v", name, got)
		}
	}
	if !listsField(d.privateFields[:d.nPrivate], []byte("X-B")) {
		t.Error("private token form not recognised")
	}
}

func TestRequestDirectivesParse(t *testing.T) {
	tests := []struct {
		in    string
		flags uint32
	}{
		{"no-cache", qcNoCache},
		{"max-stale", qcMaxStaleAny},
		{"max-stale=10", qcMaxStale},
		{"max-stale=x", 0},
		{"only-if-cached, no-store", qcOnlyIfCached | qcNoStore},
		{"min-fresh=5, max-age=0, stale-if-error=60", qcMinFresh | qcMaxAge | qcSIE},
	}
	for _, tt := range tests {
		var d reqDirectives
		d.parse([]byte(tt.in))
		if d.flags != tt.flags {
			t.Errorf("%q: flags %b, want %b", tt.in, d.flags, tt.flags)
		}
	}
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		in          string
		n           int
		first, last int
		ok          bool
	}{
		{"bytes=0-1", 11, 0, 1, true},
		{"bytes=1-", 11, 1, 10, true},
		{"bytes=-1", 11, 10, 10, true},
		{"bytes=-100", 11, 0, 10, true},
		{"bytes=5-100", 11, 5, 10, true},
		{"BYTES=0-0", 11, 0, 0, true},
		{"bytes=11-", 11, 0, 0, false},
		{"bytes=0-1,3-4", 11, 0, 0, false},
		{"bytes=3-1", 11, 0, 0, false},
		{"bytes=-0", 11, 0, 0, false},
		{"items=0-1", 11, 0, 0, false},
		{"bytes=0-1", 0, 0, 0, false},
	}
	for _, tt := range tests {
		f, l, ok := parseRange([]byte(tt.in), tt.n)
		if ok != tt.ok || (ok && (f != tt.first || l != tt.last)) {
			t.Errorf("parseRange(%q, %d) = %d-%d %v", tt.in, tt.n, f, l, ok)
		}
	}
}

func TestETagMatch(t *testing.T) {
	tests := []struct {
		list, etag string
		want       bool
	}{
		{`"a"`, `"a"`, true},
		{`W/"a"`, `"a"`, true},
		{`"a"`, `W/"a"`, true},
		{`"x", "a"`, `"a"`, true},
		{`*`, `"a"`, true},
		{`*`, ``, true},
		{`"b"`, `"a"`, false},
		{`"a"`, ``, false},
		{`a`, `"a"`, true},
	}
	for _, tt := range tests {
		if got := etagListMatch([]byte(tt.list), []byte(tt.etag)); got != tt.want {
			t.Errorf("etagListMatch(%q, %q) = %v", tt.list, tt.etag, got)
		}
	}
	if strongMatch([]byte(`W/"a"`), []byte(`"a"`)) || !strongMatch([]byte(`"a"`), []byte(`"a"`)) {
		t.Error("strongMatch")
	}
}

func TestVaryKey(t *testing.T) {
	names, star, _ := appendVaryNames(nil, [][]byte{[]byte("Origin, accept-encoding"), []byte(" ORIGIN ")})
	if star || string(names) != "accept-encoding,origin" {
		t.Fatalf("names %q", names)
	}
	if _, star, _ := appendVaryNames(nil, [][]byte{[]byte("a, *")}); !star {
		t.Error("* not detected")
	}
	key := func(hdrs ...string) string {
		var h fasthttp.RequestHeader
		for _, x := range hdrs {
			k, v, _ := strings.Cut(x, ": ")
			h.Add(k, v)
		}
		return string(appendVaryKey(nil, names, &h, nil, nil, nil))
	}
	same := [][2][]string{
		{{"Accept-Encoding: gzip, br"}, {"Accept-Encoding: GZIP,br"}},
		{{"Accept-Encoding: gzip", "Accept-Encoding: br"}, {"Accept-Encoding: gzip, br"}},
		{{"Origin: https://a"}, {"origin: https://a"}},
		{{}, {}},
	}
	for _, p := range same {
		if key(p[0]...) != key(p[1]...) {
			t.Errorf("%v and %v select differently", p[0], p[1])
		}
	}
	differ := [][2][]string{
		{{"Origin: https://a"}, {"Origin: https://A"}},
		{{"Origin: "}, {}},
		{{"Accept-Encoding: gzip"}, {"Origin: gzip"}},
		{{"Accept-Encoding: a,b"}, {"Accept-Encoding: ab"}},
	}
	for _, p := range differ {
		if key(p[0]...) == key(p[1]...) {
			t.Errorf("%v and %v select the same variant", p[0], p[1])
		}
	}
}

func TestKey(t *testing.T) {
	tests := []struct {
		scheme, host, uri, want string
	}{
		{"http", "Example.COM", "/a?b=1", "http://example.com/a?b=1"},
		{"http", "example.com:80", "/", "http://example.com/"},
		{"https", "example.com:443", "/", "https://example.com/"},
		{"http", "example.com:8080", "/x", "http://example.com:8080/x"},
		{"http", "ignored", "http://Other.example/p?q", "http://other.example/p?q"},
		{"http", "h", "/%2e%2E/a", "http://h/%2e%2E/a"},
	}
	for _, tt := range tests {
		if got := string(appendKeyParts(nil, tt.scheme, []byte(tt.host), []byte(tt.uri))); got != tt.want {
			t.Errorf("key(%s, %s, %s) = %s, want %s", tt.scheme, tt.host, tt.uri, got, tt.want)
		}
	}
	_, h, p := splitKey("https://a.example:8443/x?y")
	if h != "a.example:8443" || p != "/x?y" {
		t.Errorf("splitKey = %q %q", h, p)
	}
}

func TestSameOriginPath(t *testing.T) {
	tests := []struct {
		ref, want string
		ok        bool
	}{
		{"/abs", "/abs", true},
		{"rel", "/dir/rel", true},
		{"http://example.test/x", "/x", true},
		{"HTTP://EXAMPLE.TEST/x", "/x", true},
		{"https://example.test/x", "", false},
		{"http://other.test/x", "", false},
		{"//example.test/y", "/y", true},
		{"//other.test/y", "", false},
	}
	for _, tt := range tests {
		got, ok := sameOriginPath("http", []byte("example.test"), []byte("/dir/page?q=1"), []byte(tt.ref))
		if ok != tt.ok || (ok && string(got) != tt.want) {
			t.Errorf("sameOriginPath(%q) = %q %v", tt.ref, got, ok)
		}
	}
}

func TestCacheStatusFormat(t *testing.T) {
	tests := []struct {
		kind   int
		fwd    fwdReason
		status int
		ttl    int64
		detail string
		want   string
	}{
		{csHit, fwdNone, 0, 30e9, "", "floodgate; hit; ttl=30"},
		{csHit, fwdNone, 0, -1, "degraded", "floodgate; hit; ttl=-1; detail=degraded"},
		{csStored, fwdURIMiss, 200, 60e9, "", "floodgate; fwd=uri-miss; fwd-status=200; stored; ttl=60"},
		{csForward, fwdVaryMiss, 404, 0, "", "floodgate; fwd=vary-miss; fwd-status=404"},
		{csRevalidated, fwdStale, 304, 10e9, "", "floodgate; fwd=stale; fwd-status=304; ttl=10"},
		{csCollapsed, fwdURIMiss, 0, 5e9, "", "floodgate; fwd=uri-miss; collapsed; ttl=5"},
		{csNone, fwdNone, 0, 0, "only-if-cached", "floodgate; detail=only-if-cached"},
	}
	for _, tt := range tests {
		if got := string(appendStatus(nil, tt.kind, tt.fwd, tt.status, tt.ttl, tt.detail)); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

// FuzzDirectives checks that the Cache-Control, date, range and entity-tag
// parsers never panic on arbitrary input and stay within their bounds.
func FuzzDirectives(f *testing.F) {
	for _, s := range []string{
		`max-age=60, s-maxage="30", no-cache="a, b"`, `ext="\"", private`, "Sun, 06 Nov 1994 08:49:37 GMT",
		"Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "bytes=0-1", `W/"a", "b"`, `"`, `a="`, "=,=,",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 4096 {
			return
		}
		b := []byte(s)
		var rd respDirectives
		rd.parse(b)
		if rd.maxAge < 0 || rd.maxAge > maxDelta || rd.sMaxAge < 0 || rd.sMaxAge > maxDelta {
			t.Fatalf("delta out of range: %+v", rd)
		}
		var qd reqDirectives
		qd.parse(b)
		parseHTTPDate(b)
		if first, last, ok := parseRange(b, 100); ok && (first < 0 || last >= 100 || first > last) {
			t.Fatalf("range %d-%d", first, last)
		}
		etagListMatch(b, []byte(`"a"`))
		listsField([][]byte{b}, []byte("a"))
		names, _, _ := appendVaryNames(nil, [][]byte{b})
		var h fasthttp.RequestHeader
		h.Set("Accept", s)
		appendVaryKey(nil, names, &h, nil, nil, nil)
	})
}

// directiveLines are Cache-Control values with every directive the parsers
// know, qualified lists and repeats included.
var directiveLines = struct{ resp, req []byte }{
	resp: []byte(`public, max-age=60, s-maxage=120, private="Set-Cookie, X-A", no-cache="X-B", no-store, immutable, ` +
		`stale-if-error=30, must-revalidate, must-understand, proxy-revalidate, stale-while-revalidate=10, max-age=5`),
	req: []byte(`max-age=0, no-cache, no-store, max-stale=20, min-fresh=5, only-if-cached, stale-if-error=9, max-age=7`),
}

func TestParseDirectivesAllocatesNothing(t *testing.T) {
	if n := testing.AllocsPerRun(1000, func() {
		var rd respDirectives
		rd.parse(directiveLines.resp)
		var qd reqDirectives
		qd.parse(directiveLines.req)
	}); n != 0 {
		t.Fatalf("parsing directives allocated %.1f times, want 0", n)
	}
}

func BenchmarkParseDirectives(b *testing.B) {
	b.ReportAllocs()
	b.Run("Response", func(b *testing.B) {
		for b.Loop() {
			var d respDirectives
			d.parse(directiveLines.resp)
		}
	})
	b.Run("Request", func(b *testing.B) {
		for b.Loop() {
			var d reqDirectives
			d.parse(directiveLines.req)
		}
	})
}

// TestDirectivesRepeatsAndFullLists pins what the shared directive helpers
// must keep: the first valid occurrence of a delta directive wins, an invalid
// max-age or s-maxage counts as 0, and a fifth qualified list makes the
// directive apply to the whole response.
func TestDirectivesRepeatsAndFullLists(t *testing.T) {
	var d respDirectives
	d.parse([]byte(`stale-if-error=x, stale-if-error=4, stale-if-error=9, stale-while-revalidate=3, stale-while-revalidate=8, s-maxage=y, s-maxage=6`))
	if !d.has(rcSIE) || d.sie != 4 || !d.has(rcSWR) || d.swr != 3 || !d.has(rcSMaxAge) || d.sMaxAge != 0 {
		t.Errorf("response repeats: %+v", d)
	}
	for _, dir := range []struct {
		name        string
		list, whole uint32
		n           func(*respDirectives) int
	}{
		{"private", rcPrivateFields, rcPrivate, func(d *respDirectives) int { return d.nPrivate }},
		{"no-cache", rcNoCacheFields, rcNoCache, func(d *respDirectives) int { return d.nNoCache }},
	} {
		var d respDirectives
		line := ""
		for i := range 4 {
			line += dir.name + `="x-` + string(rune('a'+i)) + `", `
		}
		d.parse([]byte(line))
		if d.flags != dir.list || dir.n(&d) != 4 {
			t.Errorf("%s: four lists: flags %b, %d kept", dir.name, d.flags, dir.n(&d))
		}
		d.parse([]byte(dir.name + `="x-e"`))
		if d.flags != dir.list|dir.whole || dir.n(&d) != 4 {
			t.Errorf("%s: a fifth list: flags %b, %d kept; want the whole response", dir.name, d.flags, dir.n(&d))
		}
	}
	var q reqDirectives
	q.parse([]byte(`max-age=x, max-age=5, min-fresh=x, min-fresh=2, min-fresh=7, max-stale=x, max-stale=3, stale-if-error=1, stale-if-error=2`))
	if !q.has(qcMaxAge) || q.maxAge != 0 || q.minFresh != 2 || q.maxStale != 3 || q.sie != 1 {
		t.Errorf("request repeats: %+v", q)
	}
}

// TestSFNumbers pins the Integer and Decimal rules of sfBareItem (RFC 8941
// §3.3.1, §3.3.2): at most 15 digits, a Decimal at most 12 before its point
// and 1 to 3 after it.
func TestSFNumbers(t *testing.T) {
	for in, want := range map[string]int{
		"1": 1, "-1": 2, "-": 0, "12a": 2, "123456789012345": 15, "1234567890123456": 0,
		"1.5": 3, "1.": 0, "1.123": 5, "1.1234": 0, "-0.25)": 5, "123456789012.1": 14, "1234567890123.1": 0,
	} {
		if got := sfBareItem([]byte(in)); got != want {
			t.Errorf("sfBareItem(%q) = %d, want %d", in, got, want)
		}
	}
	for in, want := range map[string]bool{"": false, "0": true, "0123": true, "1a": false, "-1": false} {
		if got := allDigits([]byte(in)); got != want {
			t.Errorf("allDigits(%q) = %v, want %v", in, got, want)
		}
	}
}
