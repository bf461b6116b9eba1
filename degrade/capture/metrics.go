package capture

import "github.com/prometheus/client_golang/prometheus"

// Replay results, the values of floodgate_orders_replayed_total{result}.
const (
	resultDelivered = "delivered" // a backend answered 2xx
	resultRetry     = "retry"     // 5xx, a retryable 4xx or a transport error: sent again later
	resultDead      = "dead"      // a 4xx, or the last attempt failed: dead-lettered
)

// metrics are built for every journal and exported by Journal.Collector, the
// pattern of metrics/doc.go; the code paths never check for nil. Label
// children are resolved here, once, so the hot paths only call Inc and
// Observe.
type metrics struct {
	captured     prometheus.Counter
	appendErrors prometheus.Counter
	fsync        prometheus.Histogram
	replayed     *prometheus.CounterVec
	delivered    prometheus.Counter
	retried      prometheus.Counter
	deadLettered prometheus.Counter

	collectors []prometheus.Collector
}

func newMetrics(j *Journal) *metrics {
	m := &metrics{
		captured: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "floodgate_orders_captured_total",
			Help: "Requests captured durably into the order journal (answered 202).",
		}),
		appendErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "floodgate_capture_append_errors_total",
			Help: "Captures refused because the journal could not write them durably (answered 503) or they were too large.",
		}),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "floodgate_capture_fsync_seconds",
			Help:    "Latency of the fsync of one group commit of the order journal.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		replayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "floodgate_orders_replayed_total",
			Help: "Replay attempts of captured requests by result: delivered, retry or dead.",
		}, []string{"result"}),
	}
	m.delivered = m.replayed.WithLabelValues(resultDelivered)
	m.retried = m.replayed.WithLabelValues(resultRetry)
	m.deadLettered = m.replayed.WithLabelValues(resultDead)
	m.collectors = []prometheus.Collector{
		m.captured, m.appendErrors, m.fsync, m.replayed,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "floodgate_capture_backlog",
			Help: "Captured requests not yet delivered (dead letters excluded).",
		}, func() float64 { return float64(j.backlogN.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "floodgate_capture_dead_letters",
			Help: "Captured requests dead-lettered and awaiting retry or discard.",
		}, func() float64 { return float64(j.deadN.Load()) }),
	}
	return m
}

// Collector exports the journal's metrics: floodgate_orders_captured_total,
// floodgate_capture_backlog, floodgate_capture_dead_letters,
// floodgate_capture_fsync_seconds, floodgate_capture_append_errors_total and
// floodgate_orders_replayed_total{result}.
func (j *Journal) Collector() prometheus.Collector { return collectors(j.m.collectors) }

// collectors is a list of collectors exported as one.
type collectors []prometheus.Collector

func (cs collectors) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range cs {
		c.Describe(ch)
	}
}

func (cs collectors) Collect(ch chan<- prometheus.Metric) {
	for _, c := range cs {
		c.Collect(ch)
	}
}
