package metrics

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/floodgate/floodgate/generation"
	"github.com/floodgate/floodgate/internal/panics"
)

// Sources are what the collectors read at scrape time. Each func must be safe for
// concurrent use and cheap; nil funcs export nothing.
type Sources struct {
	// View returns the generation in service: generation.Manager.View.
	View func() *generation.View
	// Collectors are the collectors of the packages that own the other figures
	// (proxy.Server.Collector, degrade.Monitor.Collector, cache.Cache.Collector,
	// capture.Journal.Collector); New registers each on reg as it is.
	Collectors []prometheus.Collector
}

// Metrics is floodgate's own metrics, registered on a caller's registry. The
// reload counters are plain client_golang counters, written off the request
// path; everything else is read from live state by collectors at scrape time.
// Safe for concurrent use.
type Metrics struct {
	reloads      *prometheus.CounterVec
	lastSuccess  prometheus.Gauge
	lastReloadTS prometheus.Gauge
}

// New registers floodgate's collectors and counters on reg, which should be a
// registry of the caller's (never the global one), and returns the handle used to
// count reloads. It fails if a name is already registered on reg.
func New(reg prometheus.Registerer, src Sources) (*Metrics, error) {
	m := &Metrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "floodgate_config_reloads_total",
			Help: "Config reloads attempted, by result: success, or error (the previous config kept serving).",
		}, []string{"result"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "floodgate_config_last_reload_success",
			Help: "1 if the last config reload (or the start) applied, 0 if it failed.",
		}),
		lastReloadTS: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "floodgate_config_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last config load or reload that applied.",
		}),
	}
	// Both results exist from the start, so rate() and alerts see a 0.
	m.reloads.WithLabelValues(ResultSuccess)
	m.reloads.WithLabelValues(ResultError)
	m.lastSuccess.Set(1)
	m.lastReloadTS.SetToCurrentTime()
	panicsTotal := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "floodgate_panics_total",
		Help: "Panics contained at a goroutine boundary (a request, a connection, a probe, a replay, a watcher, an admin call): each is a bug, logged once with its stack.",
	}, func() float64 { return float64(panics.Total()) })
	cs := []prometheus.Collector{m.reloads, m.lastSuccess, m.lastReloadTS, panicsTotal}
	if src.View != nil {
		cs = append(cs, viewCollector{src.View})
	}
	cs = append(cs, src.Collectors...)
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return m, nil
}

// Reload results, the values of the result label.
const (
	ResultSuccess = "success"
	ResultError   = "error"
)

// Reload counts one config reload: applied (ok) or rejected.
func (m *Metrics) Reload(ok bool) {
	if ok {
		m.reloads.WithLabelValues(ResultSuccess).Inc()
		m.lastSuccess.Set(1)
		m.lastReloadTS.SetToCurrentTime()
		return
	}
	m.reloads.WithLabelValues(ResultError).Inc()
	m.lastSuccess.Set(0)
}

var (
	poolBackend = []string{"pool", "backend"}
	poolOnly    = []string{"pool"}

	descBackendUp = prometheus.NewDesc("floodgate_backend_up",
		"1 when the backend may receive traffic (health checks pass and it is not ejected), else 0.", poolBackend, nil)
	descBackendInflight = prometheus.NewDesc("floodgate_backend_inflight",
		"Requests in flight to the backend.", poolBackend, nil)
	descBackendWeight = prometheus.NewDesc("floodgate_backend_weight",
		"The backend's weight in service: 0 while it drains.", poolBackend, nil)
	descBackendRequests = prometheus.NewDesc("floodgate_backend_requests_total",
		"Requests forwarded to the backend that got an outcome (a response or a failure).", poolBackend, nil)
	descBackendFailures = prometheus.NewDesc("floodgate_backend_failures_total",
		"Requests to the backend that failed: connect errors, resets, timeouts and 5xx answers.", poolBackend, nil)
	descBackendEjections = prometheus.NewDesc("floodgate_backend_ejections_total",
		"Times passive health checks ejected the backend.", poolBackend, nil)
	descBackendEjected = prometheus.NewDesc("floodgate_backend_ejected",
		"1 while passive health checks keep the backend out, else 0.", poolBackend, nil)

	descQueueDepth = prometheus.NewDesc("floodgate_queue_depth",
		"Requests waiting for a connection slot in the pool's queue.", poolOnly, nil)
	descQueueWait = prometheus.NewDesc("floodgate_queue_wait_seconds",
		"Time requests spent in the pool's queue, however the wait ended.", poolOnly, nil)
	descQueueTimeouts = prometheus.NewDesc("floodgate_queue_timeouts_total",
		"Queued requests that timed out (503).", poolOnly, nil)
	descQueueRejected = prometheus.NewDesc("floodgate_queue_rejected_total",
		"Requests refused because the pool's queue was full (503).", poolOnly, nil)
	descQueuePredicted = prometheus.NewDesc("floodgate_queue_predicted_total",
		"Requests refused at arrival because the wait predicted from the queue ahead exceeded their deadline (503, or the route's degraded answer).", poolOnly, nil)
	descPoolBackends = prometheus.NewDesc("floodgate_pool_backends",
		"Backends of the pool by state: up, down or draining.", []string{"pool", "state"}, nil)

	descGeneration = prometheus.NewDesc("floodgate_config_generation",
		"Generation of the routing state in service; it grows with every applied change.", nil, nil)
)

// viewCollector exports the backends and pools of the generation in service,
// reading their live atomic state: the request path does nothing for it.
type viewCollector struct{ view func() *generation.View }

func (c viewCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBackendUp, descBackendInflight, descBackendWeight, descBackendRequests,
		descBackendFailures, descBackendEjections, descBackendEjected, descQueueDepth, descQueueWait, descQueueTimeouts,
		descQueueRejected, descQueuePredicted, descPoolBackends, descGeneration} {
		ch <- d
	}
}

func (c viewCollector) Collect(ch chan<- prometheus.Metric) {
	v := c.view()
	if v == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descGeneration, prometheus.GaugeValue, float64(v.Gen))
	for _, p := range v.Pools {
		counts := map[string]int{generation.StatusUp: 0, generation.StatusDown: 0, generation.StatusDraining: 0}
		for _, b := range p.Backends {
			st := b.State.Stats()
			counts[b.Status()]++
			ch <- prometheus.MustNewConstMetric(descBackendUp, prometheus.GaugeValue, bool01(st.Up), p.Name, b.Address)
			ch <- prometheus.MustNewConstMetric(descBackendInflight, prometheus.GaugeValue, float64(st.Inflight), p.Name, b.Address)
			ch <- prometheus.MustNewConstMetric(descBackendWeight, prometheus.GaugeValue, float64(b.EffectiveWeight()), p.Name, b.Address)
			ch <- prometheus.MustNewConstMetric(descBackendRequests, prometheus.CounterValue, float64(st.Requests), p.Name, b.Address)
			ch <- prometheus.MustNewConstMetric(descBackendFailures, prometheus.CounterValue, float64(st.Failures), p.Name, b.Address)
			ch <- prometheus.MustNewConstMetric(descBackendEjections, prometheus.CounterValue, float64(st.Ejections), p.Name, b.Address)
			ch <- prometheus.MustNewConstMetric(descBackendEjected, prometheus.GaugeValue, bool01(st.Ejected), p.Name, b.Address)
		}
		for state, n := range counts {
			ch <- prometheus.MustNewConstMetric(descPoolBackends, prometheus.GaugeValue, float64(n), p.Name, state)
		}
		q := p.State.QueueStats()
		ch <- prometheus.MustNewConstMetric(descQueueDepth, prometheus.GaugeValue, float64(q.Depth), p.Name)
		ch <- prometheus.MustNewConstSummary(descQueueWait, q.Waits, float64(q.WaitNanos)/float64(time.Second), nil, p.Name)
		ch <- prometheus.MustNewConstMetric(descQueueTimeouts, prometheus.CounterValue, float64(q.Timeouts), p.Name)
		ch <- prometheus.MustNewConstMetric(descQueueRejected, prometheus.CounterValue, float64(q.Rejected), p.Name)
		ch <- prometheus.MustNewConstMetric(descQueuePredicted, prometheus.CounterValue, float64(q.Predicted), p.Name)
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
