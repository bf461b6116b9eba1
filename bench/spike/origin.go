package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// Model is the origin's capacity and overload behaviour.
type Model struct {
	Slots        int                       `json:"slots"`
	Service      [numClasses]time.Duration `json:"-"`
	ServiceMS    map[string]float64        `json:"service_ms"`
	Backlog      int                       `json:"backlog"`
	QueueTimeout time.Duration             `json:"-"`
	QueueTimeS   float64                   `json:"queue_timeout_s"`
	Penalty      float64                   `json:"backlog_penalty"`
}

// withJSON fills the JSON-only mirror fields from the typed ones.
func (m Model) withJSON() Model {
	m.ServiceMS = make(map[string]float64, numClasses)
	for c, d := range m.Service {
		m.ServiceMS[classNames[c]] = float64(d) / float64(time.Millisecond)
	}
	m.QueueTimeS = m.QueueTimeout.Seconds()
	return m
}

// fromJSON is the inverse of withJSON, for a model read from /stats.
func (m Model) fromJSON() Model {
	for c := range m.Service {
		m.Service[c] = time.Duration(m.ServiceMS[classNames[c]] * float64(time.Millisecond))
	}
	m.QueueTimeout = time.Duration(m.QueueTimeS * float64(time.Second))
	return m
}

// MeanService is the mean service time of mix, without overload.
func (m Model) MeanService(mix Mix) time.Duration {
	s := 0.0
	for c := range m.Service {
		s += mix.Share(c) * float64(m.Service[c])
	}
	return time.Duration(s)
}

// CapacityRPS is the nominal capacity for mix: slots over the mean service time.
func (m Model) CapacityRPS(mix Mix) float64 {
	ms := m.MeanService(mix)
	if ms <= 0 {
		return 0
	}
	return float64(m.Slots) / ms.Seconds()
}

// serviceTime is class c's service time when waiting requests are queued behind it:
// the base time, lengthened linearly with the queue's occupancy up to Penalty when
// it is full.
func (m Model) serviceTime(c int, waiting int64) time.Duration {
	occ := 0.0
	if m.Backlog > 0 && waiting > 0 {
		occ = min(float64(waiting)/float64(m.Backlog), 1)
	}
	return time.Duration(float64(m.Service[c]) * (1 + m.Penalty*occ))
}

// classCounters are one class's outcomes at the origin.
type classCounters struct {
	served, queueTimeout, overflow atomic.Int64
	serviceNS                      atomic.Int64 // service time actually spent, penalty included
}

// slot is one service slot. freeAt is when its last request ideally ended: the next
// request on the slot starts then (or when it arrived, if later), not when the
// goroutine of the last one happened to wake up. Timer overshoot (about 150 µs per
// sleep on a loaded machine, 7% of a 2 ms request) would otherwise lower the
// capacity by a machine-dependent amount; this way it only adds to latency.
type slot struct{ freeAt time.Time }

// Origin is the shop application server of the model. Safe for concurrent use.
type Origin struct {
	m    Model
	free chan *slot // idle slots; its receive queue is the FIFO accept queue

	waiting, busy, maxWaiting atomic.Int64
	slackNS                   atomic.Int64 // how late time.Sleep wakes up, moving average
	cls                       [numClasses]classCounters

	mu        sync.Mutex
	keys      map[string]struct{} // Idempotency-Keys recorded
	orders    map[string]int32    // order id -> times recorded
	dupKeys   int64               // POSTs whose key was already recorded (answered, not recorded)
	dupOrders int64               // recordings of an order id already recorded
	noID      int64               // checkout POSTs with neither an order id nor a key

	bodies [numClasses][]byte
}

var cacheControl = [numClasses]string{
	clsStatic:     "public, max-age=300",
	clsProduct:    "public, max-age=10",
	clsSearch:     "public, max-age=30",
	clsCheckout:   "no-store",
	clsBackoffice: "private, no-store",
}

var bodySize = [numClasses]int{clsStatic: 1024, clsProduct: 4096, clsSearch: 2048, clsCheckout: 0, clsBackoffice: 2048}

// NewOrigin returns an origin with model m.
func NewOrigin(m Model) *Origin {
	o := &Origin{m: m, free: make(chan *slot, m.Slots)}
	for range m.Slots {
		o.free <- &slot{}
	}
	o.resetOrders()
	for c, n := range bodySize {
		o.bodies[c] = bytes.Repeat([]byte{'a' + byte(c)}, n)
	}
	return o
}

func (o *Origin) resetOrders() {
	o.mu.Lock()
	o.keys = make(map[string]struct{}, 1<<16)
	o.orders = make(map[string]int32, 1<<16)
	o.dupKeys, o.dupOrders, o.noID = 0, 0, 0
	o.mu.Unlock()
}

// Reset zeroes every counter and forgets every order.
func (o *Origin) Reset() {
	for c := range o.cls {
		o.cls[c].served.Store(0)
		o.cls[c].queueTimeout.Store(0)
		o.cls[c].overflow.Store(0)
		o.cls[c].serviceNS.Store(0)
	}
	o.maxWaiting.Store(o.waiting.Load())
	o.resetOrders()
}

func classOf(path []byte) (int, bool) {
	switch {
	case bytes.HasPrefix(path, []byte("/static/")):
		return clsStatic, true
	case bytes.HasPrefix(path, []byte("/product/")):
		return clsProduct, true
	case bytes.HasPrefix(path, []byte("/search")):
		return clsSearch, true
	case bytes.HasPrefix(path, []byte("/checkout")):
		return clsCheckout, true
	case bytes.HasPrefix(path, []byte("/admin/")):
		return clsBackoffice, true
	}
	return 0, false
}

// Handle serves one request of the data listener.
func (o *Origin) Handle(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	if string(path) == "/healthz" {
		ctx.SetBodyString("ok\n")
		return
	}
	c, ok := classOf(path)
	if !ok {
		ctx.Error("no such page\n", fasthttp.StatusNotFound)
		return
	}
	ctx.Response.Header.Set("X-Spike-Origin", classNames[c])
	cc := &o.cls[c]

	// The accept queue: bounded, first come first served, with a timeout.
	arrived := time.Now()
	if w := o.waiting.Add(1); w > int64(o.m.Backlog) {
		o.waiting.Add(-1)
		cc.overflow.Add(1)
		fail(ctx, fasthttp.StatusServiceUnavailable, "accept queue full\n")
		return
	} else if w > o.maxWaiting.Load() {
		o.maxWaiting.Store(w) // racy maximum: good enough for a gauge
	}
	var sl *slot
	select {
	case sl = <-o.free:
	default:
		t := time.NewTimer(o.m.QueueTimeout)
		select {
		case sl = <-o.free:
			t.Stop()
		case <-t.C:
			o.waiting.Add(-1)
			cc.queueTimeout.Add(1)
			fail(ctx, fasthttp.StatusServiceUnavailable, "timed out waiting for a worker\n")
			return
		}
	}
	w := o.waiting.Add(-1)
	o.busy.Add(1)
	d := o.m.serviceTime(c, w)
	start := sl.freeAt
	if start.Before(arrived) {
		start = arrived
	}
	end := start.Add(d)
	o.sleepUntil(end)
	cc.serviceNS.Add(int64(d))

	status := fasthttp.StatusOK
	if c == clsCheckout {
		status = o.recordOrder(ctx)
	}
	o.busy.Add(-1)
	sl.freeAt = end
	o.free <- sl
	cc.served.Add(1)

	ctx.SetStatusCode(status)
	ctx.Response.Header.Set("Cache-Control", cacheControl[c])
	if c == clsCheckout {
		ctx.SetContentType("application/json")
		ctx.SetBodyString(`{"status":"accepted"}`)
		return
	}
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.SetBody(o.bodies[c])
}

// sleepUntil returns as close to end as it can. time.Sleep wakes up late (about
// 150 µs here, more on a loaded machine); behind a proxy that keeps exactly one
// request per slot, the next request is only sent once the late response is out, so
// the lateness would be idle slot time and the origin's capacity would depend on the
// proxy in a way the model does not intend. So it sleeps for less, by a moving
// average of the lateness, and yields until end.
func (o *Origin) sleepUntil(end time.Time) {
	const maxSlack = 300 * time.Microsecond
	slack := time.Duration(o.slackNS.Load())
	if d := time.Until(end) - slack; d > 0 {
		target := time.Now().Add(d)
		time.Sleep(d)
		// On a loaded CPU the lateness is milliseconds of waiting for the CPU, not
		// timer slack; following it would turn sleeping into spinning and load the
		// CPU further, so the estimate is capped.
		late := min(time.Since(target), maxSlack)
		// Racy read-modify-write: concurrent updates may lose one sample, harmless.
		o.slackNS.Store(int64(slack + (late-slack)/8))
	}
	for time.Now().Before(end) {
		runtime.Gosched()
	}
}

// fail answers an error without resetting the headers set so far (ctx.Error would
// drop X-Spike-Origin).
func fail(ctx *fasthttp.RequestCtx, status int, msg string) {
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBodyString(msg)
}

// recordOrder records a checkout at the end of its service, as the application
// commits it, and returns the status to answer.
func (o *Origin) recordOrder(ctx *fasthttp.RequestCtx) int {
	key := string(ctx.Request.Header.Peek("Idempotency-Key"))
	id := orderID(ctx.PostBody())
	if id == "" {
		id = key
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if id == "" {
		o.noID++
		return fasthttp.StatusBadRequest
	}
	if key != "" {
		if _, seen := o.keys[key]; seen {
			o.dupKeys++
			return fasthttp.StatusOK
		}
		o.keys[key] = struct{}{}
	}
	n := o.orders[id] + 1
	o.orders[id] = n
	if n > 1 {
		o.dupOrders++
	}
	return fasthttp.StatusOK
}

// orderID finds "order_id":"X" in a JSON body without decoding it all.
func orderID(body []byte) string {
	const k = `"order_id"`
	i := bytes.Index(body, []byte(k))
	if i < 0 {
		return ""
	}
	rest := bytes.TrimLeft(body[i+len(k):], " \t\r\n")
	rest, ok := bytes.CutPrefix(rest, []byte(":"))
	if !ok {
		return ""
	}
	rest = bytes.TrimLeft(rest, " \t\r\n")
	rest, ok = bytes.CutPrefix(rest, []byte(`"`))
	if !ok {
		return ""
	}
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

// OriginStats is the origin's view of a run, served by GET /stats.
type OriginStats struct {
	Model      Model                 `json:"model"`
	Classes    map[string]ClassStats `json:"classes"`
	Busy       int64                 `json:"busy"`
	Waiting    int64                 `json:"waiting"`
	MaxWaiting int64                 `json:"max_waiting"`
	Orders     int                   `json:"orders"`      // distinct order ids recorded
	DupKeys    int64                 `json:"dup_keys"`    // repeated Idempotency-Keys, answered without recording
	DupOrders  int64                 `json:"dup_orders"`  // order ids recorded more than once
	MissingID  int64                 `json:"missing_ids"` // checkouts with neither order id nor key
	CPUS       float64               `json:"cpu_s"`       // the origin process's CPU time so far
}

// ClassStats is one class's counters at the origin.
type ClassStats struct {
	Served       int64   `json:"served"`
	QueueTimeout int64   `json:"queue_timeouts"`
	Overflow     int64   `json:"overflows"`
	ServiceS     float64 `json:"service_s"` // slot time spent, penalty included
}

// Stats returns a snapshot of the counters.
func (o *Origin) Stats() OriginStats {
	s := OriginStats{Model: o.m.withJSON(), Classes: make(map[string]ClassStats, numClasses),
		Busy: o.busy.Load(), Waiting: o.waiting.Load(), MaxWaiting: o.maxWaiting.Load(), CPUS: selfCPU().Seconds()}
	for c := range o.cls {
		cc := &o.cls[c]
		s.Classes[classNames[c]] = ClassStats{Served: cc.served.Load(), QueueTimeout: cc.queueTimeout.Load(),
			Overflow: cc.overflow.Load(), ServiceS: time.Duration(cc.serviceNS.Load()).Seconds()}
	}
	o.mu.Lock()
	s.Orders, s.DupKeys, s.DupOrders, s.MissingID = len(o.orders), o.dupKeys, o.dupOrders, o.noID
	o.mu.Unlock()
	return s
}

// OrderIDs returns the recorded order ids, sorted.
func (o *Origin) OrderIDs() []string {
	o.mu.Lock()
	ids := make([]string, 0, len(o.orders))
	for id := range o.orders {
		ids = append(ids, id)
	}
	o.mu.Unlock()
	sort.Strings(ids)
	return ids
}

// ControlHandler serves /stats, /orders and /reset.
func (o *Origin) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(o.Stats())
	})
	mux.HandleFunc("GET /orders", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, strings.Join(o.OrderIDs(), "\n"))
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, r *http.Request) {
		o.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// modelFlags registers the model's flags on fs and returns a function that builds
// the Model once fs is parsed.
func modelFlags(fs *flag.FlagSet) func() (Model, error) {
	slots := fs.Int("slots", 16, "concurrent service slots")
	service := fs.String("service", defaultService, "service time per class")
	backlog := fs.Int("backlog", 4096, "accept queue length; requests beyond it get 503 at once")
	qt := fs.Duration("queue-timeout", 5*time.Second, "longest wait for a slot; then 503 without service")
	penalty := fs.Float64("backlog-penalty", 0.15, "service-time increase when the accept queue is full (linear in its occupancy)")
	return func() (Model, error) {
		m := Model{Slots: *slots, Backlog: *backlog, QueueTimeout: *qt, Penalty: *penalty}
		if err := parseClassList(defaultService, &m.Service, time.ParseDuration); err != nil {
			return m, err
		}
		if err := parseClassList(*service, &m.Service, time.ParseDuration); err != nil {
			return m, fmt.Errorf("-service: %w", err)
		}
		if m.Slots < 1 || m.Backlog < 0 || m.QueueTimeout <= 0 || m.Penalty < 0 {
			return m, errors.New("want -slots >= 1, -backlog >= 0, -queue-timeout > 0, -backlog-penalty >= 0")
		}
		return m, nil
	}
}

func newOriginServer(o *Origin) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:               o.Handle,
		Name:                  "spike-origin",
		Concurrency:           1 << 20,
		IdleTimeout:           90 * time.Second,
		ReadTimeout:           60 * time.Second,
		NoDefaultDate:         true,
		NoDefaultServerHeader: true,
		CloseOnShutdown:       true,
	}
}

func cmdOrigin(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("spike origin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:17150", "data listener (behind the proxy)")
	control := fs.String("control", "127.0.0.1:17151", "control listener: /stats, /orders, /reset")
	model := modelFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	m, err := model()
	if err != nil {
		return err
	}
	o := NewOrigin(m)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	cln, err := net.Listen("tcp", *control)
	if err != nil {
		ln.Close()
		return err
	}
	srv := newOriginServer(o)
	csrv := &http.Server{Handler: o.ControlHandler(), ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	go func() { errc <- csrv.Serve(cln) }()
	fmt.Fprintf(stderr, "spike origin: %s (control %s): %d slots, capacity %.0f req/s for the default mix\n",
		ln.Addr(), cln.Addr(), m.Slots, m.CapacityRPS(mustMix(defaultMix)))
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = csrv.Shutdown(sctx)
	_ = srv.ShutdownWithContext(sctx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func mustMix(s string) Mix {
	m, err := parseMix(s)
	if err != nil {
		panic(err)
	}
	return m
}
