package degrade

import "github.com/prometheus/client_golang/prometheus"

// Degraded mode's metrics: each pool's mode, admission level and transition
// counters, read from the Monitor when /metrics is scraped (the request path
// does nothing for them). The pattern is the one in metrics/doc.go.

var (
	descDegraded = prometheus.NewDesc("floodgate_degraded",
		"1 while the pool is in degraded mode.", []string{"pool"}, nil)
	descDegradeLevel = prometheus.NewDesc("floodgate_degrade_level",
		"Admission level while degraded: 0 normal, 1 low refused, 2 normal refused, 3 critical only.", []string{"pool"}, nil)
	descTransitions = prometheus.NewDesc("floodgate_degrade_transitions_total",
		"Degraded-mode transitions, by the mode entered.", []string{"pool", "to"}, nil)
)

// Collector exports degraded mode's metrics, read from m at scrape time.
func (m *Monitor) Collector() prometheus.Collector { return collector{m} }

type collector struct{ m *Monitor }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descDegraded
	ch <- descDegradeLevel
	ch <- descTransitions
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.m.Stats() {
		on := 0.0
		if p.Mode == ModeDegraded {
			on = 1
		}
		ch <- prometheus.MustNewConstMetric(descDegraded, prometheus.GaugeValue, on, p.Pool)
		ch <- prometheus.MustNewConstMetric(descDegradeLevel, prometheus.GaugeValue, float64(p.Level), p.Pool)
		ch <- prometheus.MustNewConstMetric(descTransitions, prometheus.CounterValue, float64(p.ToDegraded), p.Pool, "degraded")
		ch <- prometheus.MustNewConstMetric(descTransitions, prometheus.CounterValue, float64(p.ToNormal), p.Pool, "normal")
	}
}
