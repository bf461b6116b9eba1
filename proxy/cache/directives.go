package cache

import (
	"time"

	"github.com/floodgate/floodgate/internal/httpwire"
)

// This file holds the allocation-free parsers the request path needs:
// Cache-Control directives (RFC 9111 §5.2), HTTP-dates (RFC 9110 §5.6.7),
// delta-seconds (RFC 9111 §1.2.2), entity-tags (RFC 9110 §8.8.3) and single
// byte ranges (RFC 9110 §14.1.2). Every function works on byte slices that
// point into fasthttp's header storage and never retains them.

// maxDelta is the value a cache must use for a delta-seconds that overflows
// (RFC 9111 §1.2.2: "2147483648 (2^31) or the greatest positive integer it
// can conveniently represent").
const maxDelta = 1 << 31

// parseDelta parses delta-seconds (RFC 9111 §1.2.2): one or more digits,
// clamped to 2^31 on overflow. Anything else (sign, decimals, letters,
// whitespace) is invalid.
func parseDelta(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < maxDelta {
			n = n*10 + int64(c-'0')
		}
	}
	if n > maxDelta {
		n = maxDelta
	}
	return n, true
}

// ccIter walks the directives of one Cache-Control field value:
//
//	Cache-Control   = #cache-directive
//	cache-directive = token [ "=" ( token / quoted-string ) ]
//
// A malformed directive (for example "max-age =1" or "max-age= 1", which the
// grammar does not allow) is skipped whole, up to the next comma outside a
// quoted string, so a phrase such as `ext="max-age=100"` is never mistaken
// for a directive. The zero value is not usable; set v.
type ccIter struct {
	v []byte
	i int
}

// next returns the next well-formed directive. arg is the argument with the
// quotes of a quoted-string removed (backslash escapes are left in place:
// none of the arguments the cache interprets may contain them).
func (it *ccIter) next() (name, arg []byte, hasArg, ok bool) {
	v := it.v
	for {
		for it.i < len(v) && (httpwire.IsOWS(v[it.i]) || v[it.i] == ',') {
			it.i++
		}
		if it.i >= len(v) {
			return nil, nil, false, false
		}
		start := it.i
		for it.i < len(v) && httpwire.IsTokenChar(v[it.i]) {
			it.i++
		}
		name = v[start:it.i]
		arg, hasArg = nil, false
		valid := len(name) > 0
		if valid && it.i < len(v) && v[it.i] == '=' {
			it.i++
			hasArg = true
			if it.i < len(v) && v[it.i] == '"' {
				it.i++
				as := it.i
				closed := false
				for it.i < len(v) {
					c := v[it.i]
					if c == '\\' {
						it.i += 2
						continue
					}
					if c == '"' {
						closed = true
						break
					}
					it.i++
				}
				if !closed || it.i > len(v) {
					it.i = len(v)
					return nil, nil, false, false
				}
				arg = v[as:it.i]
				it.i++ // closing quote
			} else {
				as := it.i
				for it.i < len(v) && httpwire.IsTokenChar(v[it.i]) {
					it.i++
				}
				arg = v[as:it.i]
				if len(arg) == 0 {
					valid = false
				}
			}
		}
		for it.i < len(v) && httpwire.IsOWS(v[it.i]) {
			it.i++
		}
		if valid && (it.i >= len(v) || v[it.i] == ',') {
			return name, arg, hasArg, true
		}
		it.skipToComma()
	}
}

// skipToComma advances past the current list member, honouring quoted
// strings so that commas inside them do not end the member.
func (it *ccIter) skipToComma() {
	v := it.v
	inQuote := false
	for it.i < len(v) {
		c := v[it.i]
		switch {
		case inQuote && c == '\\':
			it.i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == ',':
			return
		}
		it.i++
	}
}

// Response directive flags (RFC 9111 §5.2.2, RFC 5861).
const (
	rcPublic uint32 = 1 << iota
	rcPrivate
	rcNoCache
	rcNoStore
	rcMustRevalidate
	rcProxyRevalidate
	rcMustUnderstand
	rcImmutable
	rcMaxAge
	rcSMaxAge
	rcSWR
	rcSIE
	rcPrivateFields
	rcNoCacheFields
)

// respDirectives is the parsed Cache-Control of a response. The field lists
// alias the header value they came from.
type respDirectives struct {
	flags         uint32
	maxAge        int64
	sMaxAge       int64
	swr           int64
	sie           int64
	noCacheFields [4][]byte // qualified no-cache="a, b" lists, one per directive
	privateFields [4][]byte // qualified private="a" lists
	nNoCache      int
	nPrivate      int
}

func (d *respDirectives) has(f uint32) bool { return d.flags&f != 0 }

// parse adds the directives of one Cache-Control field line. When a
// directive with a value occurs more than once, the first occurrence wins
// (RFC 9111 §4.2.1 allows "either the first occurrence should be used or
// the response should be considered stale"). An invalid max-age or s-maxage
// argument makes the response stale: it is the most restrictive reading
// (RFC 9111 §4.2.1, "the most restrictive directive should be followed").
func (d *respDirectives) parse(v []byte) {
	it := ccIter{v: v}
	for {
		name, arg, hasArg, ok := it.next()
		if !ok {
			return
		}
		switch len(name) {
		case 6:
			if httpwire.EqualFold(name, "public") {
				d.flags |= rcPublic
			}
		case 7:
			switch {
			case httpwire.EqualFold(name, "max-age"):
				firstDelta(&d.flags, rcMaxAge, &d.maxAge, arg, true) // invalid: 0, stale
			case httpwire.EqualFold(name, "private"):
				// With no room for the list, the fields it names must
				// still not be shared, so the whole response is private
				// (RFC 9111 §5.2.2.7 allows it).
				d.flags |= fieldList(&d.privateFields, &d.nPrivate, arg, hasArg, rcPrivateFields, rcPrivate)
			}
		case 8:
			switch {
			case httpwire.EqualFold(name, "no-cache"):
				// With no room for the list, the whole response is
				// revalidated instead (RFC 9111 §5.2.2.4 allows it).
				d.flags |= fieldList(&d.noCacheFields, &d.nNoCache, arg, hasArg, rcNoCacheFields, rcNoCache)
			case httpwire.EqualFold(name, "no-store"):
				d.flags |= rcNoStore
			case httpwire.EqualFold(name, "s-maxage"):
				firstDelta(&d.flags, rcSMaxAge, &d.sMaxAge, arg, true)
			}
		case 9:
			if httpwire.EqualFold(name, "immutable") {
				d.flags |= rcImmutable
			}
		case 14:
			if httpwire.EqualFold(name, "stale-if-error") {
				firstDelta(&d.flags, rcSIE, &d.sie, arg, false)
			}
		case 15:
			if httpwire.EqualFold(name, "must-revalidate") {
				d.flags |= rcMustRevalidate
			} else if httpwire.EqualFold(name, "must-understand") {
				d.flags |= rcMustUnderstand
			}
		case 16:
			if httpwire.EqualFold(name, "proxy-revalidate") {
				d.flags |= rcProxyRevalidate
			}
		case 22:
			if httpwire.EqualFold(name, "stale-while-revalidate") {
				firstDelta(&d.flags, rcSWR, &d.swr, arg, false)
			}
		}
	}
}

// listsField reports whether one of the qualified field lists names the
// header field name (case-insensitively).
func listsField(lists [][]byte, name []byte) bool {
	for _, l := range lists {
		if httpwire.ListHas(l, name) {
			return true
		}
	}
	return false
}

// firstDelta records the delta-seconds argument of the directive with flag f
// in dst, unless an earlier occurrence was recorded: the first one wins. An
// invalid argument is recorded as 0 when invalidIsZero, and else ignored.
// Shared by the response and the request directives.
func firstDelta(flags *uint32, f uint32, dst *int64, arg []byte, invalidIsZero bool) {
	if *flags&f != 0 {
		return
	}
	if n, ok := parseDelta(arg); ok || invalidIsZero {
		*flags |= f
		*dst = n
	}
}

// fieldList returns the flags a directive that may qualify field names
// (private, no-cache) adds: with an argument, listFlag, the list kept in
// lists; without one, or with lists full, whole.
func fieldList(lists *[4][]byte, n *int, arg []byte, hasArg bool, listFlag, whole uint32) uint32 {
	if !hasArg {
		return whole
	}
	if *n == len(lists) {
		return listFlag | whole
	}
	lists[*n] = arg
	*n++
	return listFlag
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// Request directive flags (RFC 9111 §5.2.1, RFC 5861 §4).
const (
	qcNoCache uint32 = 1 << iota
	qcNoStore
	qcOnlyIfCached
	qcMaxAge
	qcMaxStale
	qcMaxStaleAny
	qcMinFresh
	qcSIE
)

// reqDirectives is the parsed Cache-Control of a request.
type reqDirectives struct {
	flags    uint32
	maxAge   int64
	maxStale int64
	minFresh int64
	sie      int64
}

func (d *reqDirectives) has(f uint32) bool { return d.flags&f != 0 }

// parse adds the directives of one request Cache-Control line. An invalid
// max-age is read as max-age=0 (revalidate), the conservative choice; an
// invalid max-stale, min-fresh or stale-if-error is ignored.
func (d *reqDirectives) parse(v []byte) {
	it := ccIter{v: v}
	for {
		name, arg, hasArg, ok := it.next()
		if !ok {
			return
		}
		switch len(name) {
		case 7:
			if httpwire.EqualFold(name, "max-age") {
				firstDelta(&d.flags, qcMaxAge, &d.maxAge, arg, true)
			}
		case 8:
			if httpwire.EqualFold(name, "no-cache") {
				d.flags |= qcNoCache
			} else if httpwire.EqualFold(name, "no-store") {
				d.flags |= qcNoStore
			}
		case 9:
			if httpwire.EqualFold(name, "max-stale") && !d.has(qcMaxStale|qcMaxStaleAny) {
				if !hasArg {
					d.flags |= qcMaxStaleAny
				} else if n, ok := parseDelta(arg); ok {
					d.flags |= qcMaxStale
					d.maxStale = n
				}
			} else if httpwire.EqualFold(name, "min-fresh") {
				firstDelta(&d.flags, qcMinFresh, &d.minFresh, arg, false)
			}
		case 14:
			if httpwire.EqualFold(name, "only-if-cached") {
				d.flags |= qcOnlyIfCached
			} else if httpwire.EqualFold(name, "stale-if-error") {
				firstDelta(&d.flags, qcSIE, &d.sie, arg, false)
			}
		}
	}
}

var monthNames = [12]string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}

var dayNames = [7]string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}

var longDayNames = [7]string{"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}

func parseMonth(b []byte) (time.Month, bool) {
	if len(b) != 3 {
		return 0, false
	}
	for i, m := range monthNames {
		if httpwire.EqualFold(b, m) {
			return time.Month(i + 1), true
		}
	}
	return 0, false
}

func isDayName(b []byte, names []string) bool {
	for _, n := range names {
		if httpwire.EqualFold(b, n) {
			return true
		}
	}
	return false
}

func digits(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// parseClock parses "HH:MM:SS" with two digits each.
func parseClock(b []byte) (h, m, s int, ok bool) {
	if len(b) != 8 || b[2] != ':' || b[5] != ':' {
		return 0, 0, 0, false
	}
	h, ok1 := digits(b[0:2])
	m, ok2 := digits(b[3:5])
	s, ok3 := digits(b[6:8])
	if !ok1 || !ok2 || !ok3 || h > 23 || m > 59 || s > 60 {
		return 0, 0, 0, false
	}
	if s == 60 { // leap second
		s = 59
	}
	return h, m, s, true
}

// parseHTTPDate parses an HTTP-date (RFC 9110 §5.6.7) into Unix seconds. It
// accepts the three formats a recipient must accept: IMF-fixdate, the
// obsolete RFC 850 format and asctime. Names are matched case-insensitively
// as RFC 9111 §4.2 asks of caches; anything else (a "UTC" zone, a two-digit
// year in IMF-fixdate, missing comma, doubled spaces, one-digit hours) is
// invalid, which for Expires means "already expired" (RFC 9111 §5.3).
func parseHTTPDate(b []byte) (int64, bool) {
	b = httpwire.TrimOWS(b)
	var (
		year, day int
		mon       time.Month
		clock     []byte
		ok        bool
	)
	switch {
	case len(b) == 29 && b[3] == ',': // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
		if !isDayName(b[0:3], dayNames[:]) || b[4] != ' ' || b[7] != ' ' || b[11] != ' ' || b[16] != ' ' || b[25] != ' ' || !httpwire.EqualFold(b[26:29], "gmt") {
			return 0, false
		}
		if day, ok = digits(b[5:7]); !ok {
			return 0, false
		}
		if mon, ok = parseMonth(b[8:11]); !ok {
			return 0, false
		}
		if year, ok = digits(b[12:16]); !ok {
			return 0, false
		}
		clock = b[17:25]
	case len(b) == 24 && b[3] == ' ': // asctime: Sun Nov  6 08:49:37 1994
		if !isDayName(b[0:3], dayNames[:]) || b[7] != ' ' || b[10] != ' ' || b[19] != ' ' {
			return 0, false
		}
		if mon, ok = parseMonth(b[4:7]); !ok {
			return 0, false
		}
		d := b[8:10]
		if d[0] == ' ' {
			d = d[1:]
		}
		if day, ok = digits(d); !ok {
			return 0, false
		}
		if year, ok = digits(b[20:24]); !ok {
			return 0, false
		}
		clock = b[11:19]
	default: // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
		c := indexByte(b, ',')
		if c < 6 || !isDayName(b[:c], longDayNames[:]) {
			return 0, false
		}
		r := b[c:]
		if len(r) != 24 || r[1] != ' ' || r[4] != '-' || r[8] != '-' || r[11] != ' ' || r[20] != ' ' || !httpwire.EqualFold(r[21:24], "gmt") {
			return 0, false
		}
		if day, ok = digits(r[2:4]); !ok {
			return 0, false
		}
		if mon, ok = parseMonth(r[5:8]); !ok {
			return 0, false
		}
		if year, ok = digits(r[9:11]); !ok {
			return 0, false
		}
		// RFC 9110 §5.6.7 maps a two-digit year more than 50 years in the
		// future into the past; with no clock at hand, the 1970 pivot that
		// most implementations use gives the same answer until 2020+50.
		if year < 70 {
			year += 2000
		} else {
			year += 1900
		}
		clock = r[12:20]
	}
	if day < 1 || day > 31 {
		return 0, false
	}
	h, m, s, ok := parseClock(clock)
	if !ok {
		return 0, false
	}
	return time.Date(year, mon, day, h, m, s, 0, time.UTC).Unix(), true
}

// opaqueTag returns the opaque-tag of an entity-tag without the weakness
// prefix and the quotes, for weak comparison (RFC 9110 §8.8.3.2). It is
// lenient: an unquoted tag, or a lower-case "w/", compares by its content.
func opaqueTag(t []byte) (tag []byte, weak bool) {
	t = httpwire.TrimOWS(t)
	if len(t) >= 2 && (t[0] == 'W' || t[0] == 'w') && t[1] == '/' {
		t, weak = t[2:], true
	}
	if len(t) >= 2 && t[0] == '"' && t[len(t)-1] == '"' {
		t = t[1 : len(t)-1]
	}
	return t, weak
}

// etagListMatch evaluates If-None-Match (RFC 9110 §13.1.2) against the
// stored ETag with the weak comparison function. "*" matches any stored
// response.
func etagListMatch(list, etag []byte) bool {
	if l := httpwire.TrimOWS(list); len(l) == 1 && l[0] == '*' {
		return true
	}
	if len(etag) == 0 {
		return false
	}
	want, _ := opaqueTag(etag)
	for len(list) > 0 {
		var f []byte
		f, list = httpwire.CutElement(list)
		if got, _ := opaqueTag(f); len(got) > 0 && string(got) == string(want) {
			return true
		}
	}
	return false
}

// strongMatch is the strong comparison of two entity-tags (RFC 9110
// §8.8.3.2), used by If-Range.
func strongMatch(a, b []byte) bool {
	ta, wa := opaqueTag(a)
	tb, wb := opaqueTag(b)
	return !wa && !wb && len(ta) > 0 && string(ta) == string(tb)
}

// parseRange parses a Range field holding exactly one byte range against a
// representation of size n (RFC 9110 §14.1.2) and returns the inclusive
// byte positions. Multiple ranges, other units and unsatisfiable ranges
// report false: the cache then ignores Range and sends the whole
// representation, which RFC 9110 §14.2 permits ("A server MAY ignore the
// Range header field").
func parseRange(v []byte, n int) (first, last int, ok bool) {
	v = httpwire.TrimOWS(v)
	if len(v) < 7 || !httpwire.EqualFold(v[:6], "bytes=") || n <= 0 {
		return 0, 0, false
	}
	v = httpwire.TrimOWS(v[6:])
	if indexByte(v, ',') >= 0 {
		return 0, 0, false
	}
	dash := indexByte(v, '-')
	if dash < 0 {
		return 0, 0, false
	}
	a, b := httpwire.TrimOWS(v[:dash]), httpwire.TrimOWS(v[dash+1:])
	if len(a) == 0 { // suffix-byte-range-spec: -N
		s, okS := digits(b)
		if !okS || s == 0 {
			return 0, 0, false
		}
		if s > n {
			s = n
		}
		return n - s, n - 1, true
	}
	f, okF := digits(a)
	if !okF || f >= n {
		return 0, 0, false
	}
	if len(b) == 0 {
		return f, n - 1, true
	}
	l, okL := digits(b)
	if !okL || l < f {
		return 0, 0, false
	}
	if l >= n {
		l = n - 1
	}
	return f, l, true
}
