package proxy

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/floodgate/floodgate/balancer"
	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/internal/httpwire"
	"github.com/floodgate/floodgate/proxy/cache"
)

// Spec describes one configuration generation of the data plane. cmd/floodgate
// builds it from the config file; Server.Build turns it into a Snapshot.
type Spec struct {
	Gen    uint64
	Pools  []PoolSpec
	Routes []RouteSpec
}

// PoolSpec binds a balancer pool to the transport settings of its backends.
type PoolSpec struct {
	Pool               *balancer.Pool
	ConnectTimeout     time.Duration // dialing a backend; 0 means 2s
	ResponseTimeout    time.Duration // the whole backend response; 0 means 30s
	Retries            int           // idempotent requests retried on another backend
	MaxConnsPerBackend int           // 0 = unlimited (fasthttp still caps the pool of idle connections)

	// Gate and Recorder connect the pool to degraded mode (package degrade): the
	// request path reads the gate's level (one atomic load) and reports each
	// forwarded request's latency and outcome. nil = never degraded.
	Gate     *degrade.Gate
	Recorder *degrade.Recorder
}

// RouteSpec is one route: requests whose host and longest path prefix match go to
// Pool.
type RouteSpec struct {
	Name       string
	Host       string   // "" any host; "example.com" exact; "*.example.com" any subdomain
	PathPrefix string   // starts with "/"
	Methods    []string // empty = any method
	Pool       string

	AllowCIDRs []netip.Prefix       // when set, only these clients (after trusted_proxies) may use the route
	DenyCIDRs  []netip.Prefix       // these clients get 403; deny wins over allow
	RateLimit  *RateLimitSpec       // nil = no limit
	Cache      *cache.PolicyOptions // nil = not cached; needs Options.Cache (Route is set from Name)

	// Degraded mode: what the route does while its pool's gate is raised.
	Priority       degrade.Priority
	Action         degrade.Action
	Static         *degrade.Static // for ActionStatic
	Shed           *degrade.Shed   // the answer to refused requests; nil = 503 with Retry-After: 5
	CaptureMethods []string        // for ActionCapture; empty = POST
	CaptureAlways  bool            // for ActionCapture: journal every order while degraded, admitted or not
	// CaptureMaxWait is, for ActionCapture, the longest an order of a captured
	// method may be expected to wait for a slot: one whose predicted wait is
	// longer is journalled and confirmed at once, and one still queued after it
	// is journalled then. 0 = the pool's queue timeout. degrade.CheckMaxWait
	// is the rule.
	CaptureMaxWait time.Duration
}

// Snapshot is one immutable generation of routes and pools. The request path loads
// it once per request; nothing in it is modified after Build returns.
type Snapshot struct {
	Gen    uint64
	exact  []*route // routes with an exact host, longest prefix first
	wild   []*route // routes with a wildcard host, longest suffix then prefix first
	any    []*route // routes for any host, longest prefix first
	pools  map[string]*pool
	routes []*route
}

type route struct {
	name    string
	host    string // lower case; for wildcards the suffix including the dot (".example.com")
	prefix  string
	canon   string // canonicalPath of prefix: what the prefix means to the most lenient backend
	methods []string
	pool    *pool
	stats   *RouteStats
	acl     *acl          // nil = open to all
	limit   *limiter      // nil = unlimited
	cache   *cache.Policy // nil = not cached

	prio     degrade.Priority
	action   degrade.Action
	static   *degrade.Static
	shed     *degrade.Shed
	captures []string        // methods captured while degraded
	when     degrade.Capture // CaptureRefused or CaptureAlways, for ActionCapture
	maxWait  time.Duration   // for captured methods: the most they wait for a slot; 0 = the queue timeout
	class    balancer.Class  // the route's rank in its pool's queue, from prio
}

// captured reports whether requests with this method are journalled while the
// route's pool is degraded.
func (r *route) captured(method []byte) bool {
	for _, m := range r.captures {
		if string(method) == m {
			return true
		}
	}
	return false
}

// capture says whether and when a request with this method is journalled
// while the route's pool is degraded (degrade.Decide).
func (r *route) capture(method []byte) degrade.Capture {
	if r.action != degrade.ActionCapture || !r.captured(method) {
		return degrade.CaptureNo
	}
	return r.when
}

// queueClass is a route's rank in its pool's wait queue.
func queueClass(p degrade.Priority) balancer.Class {
	switch p {
	case degrade.PriorityCritical:
		return balancer.ClassCritical
	case degrade.PriorityHigh:
		return balancer.ClassHigh
	case degrade.PriorityLow:
		return balancer.ClassLow
	}
	return balancer.ClassNormal
}

type pool struct {
	name      string
	bal       *balancer.Pool
	upstreams []*upstream // parallel to bal.Backends()
	retries   int
	gate      *degrade.Gate
	rec       *degrade.Recorder
}

// Pool returns the balancer pool of the named pool, or nil.
func (s *Snapshot) Pool(name string) *balancer.Pool {
	if p := s.pools[name]; p != nil {
		return p.bal
	}
	return nil
}

// match finds the route for a host (without port, any case, one trailing dot
// ignored: "example.com." is "example.com"; handle passes it in the canonical
// form of httpwire.AppendHostName) and a path: exact hosts first, then
// wildcards, then host-less routes, the longest matching prefix within each. With
// canon, path is a canonicalPath and is matched against the routes' canonical
// prefixes.
func (s *Snapshot) match(host, path []byte, canon bool) *route {
	if n := len(host); n > 1 && host[n-1] == '.' {
		host = host[:n-1]
	}
	if len(host) > 0 {
		for _, r := range s.exact {
			if httpwire.EqualFold(host, r.host) && r.hasPrefix(path, canon) {
				return r
			}
		}
		for _, r := range s.wild {
			if len(host) > len(r.host) && httpwire.EqualFold(host[len(host)-len(r.host):], r.host) && r.hasPrefix(path, canon) {
				return r
			}
		}
	}
	for _, r := range s.any {
		if r.hasPrefix(path, canon) {
			return r
		}
	}
	return nil
}

func (r *route) hasPrefix(path []byte, canon bool) bool {
	if canon {
		return hasPrefix(path, r.canon)
	}
	return hasPrefix(path, r.prefix)
}

// sameRoute reports whether a and b are one route, or two whose prefixes differ
// only where every backend reads them alike (letter case, encoding), so that a
// request matching one by its raw path and the other by its canonical path is
// not ambiguous.
func sameRoute(a, b *route) bool {
	return a == b || (a != nil && b != nil && a.host == b.host && a.canon == b.canon)
}

func hasPrefix(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == prefix
}

func (r *route) allows(method []byte) bool {
	if len(r.methods) == 0 {
		return true
	}
	for _, m := range r.methods {
		if string(method) == m {
			return true
		}
	}
	return false
}

// Build makes a Snapshot from spec. Backend clients are reused across generations
// by backend ID, so pooled connections of unchanged backends survive a reload. It
// validates what the config layer cannot know (pools referenced by routes).
//
// Build changes nothing the generation in service reads, nor what the next
// build reuses: it only reads the Server's tables of upstreams, route
// counters, limiters and cache policies. Swap records what the snapshot it
// installs uses, so a snapshot built and dropped (a reload that failed later)
// leaves no trace.
func (s *Server) Build(spec Spec) (*Snapshot, error) {
	snap := &Snapshot{Gen: spec.Gen, pools: make(map[string]*pool, len(spec.Pools))}
	s.upMu.Lock()
	defer s.upMu.Unlock()
	for _, ps := range spec.Pools {
		if ps.Pool == nil {
			return nil, fmt.Errorf("proxy: pool spec without a pool")
		}
		name := ps.Pool.Name()
		if snap.pools[name] != nil {
			return nil, fmt.Errorf("proxy: pool %q defined twice", name)
		}
		p := &pool{name: name, bal: ps.Pool, retries: ps.Retries, gate: ps.Gate, rec: ps.Recorder}
		for _, b := range ps.Pool.Backends() {
			p.upstreams = append(p.upstreams, s.upstreamLocked(b.State.ID(), b.Address, ps))
		}
		snap.pools[name] = p
	}
	for _, rs := range spec.Routes {
		p := snap.pools[rs.Pool]
		if p == nil {
			return nil, fmt.Errorf("proxy: route %q: unknown pool %q", rs.Name, rs.Pool)
		}
		canon := httpwire.CanonicalPath(make([]byte, 0, len(rs.PathPrefix)), []byte(rs.PathPrefix))
		if len(rs.PathPrefix) > httpwire.CanonicalPathMax {
			return nil, fmt.Errorf("proxy: route %q: path prefix longer than %d bytes", rs.Name, httpwire.CanonicalPathMax)
		}
		r := &route{name: rs.Name, prefix: rs.PathPrefix, canon: string(canon), methods: rs.Methods, pool: p, prio: rs.Priority,
			class: queueClass(rs.Priority), stats: s.routeStatsLocked(rs.Name, rs.Pool, rs.Priority.String())}
		if len(rs.AllowCIDRs)+len(rs.DenyCIDRs) > 0 {
			r.acl = &acl{allow: rs.AllowCIDRs, deny: rs.DenyCIDRs}
		}
		if rs.RateLimit != nil {
			// The rule conf checks the file with, on the spec with its
			// defaults filled in.
			if err := rateLimitProblems(newLimiterSpec(*rs.RateLimit)); err != nil {
				return nil, fmt.Errorf("proxy: route %q: rate_limit: %w", rs.Name, err)
			}
			r.limit = s.limiterLocked(rs.Name, *rs.RateLimit)
		}
		r.action, r.static, r.shed = rs.Action, rs.Static, rs.Shed
		if r.action == degrade.ActionStatic && r.static == nil {
			return nil, fmt.Errorf("proxy: route %q: static action without a static answer", rs.Name)
		}
		if r.action == degrade.ActionCapture {
			r.captures = rs.CaptureMethods
			if len(r.captures) == 0 {
				r.captures = []string{"POST"}
			}
			r.when = degrade.CaptureRefused
			if rs.CaptureAlways {
				r.when = degrade.CaptureAlways
			}
			// The rule conf checks the file with.
			if ps := degrade.CheckMaxWait(rs.CaptureMaxWait); ps != nil {
				return nil, fmt.Errorf("proxy: route %q: on_degraded.%w", rs.Name, ps[0])
			}
			r.maxWait = rs.CaptureMaxWait
		} else if rs.CaptureMaxWait != 0 {
			return nil, fmt.Errorf("proxy: route %q: capture max wait without the capture action", rs.Name)
		}
		if rs.Cache != nil {
			if s.cache == nil {
				return nil, fmt.Errorf("proxy: route %q: caching needs a cache (Options.Cache)", rs.Name)
			}
			po := *rs.Cache
			po.Route = rs.Name
			r.cache = s.policyLocked(po)
		}
		host := strings.ToLower(rs.Host)
		switch {
		case host == "":
			snap.any = append(snap.any, r)
		case strings.HasPrefix(host, "*."):
			r.host = "." + string(httpwire.AppendHostName(nil, []byte(host[2:])))
			snap.wild = append(snap.wild, r)
		default:
			r.host = string(httpwire.AppendHostName(nil, []byte(host)))
			snap.exact = append(snap.exact, r)
		}
		snap.routes = append(snap.routes, r)
	}
	byPrefix := func(rs []*route) {
		sort.SliceStable(rs, func(i, j int) bool {
			if len(rs[i].host) != len(rs[j].host) {
				return len(rs[i].host) > len(rs[j].host)
			}
			return len(rs[i].prefix) > len(rs[j].prefix)
		})
	}
	byPrefix(snap.exact)
	byPrefix(snap.wild)
	byPrefix(snap.any)
	return snap, nil
}

// policyLocked returns the cache policy for a route, reusing the one in
// service when its options are unchanged; else a new one, which Swap records.
// s.upMu must be held.
func (s *Server) policyLocked(po cache.PolicyOptions) *cache.Policy {
	if p := s.policies[po.Route]; p != nil && p.Options() == po {
		return p
	}
	return s.cache.NewPolicy(po)
}

// routeNamed returns the route with this name on this pool, or else a plain route
// to the pool (for replaying captures of a route that a reload removed), or nil
// when the pool is gone.
func (s *Snapshot) routeNamed(name, pool string) *route {
	for _, r := range s.routes {
		if r.name == name && r.pool.name == pool {
			return r
		}
	}
	p := s.pools[pool]
	if p == nil {
		return nil
	}
	return &route{name: name, pool: p, stats: &RouteStats{Route: name, Pool: pool, routeCounters: new(routeCounters)}}
}
