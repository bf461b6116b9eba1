package cache

import "github.com/prometheus/client_golang/prometheus"

// The cache's metrics: requests by route and result, the bytes and responses
// stored and the byte budget. A request adds to one of its route's striped
// atomic counters (count); Collector turns them into const metrics when
// /metrics is scraped, so requests never touch a Prometheus counter (a single
// contended atomic per route and result). The pattern is the one in
// metrics/doc.go.

var (
	requestsDesc = prometheus.NewDesc("floodgate_cache_requests_total",
		"Requests answered by the cache, by route and result (hit, miss, stale, revalidated, bypass).",
		[]string{"route", "result"}, nil)
	bytesDesc = prometheus.NewDesc("floodgate_cache_bytes",
		"Bytes accounted to the cache budget.", nil, nil)
	objectsDesc = prometheus.NewDesc("floodgate_cache_objects",
		"Responses stored in the cache.", nil, nil)
	maxBytesDesc = prometheus.NewDesc("floodgate_cache_max_bytes",
		"The response cache's byte budget (cache.max_bytes).", nil, nil)
)

// Collector exports the cache's metrics, read from c at scrape time.
func (c *Cache) Collector() prometheus.Collector { return collector{c} }

type collector struct{ c *Cache }

func (cc collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- requestsDesc
	ch <- bytesDesc
	ch <- objectsDesc
	ch <- maxBytesDesc
}

func (cc collector) Collect(ch chan<- prometheus.Metric) {
	c := cc.c
	c.routesMu.Lock()
	for route, rs := range c.routes {
		n := rs.totals()
		for r := range numResults {
			ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, float64(n[r]), route, r.String())
		}
	}
	c.routesMu.Unlock()
	ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.GaugeValue, float64(c.bytes.Load()))
	ch <- prometheus.MustNewConstMetric(objectsDesc, prometheus.GaugeValue, float64(c.objects.Load()))
	ch <- prometheus.MustNewConstMetric(maxBytesDesc, prometheus.GaugeValue, float64(c.max))
}
