package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/proxy"
)

var (
	descDegraded = prometheus.NewDesc("floodgate_degraded",
		"1 while the pool is in degraded mode.", []string{"pool"}, nil)
	descDegradeLevel = prometheus.NewDesc("floodgate_degrade_level",
		"Admission level while degraded: 0 normal, 1 low refused, 2 normal refused, 3 critical only.", []string{"pool"}, nil)
	descTransitions = prometheus.NewDesc("floodgate_degrade_transitions_total",
		"Degraded-mode transitions, by the mode entered.", []string{"pool", "to"}, nil)
	descShed = prometheus.NewDesc("floodgate_shed_total",
		"Requests answered with the shed response while their pool was degraded.", []string{"route", "priority"}, nil)
	descDegradedAnswers = prometheus.NewDesc("floodgate_degraded_answers_total",
		"Requests answered by a degraded action instead of the pool, by action.", []string{"route", "action"}, nil)
	descConnRefused = prometheus.NewDesc("floodgate_connections_refused_total",
		"Client connections refused by limits.max_conns or limits.max_conns_per_ip.", nil, nil)
	descConnOpen = prometheus.NewDesc("floodgate_connections_open",
		"Client connections open.", nil, nil)
	descLogDropped = prometheus.NewDesc("floodgate_access_log_dropped_total",
		"Access log lines dropped because the writer fell behind.", nil, nil)
	descCacheMax = prometheus.NewDesc("floodgate_cache_max_bytes",
		"The response cache's byte budget (cache.max_bytes).", nil, nil)
)

// EdgeSources are the degraded-mode, connection and access-log figures; any nil
// field leaves its metrics out.
type EdgeSources struct {
	Degrade   func() []degrade.PoolStats
	Routes    func() []*proxy.RouteStats
	Conns     func() proxy.ConnStats
	AccessLog *proxy.AccessLog
	// CacheMaxBytes is the cache budget; 0 leaves floodgate_cache_max_bytes out.
	CacheMaxBytes int64
}

// RegisterEdge registers a collector for src on reg. It reads live counters at
// scrape time only.
func RegisterEdge(reg prometheus.Registerer, src EdgeSources) error {
	return reg.Register(edgeCollector{src})
}

type edgeCollector struct{ src EdgeSources }

func (c edgeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDegraded, descDegradeLevel, descTransitions, descShed, descDegradedAnswers, descConnRefused, descConnOpen, descLogDropped, descCacheMax} {
		ch <- d
	}
}

func (c edgeCollector) Collect(ch chan<- prometheus.Metric) {
	if c.src.Degrade != nil {
		for _, p := range c.src.Degrade() {
			on := 0.0
			if p.Mode == degrade.ModeDegraded {
				on = 1
			}
			ch <- prometheus.MustNewConstMetric(descDegraded, prometheus.GaugeValue, on, p.Pool)
			ch <- prometheus.MustNewConstMetric(descDegradeLevel, prometheus.GaugeValue, float64(p.Level), p.Pool)
			ch <- prometheus.MustNewConstMetric(descTransitions, prometheus.CounterValue, float64(p.ToDegraded), p.Pool, "degraded")
			ch <- prometheus.MustNewConstMetric(descTransitions, prometheus.CounterValue, float64(p.ToNormal), p.Pool, "normal")
		}
	}
	if c.src.Routes != nil {
		for _, r := range c.src.Routes() {
			if r.Route == "-" {
				continue
			}
			ch <- prometheus.MustNewConstMetric(descShed, prometheus.CounterValue, float64(r.Shed()), r.Route, r.Priority)
			for action, n := range r.Degraded() {
				ch <- prometheus.MustNewConstMetric(descDegradedAnswers, prometheus.CounterValue, float64(n), r.Route, action)
			}
		}
	}
	if c.src.Conns != nil {
		st := c.src.Conns()
		ch <- prometheus.MustNewConstMetric(descConnRefused, prometheus.CounterValue, float64(st.Refused))
		ch <- prometheus.MustNewConstMetric(descConnOpen, prometheus.GaugeValue, float64(st.Open))
	}
	if c.src.AccessLog != nil {
		ch <- prometheus.MustNewConstMetric(descLogDropped, prometheus.CounterValue, float64(c.src.AccessLog.Dropped()))
	}
	if c.src.CacheMaxBytes > 0 {
		ch <- prometheus.MustNewConstMetric(descCacheMax, prometheus.GaugeValue, float64(c.src.CacheMaxBytes))
	}
}
