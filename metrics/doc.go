// Package metrics owns the shared parts of floodgate's Prometheus metrics: the
// registration of every collector on the caller's registry, the process-wide
// figures (config reloads, floodgate_panics_total) and the figures of the
// generation in service, assembled from balancer state (backends, pools,
// queues, the generation number), read through generation.View. The HTTP handler is promhttp over the same registry.
//
// # One pattern: the package that owns a figure exports it
//
// Every other metric is declared by the package that owns the figure, in that
// package's metrics.go: the descriptors (name, HELP, labels) and a
// prometheus.Collector returned by a Collector method of the object holding
// the figures:
//
//	proxy.Server.Collector     requests, durations, rate limits, denials, truncations,
//	                           sheds and degraded answers by route; client connections;
//	                           the access log's dropped lines
//	cache.Cache.Collector      floodgate_cache_*
//	degrade.Monitor.Collector  degraded mode, admission level and transitions by pool
//	capture.Journal.Collector  floodgate_orders_* and floodgate_capture_*
//
// The caller (cmd/floodgate) passes them to New in Sources.Collectors, which
// registers each on one registry; nothing registers itself, and nothing uses
// the global registry. A new figure goes into its owner's metrics.go, not here.
//
// The request path pays nothing for them: it adds to atomics it keeps anyway
// (balancer.BackendState, balancer.PoolState, proxy.RouteStats, the cache's
// striped route counters), and the collectors turn those into const metrics
// when /metrics is scraped, so there is no label hashing, map lookup or lock
// per request. (The order journal's counters and fsync histogram are
// client_golang ones: one atomic add, or a lock-free observation, each.)
//
// metrics imports prometheus/client_golang and generation (for the view it
// reads); it must not import conf, admin or cmd.
package metrics
