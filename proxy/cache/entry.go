package cache

import (
	"math"
	"strconv"
	"sync/atomic"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/internal/httpwire"
)

// entry is one stored response (one variant of one URL).
//
// Everything but the atomics and the links is immutable once the entry is
// published in a shard: concurrent hits read the header block and share the
// body bytes without locks or copies, and an update (a 304, a HEAD) builds a
// new entry instead of editing this one, so a reader holding the old entry
// keeps a consistent view. The bytes are never recycled; the garbage
// collector frees them once the last reader is done.
type entry struct {
	// buf holds, back to back: the primary key, the canonical Vary names,
	// the secondary (Vary) key and the stored header block (status line,
	// Content-Length, fields, CRLF). Offsets below index into it.
	buf []byte
	// body is the stored content, with cap == len so that no append can
	// ever write into it. It usually aliases the tail of buf; after a 304
	// it may alias an older entry's buffer.
	body []byte

	keyEnd, varyEnd, vkeyEnd uint32
	etagOff, etagLen         uint16 // ETag field value inside the block
	lmOff, lmLen             uint16 // Last-Modified field value inside the block

	respTime int64  // response_time, Unix ns
	date     int64  // Date (or response_time), Unix s; If-Modified-Since fallback
	lastMod  int64  // Last-Modified, Unix s; valid when fLastMod
	initAge  int64  // corrected_initial_age, s (RFC 9111 §4.2.3)
	lifetime int64  // freshness_lifetime, s (RFC 9111 §4.2.1)
	deadAt   int64  // Unix ns after which the entry cannot serve any request
	size     int64  // accounted bytes
	hash     uint64 // hash of the primary key (shard and hot slot)

	swr    uint32 // stale-while-revalidate window, s
	sie    uint32 // stale-if-error window, s
	status uint16
	flags  uint16

	// ref is the "recently used" bit of the segmented LRU; hits set it
	// without taking the shard lock, eviction reads and clears it.
	ref atomic.Uint32
	// refreshing is 1 while a background stale-while-revalidate refresh
	// runs, so only one is started per entry.
	refreshing atomic.Uint32

	// Guarded by the shard lock.
	prev, next *entry // LRU list
	alt        *entry // next variant of the same URL
	seg        uint8  // segProbation or segProtected
}

// Entry flags.
const (
	fNoCache          uint16 = 1 << iota // no-cache: validate before every use
	fMustRevalidate                      // must-revalidate: never serve stale
	fSharedRevalidate                    // proxy-revalidate or s-maxage (RFC 9111 §5.2.2.8, §5.2.2.10)
	fLastMod                             // lastMod is valid
	fMarker                              // hit-for-miss marker, no response
	fPublic                              // public
	fSMaxAge                             // s-maxage
)

// entryOverhead is what one entry costs beyond its buf and body: the entry
// struct, the map slot holding its key, and allocator rounding of its two
// allocations. It is charged to the byte budget so that MaxBytes bounds the
// real heap use even for tiny objects (measured in TestMillionURLs).
const entryOverhead = int64(unsafe.Sizeof(entry{})) + 48 + 32

func (e *entry) key() []byte       { return e.buf[:e.keyEnd] }
func (e *entry) vary() []byte      { return e.buf[e.keyEnd:e.varyEnd] }
func (e *entry) vkey() []byte      { return e.buf[e.varyEnd:e.vkeyEnd] }
func (e *entry) block() []byte     { return e.buf[e.vkeyEnd:] }
func (e *entry) isMarker() bool    { return e.flags&fMarker != 0 }
func (e *entry) keyString() string { return unsafe.String(unsafe.SliceData(e.buf), int(e.keyEnd)) }

func (e *entry) etag() []byte {
	if e.etagLen == 0 {
		return nil
	}
	b := e.block()
	return b[e.etagOff : e.etagOff+e.etagLen]
}

func (e *entry) lastModRaw() []byte {
	if e.lmLen == 0 {
		return nil
	}
	b := e.block()
	return b[e.lmOff : e.lmOff+e.lmLen]
}

func (e *entry) hasValidator() bool { return e.etagLen != 0 || e.lmLen != 0 }

// ageNs is current_age (RFC 9111 §4.2.3) in nanoseconds at now:
// corrected_initial_age plus resident_time.
func (e *entry) ageNs(now int64) int64 {
	r := now - e.respTime
	if r < 0 {
		r = 0
	}
	return e.initAge*1e9 + r
}

// ttlNs is the remaining freshness lifetime at now; negative when stale,
// its magnitude being how long the entry has been stale.
func (e *entry) ttlNs(now int64) int64 { return e.lifetime*1e9 - e.ageNs(now) }

// sharedForAuth reports whether e may answer a request with Authorization:
// only when it has public, s-maxage or must-revalidate (RFC 9111 §3.5).
// Without them it was stored for requests without credentials, and the
// origin may answer credentialed ones otherwise.
func (e *entry) sharedForAuth() bool {
	return e.flags&(fPublic|fSMaxAge|fMustRevalidate) != 0
}

// forbidsStale reports whether the response forbids serving it stale
// (RFC 9111 §4.2.4): no-cache, must-revalidate, and for a shared cache
// proxy-revalidate and s-maxage.
func (e *entry) forbidsStale() bool {
	return e.flags&(fNoCache|fMustRevalidate|fSharedRevalidate) != 0
}

// lastModifiedOrDate is the date If-Modified-Since is compared with: the
// stored Last-Modified, else its Date, else the time it was received
// (RFC 9111 §4.3.2).
func (e *entry) lastModifiedOrDate() int64 {
	if e.flags&fLastMod != 0 {
		return e.lastMod
	}
	return e.date
}

// kv is one header field line; both slices alias storage owned by someone
// else (a fasthttp header or a stored block) and live only during one call.
type kv struct{ k, v []byte }

// Metadata flags found while scanning a response.
const (
	mDate uint32 = 1 << iota
	mExpires
	mExpiresBad
	mLastMod
	mAge
	mSetCookie
	mContentRange
	mContentLength
)

// respMeta is what the cache needs from a response's header fields.
type respMeta struct {
	cc            respDirectives
	has           uint32
	date          int64
	expires       int64
	lastMod       int64
	age           int64
	contentLength int64
	etag          []byte
	lastModRaw    []byte
	vary          [8][]byte
	nVary         int
	conn          [4][]byte // Connection field lines (RFC 9110 §7.6.1)
	nConn         int
	connAll       []kv                // every field, when there are more Connection lines than conn holds
	cdn           [maxCDNLines][]byte // CDN-Cache-Control field lines (RFC 9213)
	nCDN          int
}

// analyze fills m from the field lines. The first of repeated singleton
// fields wins; an unparsable Expires means "already expired" (RFC 9111
// §5.3); an invalid Age or Date is ignored (RFC 9111 §5.1, RFC 9110 §6.6.1).
func (m *respMeta) analyze(fields []kv) {
	for i := range fields {
		k, v := fields[i].k, fields[i].v
		switch len(k) {
		case 3:
			if httpwire.EqualFold(k, "age") && m.has&mAge == 0 {
				// RFC 9111 §5.1: use the first member of a list; ignore
				// anything that is not a non-negative integer.
				f := v
				if j := indexByte(f, ','); j >= 0 {
					f = f[:j]
				}
				m.has |= mAge // later lines are ignored even if this is invalid
				if n, ok := parseDelta(httpwire.TrimOWS(f)); ok {
					m.age = n
				}
			}
		case 4:
			switch {
			case httpwire.EqualFold(k, "date"):
				if m.has&mDate == 0 {
					if t, ok := parseHTTPDate(v); ok {
						m.has |= mDate
						m.date = t
					}
				}
			case httpwire.EqualFold(k, "etag"):
				if m.etag == nil {
					m.etag = v
				}
			case httpwire.EqualFold(k, "vary"):
				if m.nVary < len(m.vary) {
					m.vary[m.nVary] = v
					m.nVary++
				} else {
					m.vary[len(m.vary)-1] = starField // too many lines: refuse
				}
			}
		case 7:
			if httpwire.EqualFold(k, "expires") && m.has&mExpires == 0 {
				m.has |= mExpires
				if t, ok := parseHTTPDate(v); ok {
					m.expires = t
				} else {
					m.has |= mExpiresBad
				}
			}
		case 10:
			if httpwire.EqualFold(k, "set-cookie") {
				m.has |= mSetCookie
			} else if httpwire.EqualFold(k, "connection") {
				if m.nConn < len(m.conn) {
					m.conn[m.nConn] = v
					m.nConn++
				} else {
					m.connAll = fields // see connectionListed
				}
			}
		case 11:
			if httpwire.EqualFold(k, "set-cookie2") {
				m.has |= mSetCookie
			}
		case 13:
			switch {
			case httpwire.EqualFold(k, "cache-control"):
				m.cc.parse(v)
			case httpwire.EqualFold(k, "last-modified"):
				if m.has&mLastMod == 0 {
					if t, ok := parseHTTPDate(v); ok {
						m.has |= mLastMod
						m.lastMod = t
						m.lastModRaw = v
					}
				}
			case httpwire.EqualFold(k, "content-range"):
				m.has |= mContentRange
			}
		case 14:
			if httpwire.EqualFold(k, "content-length") {
				if n, ok := parseDelta(v); ok {
					m.has |= mContentLength
					m.contentLength = n
				}
			}
		case 17:
			if httpwire.EqualFold(k, "cdn-cache-control") {
				if m.nCDN < len(m.cdn) {
					m.cdn[m.nCDN] = v
				}
				m.nCDN++
			}
		}
	}
	if m.nCDN > len(m.cdn) {
		// More lines than are kept: what the dropped ones say is unknown,
		// and following Cache-Control (meant for other caches) could store
		// what the origin told this one not to. Store nothing.
		m.cc.flags |= rcNoStore
	} else if m.nCDN > 0 {
		// RFC 9213 §2.1: a valid, non-empty CDN-Cache-Control replaces
		// Cache-Control and Expires for this cache.
		if d, ok := targeted(m.cdn[:m.nCDN]); ok {
			m.cc = d
			m.has &^= mExpires | mExpiresBad
		}
	}
}

var starField = []byte("*")

// hopByHop reports the fields RFC 9110 §7.6.1 reserves for one connection;
// a cache must not store them (RFC 9111 §3.1) and they must not reach the
// client from the backend connection.
//
// The list is httpwire.IsHopByHop's, with two differences kept from before the
// wire code had one package: HTTP2-Settings (an h2c request field) is not in
// it, and Proxy-Authentication-Info (RFC 9110 §11.7.3, meant for the next
// client only) is. The proxy's uncached path still forwards the latter.
func hopByHop(k []byte) bool {
	if httpwire.IsHopByHop(k) {
		return len(k) != len("http2-settings") || !httpwire.EqualFold(k, "http2-settings")
	}
	return len(k) == len("proxy-authentication-info") && httpwire.EqualFold(k, "proxy-authentication-info")
}

// connectionListed reports whether a Connection field names k.
func (m *respMeta) connectionListed(k []byte) bool {
	if m.connAll != nil {
		// More Connection lines than m.conn holds (a hostile backend):
		// look at every one of them, the slow way.
		for i := range m.connAll {
			if f := m.connAll[i]; httpwire.EqualFold(f.k, "connection") && httpwire.ListHas(f.v, k) {
				return true
			}
		}
		return false
	}
	return m.nConn > 0 && listsField(m.conn[:m.nConn], k)
}

// storedField reports whether field k of the response goes into the stored
// block. Besides the hop-by-hop fields it drops Age and Content-Length
// (recomputed when served), fields named by a qualified no-cache or private
// directive (RFC 9111 §5.2.2.4, §5.2.2.7: a shared cache must not reuse
// them without revalidation, or store them at all) and Set-Cookie, which
// reaches the store only when the policy allows caching responses that set
// cookies: a cookie meant for one client is never replayed to others.
func (m *respMeta) storedField(k []byte) bool {
	if hopByHop(k) || m.connectionListed(k) {
		return false
	}
	switch len(k) {
	case 3:
		if httpwire.EqualFold(k, "age") {
			return false
		}
	case 10:
		if httpwire.EqualFold(k, "set-cookie") {
			return false
		}
	case 11:
		if httpwire.EqualFold(k, "set-cookie2") {
			return false
		}
	case 14:
		if httpwire.EqualFold(k, "content-length") {
			return false
		}
	}
	if m.cc.nNoCache > 0 && listsField(m.cc.noCacheFields[:m.cc.nNoCache], k) {
		return false
	}
	if m.cc.nPrivate > 0 && listsField(m.cc.privateFields[:m.cc.nPrivate], k) {
		return false
	}
	return true
}

// forwardedField reports whether field k of a backend response is passed to
// the client: everything but the connection-specific fields and the framing
// fields fasthttp writes itself.
func (m *respMeta) forwardedField(k []byte) bool {
	if hopByHop(k) || m.connectionListed(k) {
		return false
	}
	return !(len(k) == 14 && httpwire.EqualFold(k, "content-length"))
}

// bodyAllowed reports whether a response with this status carries content
// and so a Content-Length (RFC 9110 §6.4.1, §8.6).
func bodyAllowed(status int) bool {
	return status >= 200 && status != fasthttp.StatusNoContent && status != fasthttp.StatusNotModified
}

// blockInfo locates the validators inside a built block.
type blockInfo struct {
	etagOff, etagLen, lmOff, lmLen int
}

// appendBlock appends a complete HTTP/1.1 response header block for status,
// the fields keep selects, and a Content-Length of contentLength (omitted
// when negative or when the status has no content). The Content-Length
// matters beyond framing: without it fasthttp's parser would mark the
// connection for closing.
func appendBlock(dst []byte, status int, reason []byte, fields []kv, keep func(*respMeta, []byte) bool, m *respMeta, contentLength int64) ([]byte, blockInfo) {
	var bi blockInfo
	start := len(dst)
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	if len(reason) == 0 {
		reason = s2b(fasthttp.StatusMessage(status))
	}
	dst = append(dst, reason...)
	dst = append(dst, "\r\n"...)
	if contentLength >= 0 && bodyAllowed(status) {
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, contentLength, 10)
		dst = append(dst, "\r\n"...)
	}
	for i := range fields {
		k, v := fields[i].k, fields[i].v
		if !keep(m, k) {
			continue
		}
		dst = append(dst, k...)
		dst = append(dst, ": "...)
		off := len(dst) - start
		dst = append(dst, v...)
		dst = append(dst, "\r\n"...)
		switch {
		case bi.etagLen == 0 && httpwire.EqualFold(k, "etag") && len(v) > 0:
			bi.etagOff, bi.etagLen = off, len(v)
		case bi.lmLen == 0 && httpwire.EqualFold(k, "last-modified") && len(v) > 0:
			bi.lmOff, bi.lmLen = off, len(v)
		}
	}
	dst = append(dst, "\r\n"...)
	return dst, bi
}

func s2b(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// blockFields splits a block built by appendBlock back into its status and
// field lines (skipping Content-Length), appending them to dst. It is used to
// merge a stored response with the fields of a 304 or HEAD response.
func blockFields(dst []kv, block []byte) (fields []kv, status int) {
	i := indexByte(block, '\n')
	if i < 0 {
		return dst, 0
	}
	line := block[:i]
	if len(line) >= 12 {
		status, _ = digits(line[9:12])
	}
	block = block[i+1:]
	for {
		i = indexByte(block, '\n')
		if i <= 1 {
			return dst, status
		}
		line = block[:i-1] // drop CR
		block = block[i+1:]
		c := indexByte(line, ':')
		if c <= 0 {
			continue
		}
		k, v := line[:c], httpwire.TrimOWS(line[c+1:])
		if httpwire.EqualFold(k, "content-length") {
			continue
		}
		dst = append(dst, kv{k, v})
	}
}

// heuristicStatus reports the status codes RFC 9110 §15.1 defines as
// heuristically cacheable, except 206, which this cache does not store (it
// has no support for combining partial content).
func heuristicStatus(status int) bool {
	switch status {
	case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// understoodStatus is the set of final status codes whose caching semantics
// this cache implements, consulted for must-understand (RFC 9111 §5.2.2.3).
func understoodStatus(status int) bool {
	switch status {
	case 200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 451, 501:
		return true
	}
	return false
}

// heuristicCap bounds heuristic freshness. RFC 9111 §4.2.2 suggests 10% of
// the time since Last-Modified; without a cap a file untouched for ten years
// would be fresh for a year, so floodgate caps it at one day.
const heuristicCap = 24 * 60 * 60

// markerTTL is how long a hit-for-miss marker keeps requests for a URL whose
// last response was not storable from queueing behind one another.
const markerTTL = 30 * 1e9

// freshness computes corrected_initial_age and freshness_lifetime in
// seconds (RFC 9111 §4.2.1 - §4.2.3) for a response received at respTime
// for a request sent at reqTime (both Unix ns). explicit reports whether the
// lifetime came from s-maxage, max-age or Expires.
func (m *respMeta) freshness(status int, reqTime, respTime int64, p *Policy) (initAge, lifetime int64, explicit bool) {
	initAge, lifetime, explicit = m.rawFreshness(status, reqTime, respTime, p)
	// Dates far in the past or future would overflow nanosecond arithmetic;
	// 2^31 seconds is "forever" for a cache anyway (RFC 9111 §1.2.2).
	return min(initAge, maxDelta), min(lifetime, maxDelta), explicit
}

func (m *respMeta) rawFreshness(status int, reqTime, respTime int64, p *Policy) (initAge, lifetime int64, explicit bool) {
	respSec := respTime / 1e9
	date := respSec
	if m.has&mDate != 0 {
		date = m.date
	}
	apparent := respSec - date
	if apparent < 0 {
		apparent = 0
	}
	delay := (respTime - reqTime) / 1e9
	if delay < 0 {
		delay = 0
	}
	corrected := m.age + delay
	initAge = max(apparent, corrected)

	switch {
	case m.cc.has(rcSMaxAge): // RFC 9111 §4.2.1: s-maxage first for a shared cache
		return initAge, m.cc.sMaxAge, true
	case m.cc.has(rcMaxAge):
		return initAge, m.cc.maxAge, true
	case m.has&mExpires != 0:
		if m.has&mExpiresBad != 0 {
			return initAge, 0, true
		}
		return initAge, max(0, m.expires-date), true
	}
	if !heuristicStatus(status) && !m.cc.has(rcPublic) {
		return initAge, 0, false
	}
	if p.defaultTTL > 0 {
		return initAge, p.defaultTTL, false
	}
	if m.has&mLastMod != 0 && date > m.lastMod {
		return initAge, min((date-m.lastMod)/10, heuristicCap), false
	}
	return initAge, 0, false
}

// buildEntry makes a publishable entry. The block is copied; the body is
// copied too unless share is true, in which case body must already be
// immutable (it is another entry's body).
func buildEntry(key, vary, vkey, block []byte, bi blockInfo, body []byte, share bool) *entry {
	n := len(key) + len(vary) + len(vkey) + len(block)
	if !share {
		n += len(body)
	}
	buf := make([]byte, 0, n)
	buf = append(buf, key...)
	buf = append(buf, vary...)
	buf = append(buf, vkey...)
	vkeyEnd := len(buf)
	buf = append(buf, block...)
	e := &entry{
		keyEnd:  uint32(len(key)),
		varyEnd: uint32(len(key) + len(vary)),
		vkeyEnd: uint32(vkeyEnd),
	}
	if bi.etagLen > 0 && bi.etagOff+bi.etagLen <= math.MaxUint16 {
		e.etagOff, e.etagLen = uint16(bi.etagOff), uint16(bi.etagLen)
	}
	if bi.lmLen > 0 && bi.lmOff+bi.lmLen <= math.MaxUint16 {
		e.lmOff, e.lmLen = uint16(bi.lmOff), uint16(bi.lmLen)
	}
	if share {
		e.buf = buf
		e.body = body[:len(body):len(body)]
	} else {
		hdrEnd := len(buf)
		buf = append(buf, body...)
		e.buf = buf[:hdrEnd:hdrEnd]
		e.body = buf[hdrEnd:len(buf):len(buf)]
	}
	e.size = int64(cap(buf)) + entryOverhead
	if share {
		e.size += int64(len(body))
	}
	return e
}

// staleGrace is how long, in seconds, an entry without a validator or a
// stale-* window is kept once stale: long enough for a client's max-stale
// or a HEAD response to still find it (RFC 9111 §4.2.4, §4.3.5), short
// enough that dead entries do not crowd the budget.
const staleGrace = 60

// setTiming fills the freshness fields of e and its death time: the
// moment after which neither freshness, stale-while-revalidate,
// stale-if-error, degraded-mode max_stale nor staleGrace can use it. An
// entry with a validator never dies on its own: it can always be
// revalidated, and the LRU removes it when the space is needed.
func (e *entry) setTiming(m *respMeta, status int, reqTime, respTime int64, initAge, lifetime int64, p *Policy) {
	e.status = uint16(status)
	e.respTime = respTime
	e.initAge = initAge
	e.lifetime = lifetime
	e.date = respTime / 1e9
	if m.has&mDate != 0 {
		e.date = m.date
	}
	if m.has&mLastMod != 0 {
		e.flags |= fLastMod
		e.lastMod = m.lastMod
	}
	if m.cc.has(rcNoCache) {
		e.flags |= fNoCache
	}
	if m.cc.has(rcMustRevalidate) {
		e.flags |= fMustRevalidate
	}
	if m.cc.has(rcProxyRevalidate | rcSMaxAge) {
		e.flags |= fSharedRevalidate
	}
	if m.cc.has(rcPublic) {
		e.flags |= fPublic
	}
	if m.cc.has(rcSMaxAge) {
		e.flags |= fSMaxAge
	}
	if m.cc.has(rcSWR) {
		e.swr = uint32(min(m.cc.swr, math.MaxUint32))
	}
	if m.cc.has(rcSIE) {
		e.sie = uint32(min(m.cc.sie, math.MaxUint32))
	}
	if e.hasValidator() {
		e.deadAt = math.MaxInt64
		return
	}
	keep := max(int64(e.swr), int64(e.sie), p.maxStale, staleGrace)
	e.deadAt = respTime + (lifetime-initAge+keep)*1e9
}
