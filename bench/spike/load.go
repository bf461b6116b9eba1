package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// outcome is how one request ended, from the client's side.
type outcome uint8

const (
	outNone      outcome = iota // not sent yet
	outServed                   // 2xx made by the origin for this request
	outCached                   // 2xx from the proxy's cache, fresh
	outDegraded                 // 2xx degraded: stale, marked degraded, or not made by the origin
	outCaptured                 // 202 with Floodgate-Capture-Id
	outShed                     // 503 or 429 with Retry-After, made by the proxy
	outOriginErr                // non-2xx made by the origin
	outProxyErr                 // any other non-2xx made by the proxy
	outConnErr                  // connection failed or closed without an answer
	outNoAnswer                 // client timeout
	outOverflow                 // not sent: the generator's in-flight bound was reached
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"none", "served", "cached", "degraded", "captured", "shed",
	"origin-err", "proxy-err", "conn-err", "no-answer", "overflow"}

// answerInfo is what classify needs to know about one response.
type answerInfo struct {
	status      int
	fromOrigin  bool   // X-Spike-Origin present
	otherReq    bool   // X-Spike-Req names another request: a stored response
	cacheStatus string // Cache-Status, all members
	degradedHdr bool   // X-Floodgate-Degraded present
	captureID   bool   // Floodgate-Capture-Id present
	retryAfter  bool   // Retry-After present
}

// classify turns a response into an outcome; see the package comment for the rules.
func classify(a answerInfo) outcome {
	ok := a.status >= 200 && a.status < 300
	cs := strings.ToLower(a.cacheStatus)
	switch {
	case a.status == 202 && a.captureID:
		return outCaptured
	case ok && (a.degradedHdr || cacheDegraded(cs) || !a.fromOrigin):
		return outDegraded
	case ok && (strings.Contains(cs, "; hit") || strings.Contains(cs, "collapsed") || a.otherReq):
		return outCached
	case ok:
		return outServed
	case a.fromOrigin:
		return outOriginErr
	case (a.status == 503 || a.status == 429) && a.retryAfter:
		return outShed
	default:
		return outProxyErr
	}
}

// cacheDegraded reports whether a (lower-cased) Cache-Status says the answer is stale
// or degraded: a detail naming staleness or degraded mode, or a negative ttl. A
// stale entry revalidated with the origin (fwd=stale without a detail) is not.
func cacheDegraded(cs string) bool {
	if strings.Contains(cs, "ttl=-") {
		return true
	}
	i := strings.Index(cs, "detail=")
	if i < 0 {
		return false
	}
	d := cs[i:]
	return strings.Contains(d, "stale") || strings.Contains(d, "degraded")
}

// record is the result of one scheduled request.
type record struct {
	lat    time.Duration // from the scheduled send time to the answer (or giving up)
	lagUS  int32         // how late the request was actually sent, in microseconds
	status uint16
	out    outcome
}

// loadConfig is what the generator needs besides the schedule.
type loadConfig struct {
	target       string // host:port of the proxy
	publicIP     string // source address of public traffic; empty for the default
	users        int    // with publicIP empty and users > 0: public traffic from this many addresses
	backofficeIP string // source address of back-office traffic
	timeouts     [numClasses]time.Duration
	maxInflight  int
	runID        string // prefix of order ids and idempotency keys
	progress     io.Writer
}

func orderIDOf(runID string, i int) string { return runID + "-" + strconv.Itoa(i) }

// userIP is the source address of public user k: 127.1.0.1 and up, all on the
// loopback interface, so that a proxy's per-address limits see many visitors
// rather than one.
func userIP(k int) string { return "127.1." + strconv.Itoa(k/250) + "." + strconv.Itoa(k%250+1) }

// newHostClient returns a keep-alive client for addr whose connections leave from
// localIP (any when empty).
func newHostClient(addr, localIP string, maxConns int) (*fasthttp.HostClient, error) {
	var laddr *net.TCPAddr
	if localIP != "" {
		ip := net.ParseIP(localIP)
		if ip == nil {
			return nil, fmt.Errorf("bad source address %q", localIP)
		}
		laddr = &net.TCPAddr{IP: ip}
	}
	return &fasthttp.HostClient{
		Addr:                      addr,
		Name:                      "spike",
		MaxConns:                  maxConns,
		MaxIdleConnDuration:       10 * time.Second, // shorter than every proxy's idle timeout
		MaxIdemponentCallAttempts: 1,                // one attempt per scheduled request
		DisablePathNormalizing:    true,
		ReadBufferSize:            8192,
		DialTimeout: func(a string, timeout time.Duration) (net.Conn, error) {
			d := net.Dialer{Timeout: timeout, LocalAddr: laddr}
			return d.Dial("tcp", a)
		},
	}, nil
}

// generator plays a schedule open loop.
type generator struct {
	cfg      loadConfig
	pub      []*fasthttp.HostClient // one per source address
	bo       *fasthttp.HostClient
	inflight atomic.Int64
	counts   [numOutcomes]atomic.Int64
}

func newGenerator(cfg loadConfig) (*generator, error) {
	g := &generator{cfg: cfg}
	ips := []string{cfg.publicIP}
	if cfg.publicIP == "" && cfg.users > 0 {
		ips = ips[:0]
		for k := range cfg.users {
			ips = append(ips, userIP(k))
		}
	}
	for _, ip := range ips {
		hc, err := newHostClient(cfg.target, ip, cfg.maxInflight+64)
		if err != nil {
			return nil, err
		}
		g.pub = append(g.pub, hc)
	}
	bo, err := newHostClient(cfg.target, cfg.backofficeIP, cfg.maxInflight+64)
	if err != nil {
		return nil, err
	}
	g.bo = bo
	return g, nil
}

// play sends every arrival at its time, counted from start, and returns when all
// have ended.
func (g *generator) play(sched []Arrival, start time.Time) []record {
	recs := make([]record, len(sched))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	if g.cfg.progress != nil {
		go g.report(start, stop)
	}
	for i := range sched {
		a := sched[i]
		if d := a.At - time.Since(start); d > 0 {
			time.Sleep(d)
		}
		if g.inflight.Load() >= int64(g.cfg.maxInflight) {
			recs[i].out = outOverflow
			g.counts[outOverflow].Add(1)
			continue
		}
		g.inflight.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.send(i, a, start, &recs[i])
		}()
	}
	wg.Wait()
	close(stop)
	return recs
}

func (g *generator) report(start time.Time, stop <-chan struct{}) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	var last [numOutcomes]int64
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		var b strings.Builder
		fmt.Fprintf(&b, "  t=%3.0fs in-flight %5d |", time.Since(start).Seconds(), g.inflight.Load())
		for o := outServed; o < numOutcomes; o++ {
			n := g.counts[o].Load()
			if d := n - last[o]; d > 0 {
				fmt.Fprintf(&b, " %s %.0f/s", outcomeNames[o], float64(d)/10)
			}
			last[o] = n
		}
		fmt.Fprintln(g.cfg.progress, b.String())
	}
}

func (g *generator) send(i int, a Arrival, start time.Time, rec *record) {
	defer g.inflight.Add(-1)
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)

	req.Header.SetHost(g.cfg.target)
	reqID := strconv.Itoa(i)
	req.Header.Set("X-Spike-Req", reqID)
	hc := g.pub[(uint(i)*2654435761)%uint(len(g.pub))] // a pseudo-random visitor
	switch a.Class {
	case clsStatic:
		req.SetRequestURI("/img/app-" + strconv.Itoa(int(a.Item)) + ".png")
	case clsProduct:
		req.SetRequestURI("/product/" + strconv.Itoa(int(a.Item)))
	case clsSearch:
		req.SetRequestURI("/search?q=term" + strconv.Itoa(int(a.Item)))
	case clsCheckout:
		id := orderIDOf(g.cfg.runID, int(a.Item))
		req.SetRequestURI("/checkout")
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.SetContentType("application/json")
		req.Header.Set("Idempotency-Key", "key-"+id)
		req.SetBodyString(`{"order_id":"` + id + `","items":[{"sku":"p-` + strconv.Itoa(int(a.Item)%5000) + `","qty":1}]}`)
	case clsBackoffice:
		req.SetRequestURI("/admin/orders?page=" + strconv.Itoa(int(a.Item)))
		hc = g.bo
	}
	due := start.Add(a.At)
	rec.lagUS = int32(min(time.Since(due)/time.Microsecond, 1<<31-1))
	err := hc.DoTimeout(req, resp, g.cfg.timeouts[a.Class])
	rec.lat = time.Since(due)
	if err != nil {
		rec.out = outConnErr
		if isTimeout(err) {
			rec.out = outNoAnswer
		}
	} else {
		h := &resp.Header
		rec.status = uint16(resp.StatusCode())
		rec.out = classify(answerInfo{
			status:      resp.StatusCode(),
			fromOrigin:  len(h.Peek("X-Spike-Origin")) > 0,
			otherReq:    len(h.Peek("X-Spike-Req")) > 0 && string(h.Peek("X-Spike-Req")) != reqID,
			cacheStatus: allValues(h, "Cache-Status"),
			degradedHdr: len(h.Peek("X-Floodgate-Degraded")) > 0,
			captureID:   len(h.Peek("Floodgate-Capture-Id")) > 0,
			retryAfter:  len(h.Peek("Retry-After")) > 0,
		})
	}
	g.counts[rec.out].Add(1)
}

func allValues(h *fasthttp.ResponseHeader, name string) string {
	vs := h.PeekAll(name)
	switch len(vs) {
	case 0:
		return ""
	case 1:
		return string(vs[0])
	}
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = string(v)
	}
	return strings.Join(parts, ", ")
}

func isTimeout(err error) bool {
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// control is a client of the origin's control listener.
type control struct {
	base string
	hc   *http.Client
}

func newControl(addr string) *control {
	return &control{base: "http://" + addr, hc: &http.Client{Timeout: 10 * time.Second}}
}

func (c *control) stats() (OriginStats, error) {
	var s OriginStats
	resp, err := c.hc.Get(c.base + "/stats")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("GET /stats: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return s, err
	}
	s.Model = s.Model.fromJSON()
	return s, nil
}

// orders returns the orders processed at the origin by id.
func (c *control) orders() (map[string]OrderAt, error) {
	resp, err := c.hc.Get(c.base + "/orders")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /orders: %s", resp.Status)
	}
	set := make(map[string]OrderAt, 1<<16)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			continue
		}
		at, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("GET /orders: %q: %w", sc.Text(), err)
		}
		set[f[0]] = OrderAt{ID: f[0], AtMS: at, Replayed: f[2] == "1"}
	}
	return set, sc.Err()
}

func (c *control) reset() error {
	resp, err := c.hc.Post(c.base+"/reset", "text/plain", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST /reset: %s", resp.Status)
	}
	return nil
}

// replayResult is how the wait for replayed orders ended.
type replayResult struct {
	waited time.Duration
	// rate is how fast distinct orders were still arriving at the origin over the
	// last ten seconds of the wait, per second; 0 when the count had settled.
	rate float64
}

// waitReplay polls the origin after the load until the number of distinct orders
// stops growing, so that orders replayed later by the proxy are counted. With no
// captured order there is nothing to wait for beyond stragglers: two quiet seconds
// end it. With captures, it ends when every confirmed order has arrived, or when
// the count grew and then stayed still for settle, or after maxWait.
func waitReplay(ctl *control, confirmed []string, captured int, maxWait, settle time.Duration, progress io.Writer) (replayResult, error) {
	start := time.Now()
	if captured == 0 {
		settle = min(settle, 2*time.Second)
	}
	type sample struct {
		at     time.Time
		orders int
	}
	var hist []sample
	last, grew, lastChange, lastPrint := -1, false, time.Now(), time.Time{}
	result := func() replayResult {
		r := replayResult{waited: time.Since(start)}
		// Rate over the last ten seconds, if the count moved in them.
		if n := len(hist); n >= 2 {
			i := n - 1
			for i > 0 && hist[n-1].at.Sub(hist[i-1].at) <= 10*time.Second {
				i--
			}
			if d := hist[n-1].at.Sub(hist[i].at).Seconds(); d > 0 && hist[n-1].orders > hist[i].orders {
				r.rate = float64(hist[n-1].orders-hist[i].orders) / d
			}
		}
		return r
	}
	for {
		s, err := ctl.stats()
		if err != nil {
			return result(), err
		}
		hist = append(hist, sample{time.Now(), s.Orders})
		if last >= 0 && s.Orders > last {
			grew, lastChange = true, time.Now()
		}
		if last < 0 {
			lastChange = time.Now()
		}
		if progress != nil && captured > 0 && time.Since(lastPrint) >= 10*time.Second {
			fmt.Fprintf(progress, "  replay wait %3.0fs: %d distinct orders at the origin, %d confirmed\n", time.Since(start).Seconds(), s.Orders, len(confirmed))
			lastPrint = time.Now()
		}
		last = s.Orders
		if captured > 0 && s.Orders >= len(confirmed) {
			set, err := ctl.orders()
			if err != nil {
				return result(), err
			}
			all := true
			for _, id := range confirmed {
				if _, ok := set[id]; !ok {
					all = false
					break
				}
			}
			if all {
				r := result()
				r.rate = 0
				return r, nil
			}
		}
		quiet := time.Since(lastChange) >= settle
		if (captured == 0 && quiet) || (grew && quiet) {
			r := result()
			r.rate = 0
			return r, nil
		}
		if time.Since(start) >= maxWait {
			return result(), nil
		}
		time.Sleep(time.Second)
	}
}

// transitions reads the sum of floodgate_degrade_transitions_total from a Prometheus
// text exposition, per value of its "to" label.
func transitions(text string) (byTo map[string]float64, found bool) {
	byTo = map[string]float64{}
	eachSample(text, "floodgate_degrade_transitions_total", func(l string, v float64) {
		to := "?"
		if i := strings.Index(l, `to="`); i >= 0 {
			rest := l[i+4:]
			if j := strings.IndexByte(rest, '"'); j >= 0 {
				to = rest[:j]
			}
		}
		byTo[to] += v
		found = true
	})
	return byTo, found
}

func fetchText(url string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return string(b), err
}

// waitTarget waits until the proxy answers anything with 2xx on the origin's health
// path, or gives up after d.
func waitTarget(target string, d time.Duration) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		resp, err := c.Get("http://" + target + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("%s does not answer /healthz: %v", target, last)
}

func cmdRun(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("spike run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("target", "", "host:port of the proxy under test (required)")
	name := fs.String("name", "", "name of the proxy, for the report (required)")
	ctlAddr := fs.String("origin-control", "127.0.0.1:17154", "the origin's control listener")
	metricsURL := fs.String("metrics", "", "floodgate's /metrics URL, for degraded mode over time and its transitions (optional)")
	scale := fs.Float64("scale", 1, "multiply every duration of the profile")
	rateScale := fs.Float64("rate-scale", 1, "multiply every rate of the profile")
	p0 := tvProfile()
	base := fs.Float64("base", p0.Base, "baseline rate, req/s")
	peak := fs.Float64("peak", p0.Peak, "plateau rate, req/s")
	lead := fs.Duration("lead", p0.Lead, "baseline before the rise")
	rise := fs.Duration("rise", p0.Rise, "ramp up")
	hold := fs.Duration("hold", p0.Hold, "plateau")
	fall := fs.Duration("fall", p0.Fall, "ramp down")
	tail := fs.Duration("tail", p0.Tail, "baseline after the fall (scaled; see -recovery)")
	recovery := fs.Duration("recovery", 0, "steady traffic after the fall, not scaled; overrides -tail (0: -tail x -scale)")
	slo := fs.Duration("slo", time.Second, "a 2xx counts as goodput when it arrives within this")
	retryShare := fs.Float64("retry-share", defaultRetryShare, "share of orders sent again with the same Idempotency-Key")
	replayRate := fs.Float64("replay-rate", 0, "the proxy's replay rate of captured orders, per second, for the replay budget (0: not judged)")
	exitBudget := fs.Duration("exit-budget", 0, "issue 15's bound on leaving degraded mode once traffic is steady: the proxy's hold + 3 windows (0: not judged)")
	mixS := fs.String("mix", defaultMix, "share of each class")
	timeout := fs.Duration("timeout", 10*time.Second, "client timeout: no answer by then counts as no answer")
	classTimeout := fs.String("class-timeout", "", "per-class client timeouts, e.g. search=3s")
	publicIP := fs.String("public-ip", "", "source address of all public traffic (default: -users addresses)")
	users := fs.Int("users", 1000, "public traffic comes from this many loopback addresses (127.1.0.1 and up)")
	boIP := fs.String("backoffice-ip", "127.0.0.2", "source address of back-office traffic")
	maxInflight := fs.Int("max-inflight", 18000, "bound on requests in flight (stay below the open-file limit)")
	replayWait := fs.Duration("replay-wait", 120*time.Second, "longest wait after the load for replayed orders")
	replaySettle := fs.Duration("replay-settle", 10*time.Second, "end the replay wait once the order count has not grown for this long")
	seed := fs.Uint64("seed", 1, "seed of arrival times, classes and URLs")
	jsonOut := fs.String("json", "", "write the report as JSON to this file")
	quiet := fs.Bool("quiet", false, "no progress lines")
	proxyPID := fs.Int("proxy-pid", 0, "the proxy's process id, to report its CPU use (optional)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *target == "" || *name == "" || fs.NArg() > 0 {
		fs.Usage()
		return errors.New("-target and -name are required")
	}
	mix, err := parseMix(*mixS)
	if err != nil {
		return fmt.Errorf("-mix: %w", err)
	}
	if *users < 1 || *users > 250*250 || *retryShare < 0 || *retryShare > 1 || *slo <= 0 {
		return errors.New("want 1 <= -users <= 62500, 0 <= -retry-share <= 1, -slo > 0")
	}
	cfg := loadConfig{target: *target, publicIP: *publicIP, users: *users, backofficeIP: *boIP,
		maxInflight: *maxInflight, runID: "o" + strconv.FormatInt(time.Now().Unix(), 36)}
	for c := range cfg.timeouts {
		cfg.timeouts[c] = *timeout
	}
	if err := parseClassList(*classTimeout, &cfg.timeouts, time.ParseDuration); err != nil {
		return fmt.Errorf("-class-timeout: %w", err)
	}
	if !*quiet {
		cfg.progress = stderr
	}
	prof := Profile{Base: *base, Peak: *peak, Lead: *lead, Rise: *rise, Hold: *hold, Fall: *fall, Tail: *tail}.Scaled(*scale, *rateScale)
	if *recovery > 0 {
		prof.Tail = *recovery
	}

	ctl := newControl(*ctlAddr)
	if err := ctl.reset(); err != nil {
		return fmt.Errorf("origin control %s: %w", *ctlAddr, err)
	}
	if err := waitTarget(*target, 15*time.Second); err != nil {
		return err
	}
	if err := ctl.reset(); err != nil { // forget the readiness probes
		return err
	}
	before, mErr := "", error(nil)
	if *metricsURL != "" {
		before, mErr = fetchText(*metricsURL)
	}
	sched := prof.Schedule(mix, *seed, *retryShare)
	gen, err := newGenerator(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "spike run %s: %d requests over %s (%.0f -> %.0f req/s) against %s\n",
		*name, len(sched), prof.Duration(), prof.Base, prof.Peak, *target)
	probe := startMachineProbe(*proxyPID, func() (time.Duration, error) {
		s, err := ctl.stats()
		return time.Duration(s.CPUS * float64(time.Second)), err
	})
	start := time.Now()
	var modes *modePoller
	if *metricsURL != "" {
		modes = startModePoller(start, func() (string, error) { return fetchText(*metricsURL) })
	}
	recs := gen.play(sched, start)
	machine := probe.finish()

	// Orders confirmed to clients, for the replay wait and the loss count.
	confirmedSet := map[string]bool{}
	captured := 0
	for i, a := range sched {
		if a.Class != clsCheckout {
			continue
		}
		switch recs[i].out {
		case outServed, outCached, outDegraded, outCaptured:
			confirmedSet[orderIDOf(cfg.runID, int(a.Item))] = true
		}
		if recs[i].out == outCaptured {
			captured++
		}
	}
	confirmed := make([]string, 0, len(confirmedSet))
	for id := range confirmedSet {
		confirmed = append(confirmed, id)
	}
	replay, err := waitReplay(ctl, confirmed, captured, *replayWait, *replaySettle, cfg.progress)
	if err != nil {
		return fmt.Errorf("replay wait: %w", err)
	}
	var samples []modeSample
	modesNote := "not measured (no -metrics)"
	if modes != nil {
		samples, modesNote = modes.finish()
	}
	ost, err := ctl.stats()
	if err != nil {
		return err
	}
	orders, err := ctl.orders()
	if err != nil {
		return err
	}
	in := runData{name: *name, target: *target, prof: prof, mix: mix, model: ost.Model, timeouts: cfg.timeouts,
		sched: sched, recs: recs, runID: cfg.runID, orders: orders, origin: &ost, replayWait: replay.waited, replayRate: replay.rate,
		start: start, slo: *slo, modeSamples: samples, modesNote: modesNote, proxyReplayRate: *replayRate, exitBudget: *exitBudget}
	switch {
	case *metricsURL == "":
		in.transNote = "not measured (no -metrics)"
	case mErr != nil:
		in.transNote = "unavailable: " + mErr.Error()
	default:
		after, err := fetchText(*metricsURL)
		b, found0 := transitions(before)
		a, found1 := transitions(after)
		switch {
		case err != nil:
			in.transNote = "unavailable: " + err.Error()
		case !found0 && !found1:
			in.transNote = "not exported by this proxy"
		default:
			t := &Transitions{ByTo: map[string]float64{}}
			for k, v := range a {
				t.ByTo[k] = v - b[k]
				t.Total += v - b[k]
			}
			in.trans = t
		}
	}
	rep := analyze(in)
	rep.Machine = machine
	printRun(stdout, rep)
	if *jsonOut != "" {
		return writeJSON(*jsonOut, rep)
	}
	return nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func cmdSkip(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("spike skip", flag.ContinueOnError)
	name := fs.String("name", "", "proxy name")
	reason := fs.String("reason", "", "why it could not run")
	out := fs.String("json", "", "report file to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" || *out == "" {
		return errors.New("-name and -json are required")
	}
	r := strings.Join(strings.Fields(*reason), " ")
	if r == "" {
		r = "unknown reason"
	}
	rep := Report{Name: *name, NotRunnable: r, Date: time.Now().UTC().Format(time.RFC3339)}
	fmt.Fprintf(stdout, "== %s: not runnable yet: %s\n", *name, r)
	return writeJSON(*out, rep)
}

// cmdCapacity drives each shop backend directly with a closed loop of clients
// (-conc per slot) and the shop's part of the default mix, to check that this
// machine delivers the model's nominal capacity.
func cmdCapacity(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("spike capacity", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ctlAddr := fs.String("control", "127.0.0.1:17154", "the origin's control listener (it names the backends)")
	conc := fs.Int("conc", 2, "closed-loop clients per service slot")
	d := fs.Duration("d", 10*time.Second, "duration")
	mixS := fs.String("mix", defaultMix, "share of each class (the back office is left out)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	mix, err := parseMix(*mixS)
	if err != nil {
		return err
	}
	mix[clsBackoffice] = 0
	if mix.total() <= 0 {
		return errors.New("-mix: nothing for the shop")
	}
	ctl := newControl(*ctlAddr)
	st, err := ctl.stats()
	if err != nil {
		return err
	}
	m := st.Model
	if err := ctl.reset(); err != nil {
		return err
	}
	sched := Profile{Base: 1, Peak: 1, Lead: time.Hour}.Schedule(mix, 7, 0) // classes and items only
	var served [numClasses]atomic.Int64
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for _, b := range m.Backends {
		if b.Backoffice {
			continue
		}
		n := *conc * b.Slots
		gen, err := newGenerator(loadConfig{target: b.Addr, publicIP: "127.0.0.1", backofficeIP: "127.0.0.2", maxInflight: n, runID: "cap"})
		if err != nil {
			return err
		}
		for c := range gen.cfg.timeouts {
			gen.cfg.timeouts[c] = 10 * time.Second
		}
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Since(start) < *d {
					k := int(next.Add(1) - 1) // unique, for order ids
					a := sched[k%len(sched)]
					a.At = time.Since(start)
					a.Item = uint32(k)
					var r record
					gen.inflight.Add(1)
					gen.send(k, a, start, &r)
					if r.out == outServed {
						served[a.Class].Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	n, work := 0.0, 0.0
	for c := range served {
		k := float64(served[c].Load())
		n += k
		work += k * m.Service[c].Seconds()
	}
	fmt.Fprintf(stdout, "origin direct, %d closed-loop clients per slot for %.0fs: %.0f req/s served (nominal %.0f req/s for %d shop slots: %.1f%%), slot time used for service %.1f%%\n",
		*conc, el, n/el, m.CapacityRPS(mix), m.Slots, 100*n/el/m.CapacityRPS(mix), 100*work/(el*float64(m.Slots)))
	return nil
}
