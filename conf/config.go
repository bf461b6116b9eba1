package conf

import (
	"net/netip"
	"time"
)

// Config is one fully parsed, defaulted and validated configuration file.
//
// A *Config returned by Parse or Load is complete: every default documented in
// docs/configuration.md has been filled in, so consumers never test for zero
// values to pick a default themselves. It is a plain value with no internal
// synchronisation: treat it as read-only once returned and it is safe for
// concurrent reads. The yaml tags name each key in the file; the decoder in this
// package reads them, so do not decode into Config with yaml.Unmarshal, which
// would skip defaults and validation.
type Config struct {
	// Listen is the plain-HTTP listener, host:port. The host may be empty (all
	// interfaces), an IP or a name. Default ":8080". Changes need a restart.
	Listen string `yaml:"listen"`
	// Timeouts bounds how long a client may hold the listener's resources.
	Timeouts Timeouts `yaml:"timeouts"`
	// Limits caps request sizes and connection counts.
	Limits Limits `yaml:"limits"`
	// TLS adds an HTTPS listener. Nil means no HTTPS listener.
	TLS *TLS `yaml:"tls"`
	// Admin configures the admin API listener. Always present after Parse.
	Admin Admin `yaml:"admin"`
	// TrustedProxies are the peers whose X-Forwarded-For is believed. Bare IPs in
	// the file become /32 or /128 prefixes. Nil means no peer is trusted.
	TrustedProxies []netip.Prefix `yaml:"trusted_proxies"`
	// AccessLog enables JSON-lines access logging. Nil means no access log.
	AccessLog *AccessLog `yaml:"access_log"`
	// Cache is the single memory budget shared by every route with caching on.
	Cache Cache `yaml:"cache"`
	// Capture configures the order-capture journal. Nil when the file has no
	// capture section; Parse guarantees it is non-nil whenever a route uses the
	// capture action.
	Capture *Capture `yaml:"capture"`
	// Pools are the backend groups. Never empty after Parse.
	Pools []Pool `yaml:"pools"`
	// Routes map requests to pools, in file order. Never empty after Parse.
	Routes []Route `yaml:"routes"`
}

// Pool returns the pool with the given name, or nil when there is none or c is
// nil. The pointer aliases c.Pools; do not modify it.
func (c *Config) Pool(name string) *Pool {
	if c == nil {
		return nil
	}
	for i := range c.Pools {
		if c.Pools[i].Name == name {
			return &c.Pools[i]
		}
	}
	return nil
}

// Timeouts bounds the client side of the public listeners. Each is > 0 and ≤ 1h.
type Timeouts struct {
	// ClientHeader is the time allowed to read a request's headers; it is the
	// slowloris defence. Default 10s.
	ClientHeader time.Duration `yaml:"client_header"`
	// ClientBody is the idle timeout for bodies in both directions: the
	// longest gap between two reads of a request body or two writes of a
	// response. It is not a cap on a whole transfer, so large bodies still
	// stream. Default 60s.
	ClientBody time.Duration `yaml:"client_body"`
	// ClientIdle is how long a keep-alive connection may sit idle between
	// requests. Default 60s.
	ClientIdle time.Duration `yaml:"client_idle"`
	// ShutdownGrace is how long SIGTERM waits for in-flight requests to finish.
	// Default 30s.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
}

// Limits caps what one client can make the proxy hold.
type Limits struct {
	// MaxRequestBody is the largest request body accepted, in bytes (1B..64GB).
	// Default 64MB.
	MaxRequestBody int64 `yaml:"max_request_body,size"`
	// MaxHeaderBytes is the largest request header block, in bytes (1KB..1MB).
	// Default 16KB.
	MaxHeaderBytes int `yaml:"max_header_bytes,size"`
	// MaxHeaderFields is the most header fields (lines) a request may have
	// (1..10000); more get 431. Default 100.
	MaxHeaderFields int `yaml:"max_header_fields"`
	// MaxConns caps concurrent client connections across listeners; 0 means
	// unlimited. Default 10000. Changes need a restart.
	MaxConns int `yaml:"max_conns"`
	// MaxConnsPerIP caps concurrent connections from one client IP; 0 means
	// unlimited. Default 0.
	MaxConnsPerIP int `yaml:"max_conns_per_ip"`
}

// TLS configures the HTTPS listener. Parse checks the shape only; the
// certificate files are read by whoever builds the listener.
type TLS struct {
	// Listen is the HTTPS listener, host:port. Default ":8443". Changes need a
	// restart.
	Listen string `yaml:"listen"`
	// Certificates holds at least one certificate and key pair.
	Certificates []Certificate `yaml:"certificates"`
	// RedirectHTTP makes the plain listener answer every request with a
	// redirect to HTTPS instead of routing it. Default false.
	RedirectHTTP bool `yaml:"redirect_http"`
}

// Certificate is one PEM certificate chain and its private key, as file paths
// (relative paths are relative to the process's working directory).
type Certificate struct {
	// CertFile is the PEM certificate chain, leaf first. Required.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of the leaf. Required.
	KeyFile string `yaml:"key_file"`
}

// Admin configures the admin API.
type Admin struct {
	// Listen is the admin listener, host:port. Default "127.0.0.1:9090".
	// Changes need a restart.
	Listen string `yaml:"listen"`
	// TokenFile holds the bearer token the admin API requires. Empty means no
	// token, which Parse allows only on a loopback Listen.
	TokenFile string `yaml:"token_file"`
	// StateFile persists backends registered over the API so they survive a
	// restart. Empty means they do not.
	StateFile string `yaml:"state_file"`
	// DrainTimeout is how long a DELETE of a backend waits for its in-flight
	// requests before removing it anyway. Default 30s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
}

// AccessLog configures the JSON-lines access log.
type AccessLog struct {
	// Path is "stdout", "stderr" or a file path. Required.
	Path string `yaml:"path"`
}

// Cache is the response cache shared by all routes.
type Cache struct {
	// MaxBytes is the memory budget for every cached response together
	// (0..64GB). 0 disables caching, which is an error if a route enables it.
	// Default 256MB.
	MaxBytes int64 `yaml:"max_bytes,size"`
}

// Capture configures the journal behind the "capture" degraded action.
type Capture struct {
	// Dir is the journal directory. Required.
	Dir string `yaml:"dir"`
	// ReplayRate paces replay of captured requests to their pool once it leaves
	// degraded mode. Default 50/s.
	ReplayRate Rate `yaml:"replay_rate"`
	// ReplayConcurrency is how many captured requests of one pool are replayed
	// at once (1..256); 1 is strict capture order. Default 8.
	ReplayConcurrency int `yaml:"replay_concurrency"`
}

// Rate is a number of events per period, written "N/s", "N/m" or "N/h" in the
// file. The zero Rate means no events.
type Rate struct {
	// Events is the positive number of events per Per.
	Events float64
	// Per is one second, one minute or one hour.
	Per time.Duration
}

// PerSecond returns the rate in events per second; 0 for the zero Rate.
func (r Rate) PerSecond() float64 {
	if r.Per <= 0 {
		return 0
	}
	return r.Events / r.Per.Seconds()
}

// Pool is a named group of interchangeable backends.
type Pool struct {
	// Name is unique among pools and matches [A-Za-z0-9_.-]{1,64}, so it is
	// safe as a metric label and a URL path segment.
	Name string `yaml:"name"`
	// Backends may be empty: backends can be registered over the admin API.
	Backends []Backend `yaml:"backends"`
	// Health is the active health check. Type is HealthNone when the file has
	// no health section.
	Health Health `yaml:"health"`
	// MaxConnsPerBackend caps in-flight requests per backend; 0 means
	// unlimited. A backend's own MaxConns overrides it. Default 0.
	MaxConnsPerBackend int `yaml:"max_conns_per_backend"`
	// Queue holds requests while every backend is at its limit.
	Queue Queue `yaml:"queue"`
	// SlowStart ramps a newly healthy backend's weight up over this long; 0
	// turns it off. Default 0.
	SlowStart time.Duration `yaml:"slow_start"`
	// ConnectTimeout bounds dialling a backend. Default 2s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// ResponseTimeout bounds a backend's answer, from the request being sent
	// to the end of the response. Default 30s.
	ResponseTimeout time.Duration `yaml:"response_timeout"`
	// Retries is how many other backends an idempotent request is tried on
	// after a connection failure (0..5). Default 1.
	Retries int `yaml:"retries"`
	// Passive ejects backends that fail real requests.
	Passive Passive `yaml:"passive"`
	// Degrade sets when the pool enters and leaves degraded mode. Nil means
	// never automatically; the admin API can still force the mode.
	Degrade *Degrade `yaml:"degrade"`
}

// Backend is one upstream server of a pool.
type Backend struct {
	// Address is host:port; the host is required. Parse writes it in its
	// canonical form (package internal/hostport): port without leading zeros,
	// IPv4-mapped IPv6 as IPv4, IPv6 compressed, host names in lower case.
	// The unspecified addresses, port 0 and IPv6 zones are refused.
	Address string `yaml:"address"`
	// Weight is the share of the pool's traffic (0..1000). 0 means draining:
	// no new requests. Default 1.
	Weight int `yaml:"weight"`
	// MaxConns caps in-flight requests to this backend, overriding the
	// pool's MaxConnsPerBackend (0..1000000): for pools of unequal instances.
	// 0 means the pool's. Default 0.
	MaxConns int `yaml:"max_conns"`
}

// HealthType is the kind of active health check.
type HealthType string

// Health check types.
const (
	// HealthHTTP sends GET Path and checks the status.
	HealthHTTP HealthType = "http"
	// HealthTCP only checks that a connection opens.
	HealthTCP HealthType = "tcp"
	// HealthNone never probes; backends are up unless passive checks eject them.
	HealthNone HealthType = "none"
)

// Health is a pool's active health check.
type Health struct {
	// Type is http, tcp or none. Default http when a health section is given,
	// none when it is not.
	Type HealthType `yaml:"type"`
	// Path is the HTTP probe path, starting with "/". Only for type http,
	// where it defaults to "/healthz"; empty otherwise.
	Path string `yaml:"path"`
	// ExpectStatus is the only status counted as healthy (100..599). 0 means
	// any 2xx or 3xx. Only for type http.
	ExpectStatus int `yaml:"expect_status"`
	// Interval is the time between probes of a healthy backend. Default 2s.
	Interval time.Duration `yaml:"interval"`
	// UnhealthyInterval is the time between probes of a down backend.
	// Defaults to Interval.
	UnhealthyInterval time.Duration `yaml:"unhealthy_interval"`
	// Timeout bounds one probe; ≤ Interval and ≤ UnhealthyInterval. Default 1s.
	Timeout time.Duration `yaml:"timeout"`
	// Rise is the consecutive successes that bring a backend up (1..100).
	// Default 2.
	Rise int `yaml:"rise"`
	// Fall is the consecutive failures that take a backend down (1..100).
	// Default 3.
	Fall int `yaml:"fall"`
}

// Queue holds requests while a pool is at capacity.
type Queue struct {
	// Max is the most requests waiting at once; 0 means no queue (answer 503 at
	// once). Default 0.
	Max int `yaml:"max"`
	// Timeout is the longest a request waits in the queue. Default 1s.
	Timeout time.Duration `yaml:"timeout"`
}

// Passive ejects a backend after consecutive failed requests.
type Passive struct {
	// MaxFails is the consecutive failures that eject a backend; 0 turns
	// passive checks off. Default 5.
	MaxFails int `yaml:"max_fails"`
	// EjectFor is how long an ejected backend gets no traffic. Default 10s.
	EjectFor time.Duration `yaml:"eject_for"`
	// MaxEjectionPercent is the most of the pool's weighted backends ejected
	// at once, in percent (1..100, rounded down but at least one backend);
	// whatever it says, the last backend up is never ejected. Default 50.
	MaxEjectionPercent int `yaml:"max_ejection_percent"`
}

// Degrade is a pool's degraded-mode trigger, with hysteresis: the pool enters
// when any Enter signal is over its threshold for Windows consecutive windows,
// and leaves after Hold when every Exit signal is under its threshold for
// Windows consecutive windows.
type Degrade struct {
	// Enter holds at least one signal.
	Enter Thresholds `yaml:"enter"`
	// Exit sets exactly the signals Enter sets, each lower than its Enter value.
	Exit Thresholds `yaml:"exit"`
	// Hold is the least time spent degraded before leaving. Default 30s.
	Hold time.Duration `yaml:"hold"`
	// Window is the sampling window. Default 2s.
	Window time.Duration `yaml:"window"`
	// Windows is the consecutive windows a condition must hold (1..100).
	// Default 2.
	Windows int `yaml:"windows"`
}

// Thresholds are the saturation signals of a pool. A zero field means the
// signal is not used.
type Thresholds struct {
	// InflightRatio is in-flight requests over total capacity (0..1).
	InflightRatio float64 `yaml:"inflight_ratio"`
	// QueueWait is the time requests spend in the queue.
	QueueWait time.Duration `yaml:"queue_wait"`
	// P95Latency is the 95th percentile response time.
	P95Latency time.Duration `yaml:"p95_latency"`
	// ErrorRate is the share of requests answered 5xx or failed (0..1).
	ErrorRate float64 `yaml:"error_rate"`
}

// Priority orders routes for admission when a pool is saturated.
type Priority string

// Route priorities, highest first.
const (
	PriorityCritical Priority = "critical"
	PriorityHigh     Priority = "high"
	PriorityNormal   Priority = "normal"
	PriorityLow      Priority = "low"
)

// Route sends matching requests to a pool. A request matches the route with
// its host and the longest PathPrefix.
type Route struct {
	// Name is unique among routes and matches [A-Za-z0-9_.-]{1,64}.
	Name string `yaml:"name"`
	// Host is an exact host or a "*.example.com" wildcard, lowercased, without
	// a port. Empty matches any host.
	Host string `yaml:"host"`
	// PathPrefix starts with "/". Required.
	PathPrefix string `yaml:"path_prefix"`
	// Pool names a pool in Config.Pools.
	Pool string `yaml:"pool"`
	// Methods restricts the route to these upper-case methods. Nil means any.
	Methods []string `yaml:"methods"`
	// Priority is critical, high, normal or low. Default normal.
	Priority Priority `yaml:"priority"`
	// Cache configures response caching. Nil means no caching.
	Cache *RouteCache `yaml:"cache"`
	// RateLimit limits requests per key. Nil means no limit.
	RateLimit *RateLimit `yaml:"rate_limit"`
	// AllowCIDRs, when non-nil, admits only clients inside one of them.
	AllowCIDRs []netip.Prefix `yaml:"allow_cidrs"`
	// DenyCIDRs rejects clients inside one of them; checked before AllowCIDRs.
	DenyCIDRs []netip.Prefix `yaml:"deny_cidrs"`
	// OnDegraded is what the route does while its pool is degraded. Nil means
	// it keeps using the pool, subject to admission by Priority.
	OnDegraded *OnDegraded `yaml:"on_degraded"`
	// Timeouts overrides the pool's timeouts for this route. Nil means none.
	Timeouts *RouteTimeouts `yaml:"timeouts"`
}

// RouteCache configures caching for one route.
type RouteCache struct {
	// Enabled turns caching on.
	Enabled bool `yaml:"enabled"`
	// MaxStale is how long past expiry a cached response may still be served
	// by the stale degraded action (≤ 720h). Default 1h; 0 means never.
	MaxStale time.Duration `yaml:"max_stale"`
	// TTL is the freshness given to cacheable responses without freshness
	// headers; 0 means such responses are not cached (≤ 720h).
	TTL time.Duration `yaml:"ttl"`
	// MaxObjectBytes is the largest response cached (≤ cache.max_bytes).
	// Default 8MB.
	MaxObjectBytes int64 `yaml:"max_object_bytes,size"`
	// CacheSetCookie allows caching responses that carry Set-Cookie. Default
	// false, because such a response usually belongs to one user.
	CacheSetCookie bool `yaml:"cache_set_cookie"`
}

// RateLimit is a token bucket per key.
type RateLimit struct {
	// Key is "ip" (the client IP, after trusted_proxies) or "header:NAME"
	// (the value of that request header). Default "ip".
	Key string `yaml:"key"`
	// Rate is the refill rate. Required; at most 1,000,000/s.
	Rate Rate `yaml:"rate"`
	// Burst is the bucket size (1..10,000,000). Default: Rate per second,
	// rounded up, at least 1.
	Burst int `yaml:"burst"`
	// MaxKeys bounds the buckets held at once (1..10,000,000); the least
	// recently used are dropped. Default 100000.
	MaxKeys int `yaml:"max_keys"`
}

// Action is a degraded route's behaviour.
type Action string

// Degraded actions.
const (
	// ActionStale serves from the route's cache, up to cache.max_stale past
	// expiry; requests the cache cannot answer go to the pool.
	ActionStale Action = "stale"
	// ActionStatic answers with the contents of File.
	ActionStatic Action = "static"
	// ActionShed answers Status with a Retry-After header.
	ActionShed Action = "shed"
	// ActionCapture journals requests whose method is in Methods and answers
	// 202; they are replayed when the pool recovers.
	ActionCapture Action = "capture"
)

// OnDegraded is what a route does while its pool is degraded.
type OnDegraded struct {
	// Action is stale, static, shed or capture. Required.
	Action Action `yaml:"action"`
	// Status is the shed response status, 503 or 429. Default 503 for shed; 0
	// for other actions.
	Status int `yaml:"status"`
	// RetryAfter is sent as Retry-After with shed responses, in whole seconds
	// (≤ 1h). Default 30s for shed; 0 for other actions.
	RetryAfter time.Duration `yaml:"retry_after"`
	// File is the response body for static. Required for static, empty
	// otherwise; not read by Parse.
	File string `yaml:"file"`
	// Methods are the methods captured. Default [POST] for capture, nil for
	// other actions; GET and HEAD are not allowed.
	Methods []string `yaml:"methods"`
	// When is when capture journals a request: "refused" (default for
	// capture) when admission refuses it or no slot frees in time, so that
	// admitted orders keep the backends busy; "degraded" whenever the pool is
	// degraded. Empty for other actions.
	When string `yaml:"when"`
	// MaxWait is, for capture, the longest an order may be expected to wait
	// for a backend slot: an order whose wait, predicted from the requests
	// queued ahead of it, is longer is journalled and answered 202 at once,
	// and one still waiting after MaxWait is journalled then. 0 (unset) means
	// the pool's queue.timeout. 1ms..1m (degrade.CheckMaxWait). 0 for other
	// actions.
	MaxWait time.Duration `yaml:"max_wait"`
}

// RouteTimeouts overrides pool timeouts for one route.
type RouteTimeouts struct {
	// ResponseTimeout replaces the pool's response_timeout. Required.
	ResponseTimeout time.Duration `yaml:"response_timeout"`
}
