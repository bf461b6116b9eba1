package main

import (
	"bufio"
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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// Model is the fleet's capacity and overload behaviour.
type Model struct {
	// Slots is the shop fleet's service slots, all backends together; the
	// back-office backend is not counted.
	Slots        int                       `json:"slots"`
	Backends     []BackendModel            `json:"backends"`
	Service      [numClasses]time.Duration `json:"-"`
	ServiceMS    map[string]float64        `json:"service_ms"`
	Backlog      int                       `json:"backlog_per_slot"` // accept queue per service slot
	QueueTimeout time.Duration             `json:"-"`
	QueueTimeS   float64                   `json:"queue_timeout_s"`
	Penalty      float64                   `json:"backlog_penalty"`
}

// BackendModel is one origin backend: its own listener, slots and accept queue.
type BackendModel struct {
	Name       string `json:"name"`
	Addr       string `json:"addr"`
	Slots      int    `json:"slots"`
	Backoffice bool   `json:"backoffice,omitempty"` // the back office's own server, not part of the shop fleet
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

// MeanService is the mean service time of the shop's part of mix (the back office
// has its own server), without overload.
func (m Model) MeanService(mix Mix) time.Duration {
	s, w := 0.0, 0.0
	for c := range m.Service {
		if c == clsBackoffice {
			continue
		}
		s += mix.Share(c) * float64(m.Service[c])
		w += mix.Share(c)
	}
	if w == 0 {
		return 0
	}
	return time.Duration(s / w)
}

// CapacityRPS is the shop fleet's nominal capacity for the shop's part of mix:
// slots over the mean service time, nothing cached.
func (m Model) CapacityRPS(mix Mix) float64 {
	ms := m.MeanService(mix)
	if ms <= 0 {
		return 0
	}
	return float64(m.Slots) / ms.Seconds()
}

// serviceTime is class c's service time when waiting requests are queued behind it
// in an accept queue of length backlog: the base time, lengthened linearly with the
// queue's occupancy up to Penalty when it is full.
func (m Model) serviceTime(c int, waiting int64, backlog int) time.Duration {
	occ := 0.0
	if backlog > 0 && waiting > 0 {
		occ = min(float64(waiting)/float64(backlog), 1)
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

// orderBook is the shop's order database, shared by every backend of the fleet as
// an application's database would be. It deduplicates by the client's
// Idempotency-Key, as the IETF draft means it: a POST whose key was already
// processed is answered 200 and not processed again. The order id in the body is
// the truth the bench checks against: an order id processed twice (under two keys)
// is an order processed twice.
type orderBook struct {
	mu        sync.Mutex
	keys      map[string]struct{}  // Idempotency-Keys processed
	orders    map[string]*orderRec // order id -> its processing
	dupKeys   int64                // POSTs whose key was already processed (answered, not processed)
	dupOrders int64                // processings of an order id already processed
	noID      int64                // order POSTs with neither an order id nor a key
	replays   int64                // POSTs carrying Floodgate-Capture-Id (a proxy's replay), processed or not
}

// orderRec is one order id's processing.
type orderRec struct {
	n        int32
	firstMS  int64 // when first processed, Unix milliseconds
	replayed bool  // first processed from a request with Floodgate-Capture-Id
}

func newOrderBook() *orderBook {
	b := &orderBook{}
	b.reset()
	return b
}

func (b *orderBook) reset() {
	b.mu.Lock()
	b.keys = make(map[string]struct{}, 1<<16)
	b.orders = make(map[string]*orderRec, 1<<16)
	b.dupKeys, b.dupOrders, b.noID, b.replays = 0, 0, 0, 0
	b.mu.Unlock()
}

// process records an order at the end of its service, as the application commits
// it, and returns the status to answer.
func (b *orderBook) process(key, id string, replay bool, now time.Time) int {
	if id == "" {
		id = key
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if replay {
		b.replays++
	}
	if id == "" {
		b.noID++
		return fasthttp.StatusBadRequest
	}
	if key != "" {
		if _, seen := b.keys[key]; seen {
			b.dupKeys++
			return fasthttp.StatusOK
		}
		b.keys[key] = struct{}{}
	}
	r := b.orders[id]
	if r == nil {
		r = &orderRec{firstMS: now.UnixMilli(), replayed: replay}
		b.orders[id] = r
	}
	r.n++
	if r.n > 1 {
		b.dupOrders++
	}
	return fasthttp.StatusOK
}

// Origin is one backend of the shop application: its own service slots and accept
// queue, the fleet's order book. Safe for concurrent use.
type Origin struct {
	m       *Model
	name    string
	slots   int
	backlog int        // accept queue length: m.Backlog per slot
	free    chan *slot // idle slots; its receive queue is the FIFO accept queue
	book    *orderBook

	waiting, busy, maxWaiting atomic.Int64
	slackNS                   atomic.Int64 // how late time.Sleep wakes up, moving average
	cls                       [numClasses]classCounters

	bodies *[numClasses][]byte
}

var cacheControl = [numClasses]string{
	clsStatic:     "public, max-age=300",
	clsProduct:    "public, max-age=10",
	clsSearch:     "no-store", // personalised results: nothing may store them
	clsCheckout:   "no-store",
	clsBackoffice: "private, no-store",
}

var bodySize = [numClasses]int{clsStatic: 1024, clsProduct: 4096, clsSearch: 2048, clsCheckout: 0, clsBackoffice: 2048}

// Fleet is the origin: a shop of one or more backends of unequal size, and the back
// office's own server, sharing one order book.
type Fleet struct {
	m        Model
	backends []*Origin
	book     *orderBook
}

// NewFleet returns the fleet of m.Backends.
func NewFleet(m Model) *Fleet {
	f := &Fleet{m: m, book: newOrderBook()}
	bodies := new([numClasses][]byte)
	for c, n := range bodySize {
		bodies[c] = bytes.Repeat([]byte{'a' + byte(c)}, n)
	}
	for _, b := range m.Backends {
		o := &Origin{m: &f.m, name: b.Name, slots: b.Slots, backlog: m.Backlog * b.Slots,
			free: make(chan *slot, b.Slots), book: f.book, bodies: bodies}
		for range b.Slots {
			o.free <- &slot{}
		}
		f.backends = append(f.backends, o)
	}
	return f
}

// Reset zeroes every counter and forgets every order.
func (f *Fleet) Reset() {
	for _, o := range f.backends {
		for c := range o.cls {
			o.cls[c].served.Store(0)
			o.cls[c].queueTimeout.Store(0)
			o.cls[c].overflow.Store(0)
			o.cls[c].serviceNS.Store(0)
		}
		o.maxWaiting.Store(o.waiting.Load())
	}
	f.book.reset()
}

func classOf(path []byte) (int, bool) {
	switch {
	case bytes.HasPrefix(path, []byte("/img/")):
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

// Handle serves one request of the backend's data listener.
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
	h := &ctx.Response.Header
	h.Set("X-Spike-Origin", classNames[c])
	h.Set("X-Spike-Backend", o.name)
	// The request's own id, echoed: a cache that answers with a stored response
	// answers with another request's id.
	if id := ctx.Request.Header.Peek("X-Spike-Req"); len(id) > 0 {
		h.SetBytesV("X-Spike-Req", id)
	}
	cc := &o.cls[c]

	// The accept queue: bounded, first come first served, with a timeout.
	arrived := time.Now()
	if w := o.waiting.Add(1); w > int64(o.backlog) {
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
	d := o.m.serviceTime(c, w, o.backlog)
	start := sl.freeAt
	if start.Before(arrived) {
		start = arrived
	}
	end := start.Add(d)
	o.sleepUntil(end)
	cc.serviceNS.Add(int64(d))

	status := fasthttp.StatusOK
	if c == clsCheckout {
		status = o.book.process(string(ctx.Request.Header.Peek("Idempotency-Key")), orderID(ctx.PostBody()),
			len(ctx.Request.Header.Peek("Floodgate-Capture-Id")) > 0, end)
	}
	o.busy.Add(-1)
	sl.freeAt = end
	o.free <- sl
	cc.served.Add(1)

	ctx.SetStatusCode(status)
	h.Set("Cache-Control", cacheControl[c])
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
	Classes    map[string]ClassStats `json:"classes"` // all backends together
	Backends   []BackendStats        `json:"backends"`
	Busy       int64                 `json:"busy"`
	Waiting    int64                 `json:"waiting"`
	MaxWaiting int64                 `json:"max_waiting"` // the largest of the backends' maxima
	Orders     int                   `json:"orders"`      // distinct order ids processed
	DupKeys    int64                 `json:"dup_keys"`    // repeated Idempotency-Keys, answered without processing
	DupOrders  int64                 `json:"dup_orders"`  // order ids processed more than once
	MissingID  int64                 `json:"missing_ids"` // orders with neither order id nor key
	Replays    int64                 `json:"replays"`     // order POSTs with Floodgate-Capture-Id
	CPUS       float64               `json:"cpu_s"`       // the origin process's CPU time so far
}

// BackendStats is one backend's counters.
type BackendStats struct {
	Name       string  `json:"name"`
	Slots      int     `json:"slots"`
	Served     int64   `json:"served"`
	Refused    int64   `json:"refused"` // accept queue full or timed out
	MaxWaiting int64   `json:"max_waiting"`
	ServiceS   float64 `json:"service_s"`
}

// ClassStats is one class's counters at the origin.
type ClassStats struct {
	Served       int64   `json:"served"`
	QueueTimeout int64   `json:"queue_timeouts"`
	Overflow     int64   `json:"overflows"`
	ServiceS     float64 `json:"service_s"` // slot time spent, penalty included
}

// Stats returns a snapshot of the counters.
func (f *Fleet) Stats() OriginStats {
	s := OriginStats{Model: f.m.withJSON(), Classes: make(map[string]ClassStats, numClasses), CPUS: selfCPU().Seconds()}
	var cls [numClasses]ClassStats
	for _, o := range f.backends {
		b := BackendStats{Name: o.name, Slots: o.slots, MaxWaiting: o.maxWaiting.Load()}
		s.Busy += o.busy.Load()
		s.Waiting += o.waiting.Load()
		s.MaxWaiting = max(s.MaxWaiting, b.MaxWaiting)
		for c := range o.cls {
			cc := &o.cls[c]
			cs := ClassStats{Served: cc.served.Load(), QueueTimeout: cc.queueTimeout.Load(),
				Overflow: cc.overflow.Load(), ServiceS: time.Duration(cc.serviceNS.Load()).Seconds()}
			cls[c].Served += cs.Served
			cls[c].QueueTimeout += cs.QueueTimeout
			cls[c].Overflow += cs.Overflow
			cls[c].ServiceS += cs.ServiceS
			b.Served += cs.Served
			b.Refused += cs.QueueTimeout + cs.Overflow
			b.ServiceS += cs.ServiceS
		}
		s.Backends = append(s.Backends, b)
	}
	for c := range cls {
		s.Classes[classNames[c]] = cls[c]
	}
	b := f.book
	b.mu.Lock()
	s.Orders, s.DupKeys, s.DupOrders, s.MissingID, s.Replays = len(b.orders), b.dupKeys, b.dupOrders, b.noID, b.replays
	b.mu.Unlock()
	return s
}

// OrderAt is when an order was first processed, and whether from a replay.
type OrderAt struct {
	ID       string
	AtMS     int64 // Unix milliseconds
	Replayed bool
}

// Orders returns the processed orders, sorted by id.
func (f *Fleet) Orders() []OrderAt {
	b := f.book
	b.mu.Lock()
	out := make([]OrderAt, 0, len(b.orders))
	for id, r := range b.orders {
		out = append(out, OrderAt{ID: id, AtMS: r.firstMS, Replayed: r.replayed})
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// ControlHandler serves /stats, /orders and /reset. /orders is one order a line:
// its id, when it was first processed (Unix milliseconds) and 1 when that was a
// replay (Floodgate-Capture-Id), else 0.
func (f *Fleet) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(f.Stats())
	})
	mux.HandleFunc("GET /orders", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		bw := bufio.NewWriter(w)
		for _, o := range f.Orders() {
			rep := 0
			if o.Replayed {
				rep = 1
			}
			fmt.Fprintf(bw, "%s %d %d\n", o.ID, o.AtMS, rep)
		}
		_ = bw.Flush()
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, r *http.Request) {
		f.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// parseBackends parses "ADDR=SLOTS,ADDR=SLOTS".
func parseBackends(s, prefix string, backoffice bool) ([]BackendModel, error) {
	var out []BackendModel
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for i, kv := range strings.Split(s, ",") {
		addr, n, ok := strings.Cut(strings.TrimSpace(kv), "=")
		slots, err := strconv.Atoi(n)
		if !ok || addr == "" || err != nil || slots < 1 {
			return nil, fmt.Errorf("%q: want ADDR=SLOTS with SLOTS >= 1", kv)
		}
		out = append(out, BackendModel{Name: prefix + strconv.Itoa(i+1), Addr: addr, Slots: slots, Backoffice: backoffice})
	}
	return out, nil
}

// defaultShop is the unequal shop fleet: 8, 6 and 2 service slots.
const defaultShop = "127.0.0.1:17150=8,127.0.0.1:17151=6,127.0.0.1:17152=2"

// modelFlags registers the model's flags on fs and returns a function that builds
// the Model once fs is parsed.
func modelFlags(fs *flag.FlagSet) func() (Model, error) {
	shop := fs.String("shop", defaultShop, "the shop's backends, ADDR=SLOTS, comma-separated: one listener each")
	bo := fs.String("backoffice", "127.0.0.1:17153=8", "the back office's own server, ADDR=SLOTS (empty: none)")
	service := fs.String("service", defaultService, "service time per class")
	backlog := fs.Int("backlog", 256, "accept queue length per service slot; requests beyond it get 503 at once")
	qt := fs.Duration("queue-timeout", 5*time.Second, "longest wait for a slot; then 503 without service")
	penalty := fs.Float64("backlog-penalty", 0.15, "service-time increase when the accept queue is full (linear in its occupancy)")
	return func() (Model, error) {
		m := Model{Backlog: *backlog, QueueTimeout: *qt, Penalty: *penalty}
		if err := parseClassList(defaultService, &m.Service, time.ParseDuration); err != nil {
			return m, err
		}
		if err := parseClassList(*service, &m.Service, time.ParseDuration); err != nil {
			return m, fmt.Errorf("-service: %w", err)
		}
		sb, err := parseBackends(*shop, "shop", false)
		if err != nil {
			return m, fmt.Errorf("-shop: %w", err)
		}
		if len(sb) == 0 {
			return m, errors.New("-shop: at least one backend")
		}
		bb, err := parseBackends(*bo, "backoffice", true)
		if err != nil || len(bb) > 1 {
			return m, fmt.Errorf("-backoffice: want one ADDR=SLOTS or nothing (%v)", err)
		}
		m.Backends = append(sb, bb...)
		for _, b := range sb {
			m.Slots += b.Slots
		}
		if m.Backlog < 0 || m.QueueTimeout <= 0 || m.Penalty < 0 {
			return m, errors.New("want -backlog >= 0, -queue-timeout > 0, -backlog-penalty >= 0")
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
	control := fs.String("control", "127.0.0.1:17154", "control listener: /stats, /orders, /reset")
	model := modelFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	m, err := model()
	if err != nil {
		return err
	}
	f := NewFleet(m)
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for _, b := range m.Backends {
		ln, err := net.Listen("tcp", b.Addr)
		if err != nil {
			return err
		}
		lns = append(lns, ln)
	}
	cln, err := net.Listen("tcp", *control)
	if err != nil {
		return err
	}
	csrv := &http.Server{Handler: f.ControlHandler(), ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, len(lns)+1)
	var srvs []*fasthttp.Server
	for i, ln := range lns {
		srv := newOriginServer(f.backends[i])
		srvs = append(srvs, srv)
		go func() { errc <- srv.Serve(ln) }()
	}
	go func() { errc <- csrv.Serve(cln) }()
	for _, b := range m.Backends {
		fmt.Fprintf(stderr, "spike origin: %s %s: %d slots\n", b.Name, b.Addr, b.Slots)
	}
	fmt.Fprintf(stderr, "spike origin: control %s; shop %d slots, capacity %.0f req/s for the default mix, nothing cached\n",
		cln.Addr(), m.Slots, m.CapacityRPS(mustMix(defaultMix)))
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = csrv.Shutdown(sctx)
	for _, srv := range srvs {
		_ = srv.ShutdownWithContext(sctx)
	}
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
