package proxy

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// The proxy's metrics: the per-route counters (RouteStats), the client
// connections (ConnStats) and the access log's dropped lines. The request path
// only adds to atomics it keeps anyway; Collector turns them into const
// metrics when /metrics is scraped, so a request pays no label hashing, map
// lookup or lock. The pattern is the one in metrics/doc.go.

var (
	descRequests = prometheus.NewDesc("floodgate_requests_total",
		"Responses sent to clients, by route, pool and status code. Requests that matched no route, or were refused before routing, have route and pool \"-\".",
		[]string{"route", "pool", "code"}, nil)
	descDuration = prometheus.NewDesc("floodgate_request_duration_seconds",
		"Time from a request's arrival to its response header, by route and pool.", []string{"route", "pool"}, nil)
	descRateLimited = prometheus.NewDesc("floodgate_ratelimited_total",
		"Requests refused by the route's rate limit (429).", []string{"route"}, nil)
	descDenied = prometheus.NewDesc("floodgate_denied_total",
		"Requests refused by the route's allow_cidrs or deny_cidrs (403).", []string{"route"}, nil)
	descTruncated = prometheus.NewDesc("floodgate_upstream_truncated_total",
		"Backend responses whose body ended early (backend closed or broke the framing mid-body) while relayed: the client connection was closed.", []string{"route"}, nil)
	descShed = prometheus.NewDesc("floodgate_shed_total",
		"Requests answered with the shed response while their pool was degraded.", []string{"route", "priority"}, nil)
	descDegradedAnswers = prometheus.NewDesc("floodgate_degraded_answers_total",
		"Requests answered by a degraded action instead of the pool, by action.", []string{"route", "action"}, nil)
	descConnRefused = prometheus.NewDesc("floodgate_connections_refused_total",
		"Client connections refused by limits.max_conns or limits.max_conns_per_ip.", nil, nil)
	descProxyRefused = prometheus.NewDesc("floodgate_proxy_protocol_refused_total",
		"Client connections refused by proxy_protocol, by reason: untrusted (a PROXY header from a peer not in trusted_proxies), invalid (a trusted peer sent no header, a malformed or an oversized one), timeout (nothing decisive within timeouts.client_header), overload (too many headers awaited at once).", []string{"reason"}, nil)
	descConnOpen = prometheus.NewDesc("floodgate_connections_open",
		"Client connections open.", nil, nil)
	descConnBufBytes = prometheus.NewDesc("floodgate_connection_buffer_bytes",
		"Bytes of read and write buffers held by client and backend connections now: a reader of max_header_bytes per client connection, and the buffers of requests in flight.", nil, nil)
	descLogDropped = prometheus.NewDesc("floodgate_access_log_dropped_total",
		"Access log lines dropped because the writer fell behind.", nil, nil)
)

// Collector exports the proxy's metrics, read from s at scrape time. The
// access log's figure is exported only when Options.AccessLog is set.
func (s *Server) Collector() prometheus.Collector { return collector{s} }

type collector struct{ s *Server }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descDuration, descRateLimited, descDenied, descTruncated,
		descShed, descDegradedAnswers, descConnRefused, descProxyRefused, descConnOpen, descConnBufBytes, descLogDropped} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for i, rs := range c.s.RouteStats() {
		for _, cc := range rs.Codes() {
			ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(cc.Count), rs.Route, rs.Pool, codeLabel(cc.Code))
		}
		count, sum, cumulative := rs.Latency()
		buckets := make(map[float64]uint64, len(LatencyBuckets))
		for i, ub := range LatencyBuckets {
			buckets[ub] = cumulative[i]
		}
		ch <- prometheus.MustNewConstHistogram(descDuration, count, sum, buckets, rs.Route, rs.Pool)
		if i == 0 {
			continue // requests refused before routing: no route to limit, deny, shed or degrade
		}
		ch <- prometheus.MustNewConstMetric(descRateLimited, prometheus.CounterValue, float64(rs.RateLimited()), rs.Route)
		ch <- prometheus.MustNewConstMetric(descDenied, prometheus.CounterValue, float64(rs.Denied()), rs.Route)
		ch <- prometheus.MustNewConstMetric(descTruncated, prometheus.CounterValue, float64(rs.Truncated()), rs.Route)
		ch <- prometheus.MustNewConstMetric(descShed, prometheus.CounterValue, float64(rs.Shed()), rs.Route, rs.Priority)
		for action, n := range rs.Degraded() {
			ch <- prometheus.MustNewConstMetric(descDegradedAnswers, prometheus.CounterValue, float64(n), rs.Route, action)
		}
	}
	st := c.s.ConnStats()
	ch <- prometheus.MustNewConstMetric(descConnRefused, prometheus.CounterValue, float64(st.Refused))
	if c.s.opts.ProxyProtocol {
		for i, n := range c.s.ProxyProtocolStats().Refused {
			ch <- prometheus.MustNewConstMetric(descProxyRefused, prometheus.CounterValue, float64(n), ProxyRefusedReasons[i])
		}
	}
	ch <- prometheus.MustNewConstMetric(descConnOpen, prometheus.GaugeValue, float64(st.Open))
	ch <- prometheus.MustNewConstMetric(descConnBufBytes, prometheus.GaugeValue, float64(c.s.BufferBytes()))
	if l := c.s.opts.AccessLog; l != nil {
		ch <- prometheus.MustNewConstMetric(descLogDropped, prometheus.CounterValue, float64(l.Dropped()))
	}
}

// codeLabel is the code label: the status code, or "other" for the slot
// RouteStats keeps for out-of-range codes.
func codeLabel(code int) string {
	if code < 100 {
		return "other"
	}
	return strconv.Itoa(code)
}
