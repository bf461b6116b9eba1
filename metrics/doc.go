// Package metrics owns floodgate's Prometheus metrics: collectors that read the
// live state of the generation in service (backends, pools, queues) and the
// proxy's per-route counters at scrape time, and the config reload counters.
//
// The request path pays nothing for them: it adds to atomics it keeps anyway
// (balancer.BackendState, balancer.PoolState, proxy.RouteStats), and the
// collectors turn those into const metrics when /metrics is scraped, so there is
// no label hashing or map lookup per request. Metrics are registered on a
// prometheus.Registerer the caller creates, never on the global registry.
//
// metrics imports prometheus/client_golang, proxy and generation (for the types
// it reads); it must not import conf, admin or cmd.
package metrics
