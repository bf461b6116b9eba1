// Package cache is floodgate's shared HTTP cache (RFC 9111), used by the
// proxy for routes with caching enabled.
//
// It owns: deciding what may be stored and reused (RFC 9111 §3, §4), the
// index of stored responses and its byte budget, validation and freshening
// of stored responses (§4.3), invalidation after unsafe requests (§4.4),
// request collapsing, stale-while-revalidate and stale-if-error (RFC 5861),
// degraded-mode stale serving, purging, the Cache-Status field (RFC 9211)
// and the floodgate_cache_* metrics.
//
// It does not own: choosing or dialling a backend (the proxy passes a
// Fetcher), sanitising requests (hop-by-hop fields, X-Forwarded-*),
// deciding when a route is degraded, or mapping backend errors to status
// codes (Options.ErrorHandler). It imports only the standard library,
// fasthttp and the Prometheus client; it must not import proxy, balancer,
// degrade, health, conf or cmd.
//
// The request path takes no global lock: the index is sharded, a hit takes
// one shard's read lock for one map lookup (none at all for a popular URL
// with a single variant) and allocates nothing. Stored
// responses are immutable once published, so concurrent hits share their
// bytes; updates publish a new entry. docs/cache.md describes the behaviour
// for operators.
//
// Files. A request's way through the cache is split along its seams, one file
// each: serve.go the entry points (Serve, ServeStale, ServeFresh) and the flow
// of a GET or HEAD, collapsing included; op.go the per-request state (op, on
// the caller's stack) and its pooled scratch memory; request.go the request's
// facts and the cache key; lookup.go finding the stored response and deciding
// whether it may be used; forward.go going to the backend and turning its
// answer into the client's; store.go storing and freshening responses;
// respond.go writing answers and Cache-Status; refresh.go the background
// refresh of stale-while-revalidate; invalidate.go unsafe methods and their
// invalidations. Beneath them: index.go the sharded index, its segmented LRU
// and byte budget; entry.go a stored response's layout and the response's
// facts; directives.go, cdncc.go, vary.go and host.go the field parsers, the
// secondary key and the canonical host; cache.go options, purging, policies
// and statistics.
package cache
