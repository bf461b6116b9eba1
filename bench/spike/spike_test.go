package main

import (
	"math"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

func TestProfileShape(t *testing.T) {
	t.Parallel()
	p := tvProfile()
	if got := p.Duration(); got != 260*time.Second {
		t.Fatalf("Duration = %v, want 260s", got)
	}
	if from, to := p.Recovery(); from != 110*time.Second || to != 260*time.Second {
		t.Fatalf("Recovery = %v..%v, want 110s..260s", from, to)
	}
	from, to := p.Plateau()
	if from != 30*time.Second || to != 90*time.Second {
		t.Fatalf("Plateau = %v..%v, want 30s..90s", from, to)
	}
	rates := []struct {
		at   time.Duration
		want float64
	}{
		{0, 300}, {9 * time.Second, 300}, {10 * time.Second, 300},
		{20 * time.Second, 2850}, // half way up
		{30 * time.Second, 5400}, {60 * time.Second, 5400}, {89 * time.Second, 5400},
		{100 * time.Second, 2850}, // half way down
		{110 * time.Second, 300}, {259 * time.Second, 300},
		{260 * time.Second, 0}, {-time.Second, 0},
	}
	for _, r := range rates {
		if got := p.Rate(r.at); math.Abs(got-r.want) > 1e-9 {
			t.Errorf("Rate(%v) = %v, want %v", r.at, got, r.want)
		}
	}
	// 10s x 300 + 20s x 2850 + 60s x 5400 + 20s x 2850 + 150s x 300
	expected := []struct {
		at   time.Duration
		want float64
	}{
		{10 * time.Second, 3000}, {20 * time.Second, 3000 + 10*(300+2850)/2.0},
		{30 * time.Second, 60000}, {90 * time.Second, 384000}, {140 * time.Second, 450000}, {260 * time.Second, 486000}, {time.Hour, 486000},
	}
	for _, e := range expected {
		if got := p.Expected(e.at); math.Abs(got-e.want) > 1e-6 {
			t.Errorf("Expected(%v) = %v, want %v", e.at, got, e.want)
		}
	}
	if got := p.Scaled(0.25, 0.5); got.Duration() != 65*time.Second || got.Peak != 2700 || got.Base != 150 {
		t.Errorf("Scaled(0.25, 0.5) = %+v", got)
	}
}

func TestSchedule(t *testing.T) {
	t.Parallel()
	p := tvProfile().Scaled(0.25, 1) // 121,500 requests expected
	mix := mustMix(defaultMix)
	s := p.Schedule(mix, 1, 0.1)
	want := p.Expected(p.Duration())
	retries := 0
	firstAt := map[uint32]time.Duration{}
	for _, a := range s {
		switch {
		case a.Class != clsCheckout:
		case !a.Retry:
			if _, dup := firstAt[a.Item]; dup {
				t.Fatalf("order %d sent twice without being a retry", a.Item)
			}
			firstAt[a.Item] = a.At
		default:
			retries++
			if at, ok := firstAt[a.Item]; !ok || a.At-at != retryAfter {
				t.Fatalf("retry of order %d at %v, first sent at %v (%v)", a.Item, a.At, at, ok)
			}
		}
	}
	if r := float64(retries) / float64(len(firstAt)); math.Abs(r-0.1) > 0.02 {
		t.Errorf("%d retries of %d orders, want about 10%%", retries, len(firstAt))
	}
	if d := math.Abs(float64(len(s)-retries) - want); d > 5*math.Sqrt(want) {
		t.Fatalf("%d arrivals, want %.0f ± %.0f", len(s), want, 5*math.Sqrt(want))
	}
	var byClass [numClasses]int
	from, to := p.Plateau()
	inPlateau := 0
	for i, a := range s {
		if i > 0 && a.At < s[i-1].At {
			t.Fatalf("arrival %d at %v before arrival %d at %v", i, a.At, i-1, s[i-1].At)
		}
		if a.At < 0 || a.At >= p.Duration() {
			t.Fatalf("arrival %d at %v outside the profile", i, a.At)
		}
		if n := classItems[a.Class]; n > 0 && uint64(a.Item) >= n {
			t.Fatalf("arrival %d: item %d of %s, want < %d", i, a.Item, classNames[a.Class], n)
		}
		if a.Retry {
			continue
		}
		byClass[a.Class]++
		if a.At >= from && a.At < to {
			inPlateau++
		}
	}
	for c, n := range byClass {
		got, want := float64(n)/float64(len(s)-retries), mix.Share(c)
		if math.Abs(got-want) > 0.01 {
			t.Errorf("%s: %.3f of arrivals, want %.3f", classNames[c], got, want)
		}
	}
	if rate := float64(inPlateau) / (to - from).Seconds(); math.Abs(rate-5400) > 5400*0.02 {
		t.Errorf("plateau rate %.0f req/s, want 5400", rate)
	}
	again := p.Schedule(mix, 1, 0.1)
	if len(again) != len(s) || again[len(s)/2] != s[len(s)/2] {
		t.Error("the same seed gave another schedule")
	}
}

func TestModel(t *testing.T) {
	t.Parallel()
	var m Model
	if err := parseClassList(defaultService, &m.Service, time.ParseDuration); err != nil {
		t.Fatal(err)
	}
	m.Slots, m.Backlog, m.Penalty = 16, 256, 0.15
	mix := mustMix(defaultMix)
	// The shop's 95%: (0.40 x 2 + 0.35 x 6 + 0.15 x 20 + 0.05 x 60) / 0.95 = 9.368 ms.
	if got := m.MeanService(mix); got != 9368421*time.Nanosecond {
		t.Errorf("MeanService = %v, want 9.368ms", got)
	}
	if got := m.CapacityRPS(mix); math.Abs(got-1707.9) > 0.1 {
		t.Errorf("CapacityRPS = %.1f, want 1707.9", got)
	}
	for _, tt := range []struct {
		waiting int64
		want    time.Duration
	}{{0, 20 * time.Millisecond}, {2048, 21500 * time.Microsecond}, {4096, 23 * time.Millisecond}, {99999, 23 * time.Millisecond}} {
		if got := m.serviceTime(clsSearch, tt.waiting, 4096); got != tt.want {
			t.Errorf("serviceTime(search, %d waiting) = %v, want %v", tt.waiting, got, tt.want)
		}
	}
}

func TestParseLists(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"static", "nosuch=1", "static=-1", "static=0,page=0,search=0,order=0,backoffice=0"} {
		if _, err := parseMix(bad); err == nil {
			t.Errorf("parseMix(%q) accepted", bad)
		}
	}
	m, err := parseMix("static=1,order=3")
	if err != nil || m.Share(clsCheckout) != 0.75 || m.pick(0.1) != clsStatic || m.pick(0.5) != clsCheckout {
		t.Errorf("parseMix: %v, %v", m, err)
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		a    answerInfo
		want outcome
	}{
		{"origin 200", answerInfo{status: 200, fromOrigin: true}, outServed},
		{"miss stored", answerInfo{status: 200, fromOrigin: true, cacheStatus: "floodgate; fwd=uri-miss; fwd-status=200; stored; ttl=30"}, outServed},
		{"revalidated", answerInfo{status: 200, fromOrigin: true, cacheStatus: "floodgate; fwd=stale; fwd-status=304; ttl=30"}, outServed},
		{"another request's answer", answerInfo{status: 200, fromOrigin: true, otherReq: true}, outCached},
		{"another request's, stale", answerInfo{status: 200, fromOrigin: true, otherReq: true, cacheStatus: "nginx; detail=stale"}, outDegraded},
		{"fresh hit", answerInfo{status: 200, fromOrigin: true, cacheStatus: "floodgate; hit; ttl=12"}, outCached},
		{"collapsed", answerInfo{status: 200, fromOrigin: true, cacheStatus: "floodgate; fwd=uri-miss; collapsed; ttl=3"}, outCached},
		{"degraded hit", answerInfo{status: 200, fromOrigin: true, cacheStatus: "floodgate; hit; ttl=-40; detail=degraded"}, outDegraded},
		{"fresh in degraded mode", answerInfo{status: 200, fromOrigin: true, cacheStatus: "floodgate; hit; ttl=5; detail=degraded"}, outDegraded},
		{"stale if error", answerInfo{status: 200, fromOrigin: true, cacheStatus: "floodgate; fwd=stale; fwd-status=503; ttl=-3; detail=stale-if-error"}, outDegraded},
		{"degraded header", answerInfo{status: 200, fromOrigin: true, degradedHdr: true}, outDegraded},
		{"proxy-made 200", answerInfo{status: 200}, outDegraded},
		{"captured", answerInfo{status: 202, captureID: true}, outCaptured},
		{"202 without id", answerInfo{status: 202}, outDegraded},
		{"shed 503", answerInfo{status: 503, retryAfter: true}, outShed},
		{"shed 429", answerInfo{status: 429, retryAfter: true}, outShed},
		{"503 without Retry-After", answerInfo{status: 503}, outProxyErr},
		{"origin 503", answerInfo{status: 503, fromOrigin: true, retryAfter: true}, outOriginErr},
		{"forbidden", answerInfo{status: 403}, outProxyErr},
	}
	for _, tt := range tests {
		if got := classify(tt.a); got != tt.want {
			t.Errorf("%s: classify = %s, want %s", tt.name, outcomeNames[got], outcomeNames[tt.want])
		}
	}
}

func TestTransitions(t *testing.T) {
	t.Parallel()
	text := `# HELP floodgate_degrade_transitions_total Degraded-mode transitions.
# TYPE floodgate_degrade_transitions_total counter
floodgate_degrade_transitions_total{pool="shop",to="degraded"} 1
floodgate_degrade_transitions_total{pool="shop",to="normal"} 1
floodgate_degrade_transitions_total{pool="bo",to="degraded"} 2 1700000000000
floodgate_degrade_transitions_totalx 9
floodgate_degraded{pool="shop"} 0
`
	by, found := transitions(text)
	if !found || by["degraded"] != 3 || by["normal"] != 1 || len(by) != 2 {
		t.Errorf("transitions = %v, %v", by, found)
	}
	if _, found := transitions("floodgate_requests_total 5\n"); found {
		t.Error("found transitions in a text without them")
	}
}

// TestAnalyze checks the report arithmetic on a hand-made run: a 10 s profile with a
// 4 s plateau, 2 slots of 10 ms static service.
func TestAnalyze(t *testing.T) {
	t.Parallel()
	prof := Profile{Base: 1, Peak: 1, Lead: 2 * time.Second, Rise: time.Second, Hold: 4 * time.Second, Fall: time.Second, Tail: 2 * time.Second}
	var m Model
	m.Slots = 2
	for c := range m.Service {
		m.Service[c] = 10 * time.Millisecond
	}
	m.Service[clsCheckout] = 20 * time.Millisecond
	mix := mustMix("static=3,order=1")
	sec := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	type req struct {
		at    float64
		cls   int
		lat   float64
		out   outcome
		atOri bool // checkout recorded at the origin
	}
	reqs := []req{
		{0.5, clsStatic, 0.1, outServed, false},     // before the plateau
		{3.1, clsStatic, 0.1, outServed, false},     // plateau: static work 10ms
		{3.2, clsStatic, 0.3, outServed, false},     // plateau
		{3.3, clsStatic, 0.5, outCached, false},     // plateau, not origin work
		{4.0, clsStatic, 0.2, outShed, false},       // plateau
		{4.5, clsStatic, 10, outNoAnswer, false},    // answered after the plateau: not counted in it
		{5.0, clsCheckout, 0.4, outServed, true},    // plateau: checkout work 20ms
		{5.5, clsCheckout, 0.1, outCaptured, false}, // confirmed, never reached: lost
		{6.0, clsCheckout, 0.1, outCaptured, true},  // captured then replayed
		{6.5, clsCheckout, 0.2, outOriginErr, true}, // failed but recorded: unconfirmed
		{6.6, clsCheckout, 0, outOverflow, false},   // never sent
		{6.9, clsStatic, 1.5, outServed, false},     // sent in the plateau, answered after it
	}
	start := time.Unix(1000, 0)
	in := runData{name: "test", prof: prof, mix: mix, model: m, runID: "r", orders: map[string]OrderAt{"elsewhere": {}}, start: start, slo: time.Second}
	for c := range in.timeouts {
		in.timeouts[c] = 10 * time.Second
	}
	for i, r := range reqs {
		in.sched = append(in.sched, Arrival{At: sec(r.at), Class: uint8(r.cls), Item: uint32(i)})
		in.recs = append(in.recs, record{lat: sec(r.lat), out: r.out, lagUS: int32(i * 1000)})
		if r.atOri {
			in.orders[orderIDOf("r", i)] = OrderAt{AtMS: start.Add(sec(r.at + 0.5)).UnixMilli()}
		}
	}
	in.origin = &OriginStats{DupOrders: 1, DupKeys: 2}
	in.replayRate = 2.5
	rep := analyze(in)

	p := rep.Plateau
	if p.FromS != 3 || p.ToS != 7 {
		t.Errorf("plateau %v..%v, want 3..7", p.FromS, p.ToS)
	}
	// Served in the plateau: 2 static (10ms each) + 1 checkout (20ms) = 40ms of work
	// over 2 slots x 4 s = 0.5%.
	if math.Abs(p.GoodputPct-0.5) > 1e-9 {
		t.Errorf("GoodputPct = %v, want 0.5", p.GoodputPct)
	}
	if math.Abs(p.ServedRPS-0.75) > 1e-9 || math.Abs(p.CachedRPS-0.25) > 1e-9 || math.Abs(p.ShedRPS-0.25) > 1e-9 ||
		math.Abs(p.CapturedRPS-0.5) > 1e-9 || math.Abs(p.ErrorRPS-0.25) > 1e-9 || p.NoAnswerRPS != 0 {
		t.Errorf("plateau rates %+v", p)
	}
	if math.Abs(p.OfferedRPS-11.0/4) > 1e-9 { // arrivals 3.1 .. 6.9, overflow included
		t.Errorf("OfferedRPS = %v, want 2.75", p.OfferedRPS)
	}
	// Nominal capacity: 2 slots / (0.75 x 10ms + 0.25 x 20ms) = 160 req/s.
	if math.Abs(rep.CapacityRPS-160) > 1e-9 || math.Abs(p.ServedPctOfNominal-100*0.75/160) > 1e-9 {
		t.Errorf("CapacityRPS = %v, ServedPctOfNominal = %v", rep.CapacityRPS, p.ServedPctOfNominal)
	}

	tot := rep.Totals
	if tot.Sent != 11 || tot.Overflow != 1 || tot.Served != 5 || tot.OK() != 6 || tot.Answered() != 8 || tot.Errors() != 1 {
		t.Errorf("totals %+v", tot)
	}
	st := rep.Classes[clsStatic]
	if st.Counts.Sent != 7 || math.Abs(st.OKPct-500.0/7) > 1e-9 || st.P50ms != 100 || st.P99ms != 1500 {
		t.Errorf("static %+v", st)
	}
	o := rep.Orders
	want := Orders{Submitted: 4, Answered2xx: 1, Captured: 2, Failed: 1, ConfirmedPct: 75,
		ReachedOrigin: 3, Lost: 1, StillArrivingPerS: 2.5, Unconfirmed: 1, DupOrders: 1, DupKeys: 2, Foreign: 1,
		CapturedLastAtS: 6.5, CapturedAfterExitS: -1, CapturedMissing: 1}
	if o != want {
		t.Errorf("orders\n got %+v\nwant %+v", o, want)
	}
	if got := stillArriving(o); got != " (still arriving at 2/s: ~0s more)" {
		t.Errorf("stillArriving = %q", got)
	}
	if rep.Generator.LagMaxms != 11 || rep.Generator.Overflow != 1 {
		t.Errorf("generator %+v", rep.Generator)
	}
	var served, offered int
	for _, s := range rep.Timeline {
		served += s.Served
		offered += s.Offered
	}
	if served != 5 || offered != 12 {
		t.Errorf("timeline: %d served, %d offered; want 5, 12", served, offered)
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := percentile(ds, tt.q); got != tt.want {
			t.Errorf("percentile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	if percentile(nil, 0.5) != 0 {
		t.Error("percentile of nothing")
	}
}

// TestOrigin drives the origin in memory with tiny service times: the idempotency
// key, the order id, the accept queue's limit and its timeout.
func TestOrigin(t *testing.T) {
	t.Parallel()
	m := Model{Slots: 1, Backlog: 1, QueueTimeout: 50 * time.Millisecond}
	for c := range m.Service {
		m.Service[c] = time.Millisecond
	}
	m.Service[clsSearch] = 200 * time.Millisecond
	m.Backends = []BackendModel{{Name: "shop1", Slots: 1}}
	f := NewFleet(m)
	o := f.backends[0]
	ln := fasthttputil.NewInmemoryListener()
	srv := newOriginServer(o)
	go srv.Serve(ln) //nolint:errcheck // ends with ln.Close
	defer ln.Close()
	c := &fasthttp.Client{Dial: func(string) (net.Conn, error) { return ln.Dial() }}

	do := func(method, uri, key, body string, hdr ...string) (int, string) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://origin" + uri)
		req.Header.SetMethod(method)
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		req.SetBodyString(body)
		if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
			t.Fatalf("%s %s: %v", method, uri, err)
		}
		return resp.StatusCode(), string(resp.Header.Peek("X-Spike-Origin"))
	}
	if s, cls := do("GET", "/img/app-1.png", "", ""); s != 200 || cls != "static" {
		t.Errorf("static: %d %q", s, cls)
	}
	if s, _ := do("GET", "/nosuch", "", ""); s != 404 {
		t.Errorf("unknown path: %d", s)
	}
	for _, r := range []struct{ key, body string }{
		{"k1", `{"order_id": "o1"}`},
		{"k1", `{"order_id": "o1"}`}, // same key: answered, not recorded
		{"k2", `{"order_id":"o1"}`},  // another key, same order: a duplicate
		{"k3", `{"order_id":"o2"}`},
		{"k4", `{}`}, // no order id: the key stands for it
	} {
		if s, _ := do("POST", "/checkout", r.key, r.body); s != 200 {
			t.Errorf("checkout %s: %d", r.key, s)
		}
	}
	// A replay: the client's key kept, the capture id in its own header. Once with
	// a key already processed (deduplicated), once with a new order.
	for _, r := range []struct{ key, body string }{{"k3", `{"order_id":"o2"}`}, {"k5", `{"order_id":"o3"}`}} {
		if s, _ := do("POST", "/checkout", r.key, r.body, "Floodgate-Capture-Id", "c-"+r.key); s != 200 {
			t.Errorf("replay %s: %d", r.key, s)
		}
	}
	st := f.Stats()
	if st.Orders != 4 || st.DupKeys != 2 || st.DupOrders != 1 || st.Replays != 2 || st.Classes["order"].Served != 7 {
		t.Errorf("stats after orders: %+v", st)
	}
	var ids []string
	for _, o := range f.Orders() {
		ids = append(ids, o.ID)
		if o.AtMS <= 0 || o.Replayed != (o.ID == "o3") {
			t.Errorf("order %+v", o)
		}
	}
	if got := strings.Join(ids, ","); got != "k4,o1,o2,o3" {
		t.Errorf("Orders = %s", got)
	}

	// One slot busy with a 200 ms search, one request waiting: a third is refused
	// at once, and the waiting one times out after 50 ms.
	done := make(chan int, 3)
	go func() { s, _ := do("GET", "/search?q=a", "", ""); done <- s }()
	waitFor(t, func() bool { return o.busy.Load() == 1 })
	go func() { s, _ := do("GET", "/product/1", "", ""); done <- s }()
	waitFor(t, func() bool { return o.waiting.Load() == 1 })
	if s, _ := do("GET", "/product/2", "", ""); s != 503 {
		t.Errorf("beyond the accept queue: %d, want 503", s)
	}
	got := []int{<-done, <-done}
	if got[0] != 503 || got[1] != 200 {
		t.Errorf("waiting then searching: %v, want [503 200]", got)
	}
	st = f.Stats()
	if pc := st.Classes["page"]; pc.Overflow != 1 || pc.QueueTimeout != 1 {
		t.Errorf("page counters %+v", pc)
	}
	if b := st.Backends[0]; b.Refused != 2 || b.Slots != 1 {
		t.Errorf("backend counters %+v", b)
	}
	f.Reset()
	if st := f.Stats(); st.Orders != 0 || st.Classes["search"].Served != 0 {
		t.Errorf("after Reset: %+v", st)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not reached in 2s")
}

func TestDisturbed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		r    Report
		want bool
	}{
		{"quiet", Report{Machine: &Machine{OtherPct: 15, PeakOtherPct: 30}, Generator: GenStats{LagP99ms: 1.5}}, false},
		{"busy on average", Report{Machine: &Machine{OtherPct: 40, PeakOtherPct: 50}, Generator: GenStats{LagP99ms: 1.5}}, true},
		{"a burst", Report{Machine: &Machine{OtherPct: 20, PeakOtherPct: 90}, Generator: GenStats{LagP99ms: 1.5}}, true},
		{"late generator", Report{Machine: &Machine{OtherPct: 20, PeakOtherPct: 30}, Generator: GenStats{LagP99ms: 26}}, true},
		{"overflow", Report{Generator: GenStats{Overflow: 1}}, true},
		{"no machine figures", Report{}, false},
	}
	for _, tt := range tests {
		if got := disturbed(tt.r); got != tt.want {
			t.Errorf("%s: disturbed = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestBetween(t *testing.T) {
	t.Parallel()
	at := time.Now()
	a := reading{at: at, cpus: map[string]cpuTimes{"cpu": {0, 0}, "cpu0": {0, 0}, "cpu1": {0, 0}}, haveProxy: true}
	// 2 s later: cpu0 busy 150 of 200 ticks, cpu1 50 of 200; the run's processes
	// used 0.5 s (generator), 0.3 s (origin), 0.4 s (proxy).
	b := reading{at: at.Add(2 * time.Second), cpus: map[string]cpuTimes{"cpu": {200, 400}, "cpu0": {150, 200}, "cpu1": {50, 200}},
		self: 500 * time.Millisecond, origin: 300 * time.Millisecond, proxy: 400 * time.Millisecond, haveProxy: true}
	m := between(a, b)
	if m.CPUBusyPct["cpu0"] != 75 || m.CPUBusyPct["cpu1"] != 25 || m.GeneratorPct != 25 || m.OriginPct != 15 || m.ProxyPct != 20 ||
		math.Abs(m.OtherPct-40) > 1e-9 {
		t.Errorf("between = %+v", m)
	}
}
