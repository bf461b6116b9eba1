package cache

import (
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Options configures a Cache. The zero value is not usable: MaxBytes must be
// positive.
type Options struct {
	// MaxBytes is the byte budget shared by every route: keys, stored
	// header blocks, bodies and a fixed per-entry overhead for the index
	// structures are all charged to it. Required, > 0.
	MaxBytes int64
	// Now returns the current time. nil means time.Now; tests inject a
	// clock. It is called once per request served from the cache and once
	// more after each backend fetch (RFC 9111 §4.2.3 needs the time the
	// response arrived).
	Now func() time.Time
	// CoalesceWait is how long a request that misses while another request
	// is already fetching the same key waits for that fetch before going to
	// the backend itself. Zero means 5s; negative disables collapsing.
	CoalesceWait time.Duration
	// Logger receives background failures (revalidation errors) at debug
	// level. nil discards.
	Logger *slog.Logger
	// ErrorHandler writes the response when a backend fetch fails and no
	// stored response may be used instead. nil writes 504 Gateway Timeout
	// for timeouts and 502 Bad Gateway for anything else. The proxy passes
	// its own so that error-to-status mapping stays in one place.
	ErrorHandler func(ctx *fasthttp.RequestCtx, err error)
	// Forwarded gives the request as the backend receives it, for Vary
	// (RFC 9111 §4.1 matches the fields of the request that was sent). nil
	// means the proxy forwards every field as received.
	Forwarded Forwarded
}

// Forwarded appends to dst the value the backend receives for the request
// field name (lower case) of ctx's request, when the proxy adds, replaces or
// removes that field on the way (X-Forwarded-For, hop-by-hop fields, ...):
// present false means the backend receives no such field. handled false
// means the field is forwarded as the client sent it. It is called on the
// request's goroutine, only for names a stored response's Vary lists, and
// must not allocate.
type Forwarded func(ctx *fasthttp.RequestCtx, name, dst []byte) (value []byte, present, handled bool)

// Stats is a snapshot of the cache's counters.
type Stats struct {
	Bytes       int64  // accounted bytes, always <= MaxBytes
	Objects     int64  // stored responses (all variants, all routes)
	Hits        uint64 // Result counts since New, over all routes
	Misses      uint64
	Stale       uint64 // includes ServeStale answers
	Revalidated uint64
	Bypass      uint64
	Evicted     uint64 // entries evicted to make room
	Expired     uint64 // dead entries removed by the sweeper
}

// Cache is an RFC 9111 shared HTTP cache for the proxy. All methods are safe
// for concurrent use. A Cache must be created with New and must not be
// copied; call Close to stop its background work.
type Cache struct {
	shards [numShards]shard

	max       int64
	bytes     atomic.Int64
	objects   atomic.Int64
	evicted   atomic.Uint64
	expired   atomic.Uint64
	evictNext atomic.Uint32

	purgeGen atomic.Uint64             // see genOf
	keyGen   [genStripes]atomic.Uint64 // see genOf

	seed     maphash.Seed
	now      func() time.Time
	coalesce time.Duration
	log      *slog.Logger
	onError  func(ctx *fasthttp.RequestCtx, err error)
	fwdView  Forwarded

	// hot maps a hash of the primary key to a recently hit entry that is
	// alone in its variant chain, so a hit on a popular URL needs no
	// lock at all (see hotLookup).
	hot [hotSlots]atomic.Pointer[entry]

	routesMu sync.Mutex
	routes   map[string]*routeStats // never shrinks: counters stay monotonic across reloads

	bgMu     sync.Mutex
	closed   bool
	bg       sync.WaitGroup // background refreshes
	bgSlots  chan struct{}  // bounds concurrent background refreshes
	sweeping sync.WaitGroup
	stop     chan struct{}

	// onWait, when set by tests, is called when a request starts waiting
	// for another request's fetch.
	onWait func()
}

// sweepInterval is how often the background sweeper removes dead entries.
const sweepInterval = time.Second

// maxBackgroundRefreshes bounds concurrent stale-while-revalidate refreshes;
// beyond it stale responses are still served and a later request retries.
const maxBackgroundRefreshes = 64

// ErrInvalidOptions reports unusable Options.
var ErrInvalidOptions = errors.New("cache: invalid options")

// New builds a Cache and starts its expiry sweeper. It fails when MaxBytes
// is not positive. Its metrics are exported by Collector.
func New(opts Options) (*Cache, error) {
	if opts.MaxBytes <= 0 {
		return nil, fmt.Errorf("%w: MaxBytes must be > 0, got %d", ErrInvalidOptions, opts.MaxBytes)
	}
	c := &Cache{
		max:      opts.MaxBytes,
		seed:     maphash.MakeSeed(),
		now:      opts.Now,
		coalesce: opts.CoalesceWait,
		log:      opts.Logger,
		onError:  opts.ErrorHandler,
		fwdView:  opts.Forwarded,
		bgSlots:  make(chan struct{}, maxBackgroundRefreshes),
		stop:     make(chan struct{}),
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.coalesce == 0 {
		c.coalesce = 5 * time.Second
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.onError == nil {
		c.onError = defaultErrorHandler
	}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*entry)
		c.shards[i].flights = make(map[string]*flight)
	}
	c.routes = make(map[string]*routeStats)
	c.sweeping.Add(1)
	go c.sweeper()
	return c, nil
}

// Close stops the sweeper and waits for background refreshes to finish. Serve and ServeStale keep working after Close
// but start no background work. Close is idempotent.
func (c *Cache) Close() {
	c.bgMu.Lock()
	if c.closed {
		c.bgMu.Unlock()
		return
	}
	c.closed = true
	c.bgMu.Unlock()
	close(c.stop)
	c.sweeping.Wait()
	c.bg.Wait()
}

func (c *Cache) sweeper() {
	defer c.sweeping.Done()
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.sweep(c.nowNano())
		}
	}
}

func (c *Cache) nowNano() int64 { return c.now().UnixNano() }

// Stats returns current totals. It is cheap (a few hundred atomic loads) and
// safe to call at any time.
func (c *Cache) Stats() Stats {
	st := Stats{
		Bytes:   c.bytes.Load(),
		Objects: c.objects.Load(),
		Evicted: c.evicted.Load(),
		Expired: c.expired.Load(),
	}
	c.routesMu.Lock()
	for _, rs := range c.routes {
		n := rs.totals()
		st.Hits += n[Hit]
		st.Misses += n[Miss]
		st.Stale += n[Stale]
		st.Revalidated += n[Revalidated]
		st.Bypass += n[Bypass]
	}
	c.routesMu.Unlock()
	return st
}

// Purge removes every stored response whose path (with its query) starts
// with prefix, for the given host, or for every host when host is "". The
// host is compared in the canonical form the keys use (see appendHost:
// case, a trailing dot, the port's leading zeros and the scheme's default
// port, IPv6 spelling do not matter). Both schemes are purged. It returns
// how many responses were removed (each Vary variant counts). Purge walks
// the whole index, one shard lock at a time: it is an admin operation, not
// a request-path one.
func (c *Cache) Purge(host, prefix string) int {
	return c.purgeWhere(host, func(path string) bool { return strings.HasPrefix(path, prefix) })
}

// PurgeKey removes the responses stored for exactly pathAndQuery (for
// example "/a/b?x=1") on host, or on every host when host is "", every
// variant, both schemes, and returns how many it removed.
func (c *Cache) PurgeKey(host, pathAndQuery string) int {
	if host == "" {
		return c.purgeWhere("", func(path string) bool { return path == pathAndQuery })
	}
	n := 0
	var buf []byte
	for _, scheme := range [...]string{"http", "https"} {
		buf = appendKeyParts(buf[:0], scheme, []byte(host), []byte(pathAndQuery))
		h := c.hash(buf)
		s := c.shardOf(h)
		s.mu.Lock()
		c.bumpKey(h) // a fetch in flight for the key must not store its answer
		n += c.removeChainLocked(s, buf)
		s.mu.Unlock()
	}
	return n
}

// purgeWhere removes the stored responses on host (canonicalised per
// scheme; "" is every host) whose path and query satisfy match.
func (c *Cache) purgeWhere(host string, match func(path string) bool) int {
	var hosts [2]string // http, https
	if host != "" {
		hosts[0] = string(appendHost(nil, "http", []byte(host)))
		hosts[1] = string(appendHost(nil, "https", []byte(host)))
	}
	c.purgeGen.Add(1) // fetches in flight must not store their answers
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k := range s.m {
			scheme, h, path := splitKey(k)
			if host != "" {
				want := hosts[0]
				if scheme == "https" {
					want = hosts[1]
				}
				if h != want {
					continue
				}
			}
			if !match(path) {
				continue
			}
			n += c.removeChainLocked(s, s2b(k))
		}
		s.mu.Unlock()
	}
	return n
}

// splitKey splits a primary key "scheme://host/path?query" into scheme,
// host and path-and-query.
func splitKey(k string) (scheme, host, path string) {
	i := strings.Index(k, "://")
	if i < 0 {
		return "", "", k
	}
	rest := k[i+3:]
	j := strings.IndexByte(rest, '/')
	if j < 0 {
		return k[:i], rest, ""
	}
	return k[:i], rest[:j], rest[j:]
}

func (c *Cache) hash(key []byte) uint64     { return maphash.Bytes(c.seed, key) }
func (c *Cache) shardOf(h uint64) *shard    { return &c.shards[h%numShards] }
func (c *Cache) shardFor(key []byte) *shard { return c.shardOf(c.hash(key)) }

// Result is what the cache did with one request, for the access log and the
// floodgate_cache_requests_total metric.
type Result uint8

// Results. Collapsed requests, answered by the response another request's
// fetch stored, count as Hit: the backend never saw them.
const (
	Hit         Result = iota // served from a fresh stored response
	Miss                      // forwarded to the backend (stored or not)
	Stale                     // served a stale stored response (stale-while-revalidate, stale-if-error, max-stale, degraded)
	Revalidated               // stored response validated with the backend (304) and served
	Bypass                    // not handled by the cache (unsafe method, preconditions)
	numResults
)

var resultNames = [numResults]string{"hit", "miss", "stale", "revalidated", "bypass"}

// String returns the metric label value: "hit", "miss", "stale",
// "revalidated" or "bypass".
func (r Result) String() string {
	if r < numResults {
		return resultNames[r]
	}
	return "unknown"
}

// PolicyOptions is the per-route cache configuration.
type PolicyOptions struct {
	// Route is the value of the route label on the metrics.
	Route string
	// DefaultTTL, when > 0, is the freshness lifetime given to responses
	// without explicit freshness (no s-maxage, max-age or Expires) whose
	// status is cacheable by default or which are marked public. It takes
	// the place of heuristic freshness. It never makes a no-store, private
	// or otherwise unstorable response storable. 0 means only what the
	// headers allow (including heuristic freshness from Last-Modified).
	DefaultTTL time.Duration
	// MaxStale is how long past its freshness lifetime ServeStale may still
	// serve an entry in degraded mode. It also keeps otherwise useless
	// stale entries (no validator, no stale-* window) around that long.
	MaxStale time.Duration
	// MaxObjectBytes: responses with a larger body are passed through
	// unstored. 0 means no per-object limit beyond MaxBytes.
	MaxObjectBytes int
	// CacheSetCookie allows storing responses that carry Set-Cookie. The
	// stored copy never includes the Set-Cookie fields: only the client
	// whose request fetched the response receives them. Default false:
	// such responses are not stored at all.
	CacheSetCookie bool
}

// Policy is the immutable, resolved form of PolicyOptions. It is safe for
// concurrent use and may be shared by any number of requests and config
// generations.
type Policy struct {
	opts       PolicyOptions
	stats      *routeStats
	defaultTTL int64 // s, rounded up
	maxStale   int64 // s, rounded up, clamped
	maxStaleNs int64
}

// NewPolicy resolves o against c: the counters for o.Route are looked up
// once here so requests only increment an atomic. Policies for the same
// route share their counters, so the metric stays monotonic when a reload
// replaces a route's policy.
func (c *Cache) NewPolicy(o PolicyOptions) *Policy {
	p := &Policy{opts: o}
	c.routesMu.Lock()
	p.stats = c.routes[o.Route]
	if p.stats == nil {
		p.stats = new(routeStats)
		c.routes[o.Route] = p.stats
	}
	c.routesMu.Unlock()
	p.defaultTTL = ceilSeconds(o.DefaultTTL)
	p.maxStale = ceilSeconds(o.MaxStale)
	p.maxStaleNs = p.maxStale * 1e9
	return p
}

// Options returns the options p was built from.
func (p *Policy) Options() PolicyOptions { return p.opts }

func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	s := int64((d + time.Second - 1) / time.Second)
	return min(s, maxDelta)
}

// count records one result. now's low bits pick the stripe, which spreads
// concurrent requests for one hot URL over several cache lines.
func (c *Cache) count(p *Policy, now int64, r Result) {
	p.stats.stripes[uint64(now)%statStripes].n[r].Add(1)
}

// statStripes is how many cache-line-sized counter sets a route has.
const statStripes = 16

// routeStats counts results for one route label.
type routeStats struct {
	stripes [statStripes]struct {
		n [numResults]atomic.Uint64
		_ [64 - numResults*8%64]byte
	}
}

func (rs *routeStats) totals() (n [numResults]uint64) {
	for i := range rs.stripes {
		for r := range numResults {
			n[r] += rs.stripes[i].n[r].Load()
		}
	}
	return n
}

// defaultErrorHandler is the ErrorHandler of a cache used without the proxy
// (its tests, a library user): 504 for a timeout, 502 otherwise. The proxy
// passes proxy.CacheError, so floodgate's statuses come from proxy/errors.go.
func defaultErrorHandler(ctx *fasthttp.RequestCtx, err error) {
	status := fasthttp.StatusBadGateway
	var te interface{ Timeout() bool }
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) || (errors.As(err, &te) && te.Timeout()) {
		status = fasthttp.StatusGatewayTimeout
	}
	ctx.Response.Reset()
	ctx.Response.SetStatusCode(status)
}
