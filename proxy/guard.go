package proxy

import (
	"errors"
	"hash/maphash"
	"math"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/time/rate"

	"github.com/floodgate/floodgate/internal/httpwire"
	"github.com/floodgate/floodgate/internal/limits"
)

// The checks a request passes before it may reach a backend: refusal of an
// over-limit head, the redirect to HTTPS, and the per-route access control and
// rate limiting.

// clientIP returns the address a request is attributed to: the peer, or, when the
// peer is a trusted proxy, the rightmost X-Forwarded-For element that is not
// itself a trusted proxy (the first hop we cannot vouch for). Every line and every
// comma-separated element is walked, from the last line's last element leftwards:
// everything left of the first untrusted hop could have been written by the
// client and is not believed. An element that is not an address (with or
// without a port, IPv6 in brackets or not) is that first untrusted hop: the
// client is then unknown, the invalid netip.Addr, which no allow list admits and
// all such requests share in a rate limit. When every element is trusted, the
// leftmost is the client.
func clientIP(peer net.Addr, raw []byte, trusted []netip.Prefix) netip.Addr {
	ip := peerIP(peer)
	if len(trusted) == 0 || !inPrefixes(ip, trusted) {
		return ip
	}
	return forwardedClient(ip, raw, trusted)
}

// forwardedClient walks the X-Forwarded-For lines of raw from the last one up
// (see clientIP); ip is the trusted peer.
func forwardedClient(ip netip.Addr, raw []byte, trusted []netip.Prefix) netip.Addr {
	end := len(raw)
	for end > 0 {
		// The line before end: raw[start:end] without its line ending.
		for end > 0 && (raw[end-1] == '\n' || raw[end-1] == '\r') {
			end--
		}
		start := end
		for start > 0 && raw[start-1] != '\n' {
			start--
		}
		line := raw[start:end]
		end = start
		if len(line) < len("x-forwarded-for:") || line[15] != ':' || !httpwire.EqualFold(line[:15], "x-forwarded-for") {
			continue
		}
		v := line[16:]
		for {
			j := len(v) - 1
			for j >= 0 && v[j] != ',' {
				j--
			}
			a, ok := httpwire.ParseHop(httpwire.TrimOWS(v[j+1:]))
			if !ok {
				return netip.Addr{}
			}
			if !inPrefixes(a, trusted) {
				return a
			}
			ip = a
			if j < 0 {
				break
			}
			v = v[:j]
		}
	}
	return ip
}

func peerIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

func inPrefixes(ip netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// acl is a route's allow and deny lists. Deny wins; a non-empty allow list admits
// only what it contains.
type acl struct {
	allow, deny []netip.Prefix
}

func (a *acl) admits(ip netip.Addr) bool {
	if inPrefixes(ip, a.deny) {
		return false
	}
	return len(a.allow) == 0 || inPrefixes(ip, a.allow)
}

// RateLimitSpec configures a route's rate limit.
type RateLimitSpec struct {
	Header  string  // "" limits per client IP; else per value of this request header
	Rate    float64 // requests per second
	Burst   int
	MaxKeys int // bound on the number of keys tracked; 0 = limits.DefaultMaxKeys
}

// limiterShards spreads keys over independently locked shards, so concurrent
// requests from different clients rarely contend.
const limiterShards = 64

// limiter is a bounded table of token buckets, one per key. It holds at most
// MaxKeys keys: when a shard is full, the least recently used of a few sampled
// entries is evicted (Redis's approximated LRU), so an attacker rotating through
// millions of addresses costs a bounded amount of memory and only ever evicts
// idle or other attacking keys first. Header values are the client's choice, up
// to the header limit (16 KiB by default): those longer than maxKeyBytes are
// kept as a 128-bit keyed hash, so every key costs at most maxKeyBytes and a
// route's table at most MaxKeys of them. The per-request path allocates nothing
// for a known key; a new key allocates its entry.
type limiter struct {
	spec     RateLimitSpec
	perShard int
	seed     maphash.Seed
	long     [2]maphash.Seed // for the hash of long keys
	shards   [limiterShards]limiterShard
	evicted  atomic.Uint64
}

// maxKeyBytes is the longest header value a limiter stores as it is.
const maxKeyBytes = 64

type limiterShard struct {
	mu   sync.Mutex
	ips  map[netip.Addr]*bucket
	strs map[string]*bucket    // header values up to maxKeyBytes
	long map[[2]uint64]*bucket // longer header values, by keyed hash
}

type bucket struct {
	lim      *rate.Limiter
	lastSeen int64 // unix nanos
}

func newLimiter(spec RateLimitSpec) *limiter {
	spec = newLimiterSpec(spec)
	l := &limiter{spec: spec, perShard: max(1, spec.MaxKeys/limiterShards), seed: maphash.MakeSeed(),
		long: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
	for i := range l.shards {
		l.shards[i].ips = make(map[netip.Addr]*bucket)
		l.shards[i].strs = make(map[string]*bucket)
		l.shards[i].long = make(map[[2]uint64]*bucket)
	}
	return l
}

// allowIP takes a token for ip.
func (l *limiter) allowIP(ip netip.Addr, now time.Time) bool {
	b16 := ip.As16()
	sh := &l.shards[maphash.Bytes(l.seed, b16[:])%limiterShards]
	return allowIn(l, sh, sh.ips, ip, now)
}

// allowKey takes a token for a header value. It indexes its map itself rather
// than through allowIn: m[string(key)] converts without allocating only where
// the conversion is written inside the index expression.
func (l *limiter) allowKey(key []byte, now time.Time) bool {
	if len(key) > maxKeyBytes {
		return l.allowLong([2]uint64{maphash.Bytes(l.long[0], key), maphash.Bytes(l.long[1], key)}, now)
	}
	sh := &l.shards[maphash.Bytes(l.seed, key)%limiterShards]
	sh.mu.Lock()
	b := sh.strs[string(key)]
	if b == nil {
		b = l.newBucketLocked(sh, now)
		sh.strs[string(key)] = b
	}
	return b.takeUnlock(sh, now)
}

// allowLong takes a token for a long header value, by its hash. The hash is
// keyed with seeds drawn at start, so a client cannot choose values that
// collide with another client's.
func (l *limiter) allowLong(h [2]uint64, now time.Time) bool {
	sh := &l.shards[h[0]%limiterShards]
	return allowIn(l, sh, sh.long, h, now)
}

// allowIn takes a token for k from m, one of sh's tables.
func allowIn[K comparable](l *limiter, sh *limiterShard, m map[K]*bucket, k K, now time.Time) bool {
	sh.mu.Lock()
	b := m[k]
	if b == nil {
		b = l.newBucketLocked(sh, now)
		m[k] = b
	}
	return b.takeUnlock(sh, now)
}

// newBucketLocked makes room in sh for one more key and returns a full bucket.
func (l *limiter) newBucketLocked(sh *limiterShard, now time.Time) *bucket {
	l.evictLocked(sh, now)
	return &bucket{lim: rate.NewLimiter(rate.Limit(l.spec.Rate), l.spec.Burst)}
}

// takeUnlock marks b seen, releases sh's lock (held by the caller, which found
// b under it) and takes a token: the limiter has its own lock.
func (b *bucket) takeUnlock(sh *limiterShard, now time.Time) bool {
	b.lastSeen = now.UnixNano()
	sh.mu.Unlock()
	return b.lim.AllowN(now, 1)
}

// evictLocked makes room for one more key in a full shard: among a few entries
// of each table (Go's map iteration order is randomised, which makes this a
// random sample) the least recently seen goes.
func (l *limiter) evictLocked(sh *limiterShard, now time.Time) {
	if len(sh.ips)+len(sh.strs)+len(sh.long) < l.perShard {
		return
	}
	var oldIP netip.Addr
	var oldKey string
	var oldLong [2]uint64
	const inIPs, inStrs, inLong = 1, 2, 3
	oldest, from := int64(math.MaxInt64), 0
	if k, seen, ok := sampleOldest(sh.ips, oldest); ok {
		oldest, oldIP, from = seen, k, inIPs
	}
	if k, seen, ok := sampleOldest(sh.strs, oldest); ok {
		oldest, oldKey, from = seen, k, inStrs
	}
	if k, _, ok := sampleOldest(sh.long, oldest); ok {
		oldLong, from = k, inLong
	}
	switch from {
	case inIPs:
		delete(sh.ips, oldIP)
	case inStrs:
		delete(sh.strs, oldKey)
	case inLong:
		delete(sh.long, oldLong)
	}
	l.evicted.Add(1)
}

// sampleOldest returns, among the first few entries of m in Go's randomised
// iteration order, the one least recently seen and when, if that was before
// oldest; ok is false when none was.
func sampleOldest[K comparable](m map[K]*bucket, oldest int64) (key K, seen int64, ok bool) {
	const sample = 8
	n := 0
	for k, b := range m {
		if b.lastSeen < oldest {
			oldest, key, ok = b.lastSeen, k, true
		}
		if n++; n == sample {
			break
		}
	}
	return key, oldest, ok
}

// keys returns the number of keys tracked.
func (l *limiter) keys() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.ips) + len(sh.strs) + len(sh.long)
		sh.mu.Unlock()
	}
	return n
}

// keyBytes returns the bytes of header values the limiter holds as keys: at
// most maxKeyBytes each (a hashed key counts its 16 bytes).
func (l *limiter) keyBytes() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		for k := range sh.strs {
			n += len(k)
		}
		n += 16 * len(sh.long)
		sh.mu.Unlock()
	}
	return n
}

// retryAfter is the Retry-After value for a refused request: the time one token
// takes to come back, at least one second.
func (l *limiter) retryAfter() int {
	return max(1, int(math.Ceil(1/l.spec.Rate)))
}

// limiterLocked returns the limiter of a route, reusing the one in service when
// its settings are unchanged, so that a reload does not hand every client a
// fresh burst; else a new one, which Swap records. It writes nothing. s.upMu
// must be held.
func (s *Server) limiterLocked(route string, spec RateLimitSpec) *limiter {
	if l := s.limiters[route]; l != nil && l.spec == normalizedSpec(spec) {
		return l
	}
	return newLimiter(spec)
}

func normalizedSpec(spec RateLimitSpec) RateLimitSpec {
	return newLimiterSpec(spec)
}

// rateLimitProblems checks a spec whose defaults are filled in with
// limits.CheckRateLimit, the rule of the config file's rate_limit sections.
func rateLimitProblems(spec RateLimitSpec) error {
	ps := limits.CheckRateLimit(spec.Header, spec.Rate, spec.Burst, spec.MaxKeys)
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// newLimiterSpec applies RateLimitSpec's defaults.
func newLimiterSpec(spec RateLimitSpec) RateLimitSpec {
	if spec.MaxKeys <= 0 {
		spec.MaxKeys = limits.DefaultMaxKeys
	}
	if spec.Burst <= 0 {
		spec.Burst = limits.DefaultBurst(spec.Rate)
	}
	return spec
}

// limitKey returns the value of the rate limit's header field in a raw header
// block, ignoring the name's case (names are forwarded as sent, so fasthttp's own
// lookup would be case-sensitive); nil when absent. ok is false when the field is
// there more than once, also under a name with underscores for dashes, which
// CGI-style backends (PHP, WSGI, Rack) merge with it, or when a Connection field
// names it, so that it is removed on the way: the backend would then use
// another value (or none) than the one counted, so such a request is refused.
func limitKey(raw []byte, name string) (value []byte, ok bool) {
	n := 0
	for it := httpwire.Fields(raw); ; {
		k, v, more := it.Next()
		if !more {
			return value, n <= 1
		}
		if len(k) == len(name) && httpwire.EqualFoldDash(k, name) {
			value = v
			n++
		} else if httpwire.EqualFold(k, "connection") && httpwire.HasTokenDash(v, name) {
			return nil, false
		}
	}
}

// refuseHead answers a request head that is over a limit (414, 431) and closes
// the connection.
func refuseHead(ctx *fasthttp.RequestCtx, status int) {
	ctx.Response.Reset()
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.Response.SetBodyString(strconv.Itoa(status) + " " + fasthttp.StatusMessage(status) + "\n")
	ctx.SetConnectionClose()
}

// redirectHTTPS answers 308 Permanent Redirect (method and body kept, unlike 301)
// to the https:// form of the request.
func redirectHTTPS(ctx *fasthttp.RequestCtx, port int) {
	h := &ctx.Request.Header
	b := append(make([]byte, 0, 128), "https://"...)
	b = append(b, httpwire.HostOnly(h.Host())...)
	if port != 0 && port != 443 {
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(port), 10)
	}
	b = append(b, h.RequestURI()...)
	ctx.Response.Reset()
	ctx.SetStatusCode(fasthttp.StatusPermanentRedirect)
	ctx.Response.Header.SetBytesV("Location", b)
}

// guard applies a route's access list and rate limit; it answers and returns false
// when the request may not go on.
func (s *Server) guard(ctx *fasthttp.RequestCtx, rt *route, now time.Time, info *reqInfo) bool {
	ip := clientIP(ctx.RemoteAddr(), ctx.Request.Header.RawHeaders(), s.opts.TrustedProxies)
	info.client, info.clientKnown = ip, true
	if rt.acl != nil && !rt.acl.admits(ip) {
		rt.stats.denied.Add(1)
		writeError(ctx, rt.name, ErrForbidden)
		return false
	}
	if l := rt.limit; l != nil {
		var ok bool
		if l.spec.Header == "" {
			ok = l.allowIP(limitIP(ip), now)
		} else {
			key, single := limitKey(ctx.Request.Header.RawHeaders(), l.spec.Header)
			if !single {
				badRequest(ctx)
				return false
			}
			ok = l.allowKey(key, now)
		}
		if !ok {
			rt.stats.rateLimited.Add(1)
			writeError(ctx, rt.name, ErrRateLimited)
			ctx.Response.Header.Set("Retry-After", strconv.Itoa(l.retryAfter()))
			return false
		}
	}
	return true
}

// limitIP is the rate-limit key of a client address: an IPv4 address, or the /64
// of an IPv6 one. Any IPv6 client can use every address of its /64 (the smallest
// prefix delegated to a network), so counting per address would give it 2^64
// buckets.
func limitIP(ip netip.Addr) netip.Addr {
	if ip.Is6() {
		b := ip.As16()
		clear(b[8:])
		return netip.AddrFrom16(b)
	}
	return ip
}
