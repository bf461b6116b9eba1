package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// captureProxy is a minimal stand-in for floodgate in front of a fleet: it spreads
// the shop's requests over the shop backends, sends /admin/ to the back office,
// and "captures" the first orders it sees (202 with Floodgate-Capture-Id) while it
// says it is degraded on /metrics; once it has captured enough it leaves degraded
// mode and replays them with the client's Idempotency-Key and the capture id in
// Floodgate-Capture-Id, as floodgate does since issue 15.
type captureProxy struct {
	shop    []*fasthttp.HostClient
	bo      *fasthttp.HostClient
	next    atomic.Uint64
	capture int // how many orders to capture

	mu       sync.Mutex
	degraded bool
	journal  []*fasthttp.Request
	replays  sync.WaitGroup
}

func (p *captureProxy) handle(ctx *fasthttp.RequestCtx) {
	path := string(ctx.Path())
	if path == "/metrics" {
		p.mu.Lock()
		d := 0
		if p.degraded {
			d = 1
		}
		p.mu.Unlock()
		fmt.Fprintf(ctx, "# TYPE floodgate_degraded gauge\nfloodgate_degraded{pool=\"shop\"} %d\nfloodgate_degraded{pool=\"backoffice\"} 0\n", d)
		return
	}
	if path == "/checkout" && p.maybeCapture(ctx) {
		return
	}
	hc := p.shop[p.next.Add(1)%uint64(len(p.shop))]
	if strings.HasPrefix(path, "/admin/") {
		hc = p.bo
	}
	if err := hc.DoTimeout(&ctx.Request, &ctx.Response, 5*time.Second); err != nil {
		ctx.Error(err.Error(), fasthttp.StatusBadGateway)
	}
}

// maybeCapture journals the request while captures remain, and replays the
// journal at the last one.
func (p *captureProxy) maybeCapture(ctx *fasthttp.RequestCtx) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.journal) >= p.capture {
		return false
	}
	p.degraded = true
	req := &fasthttp.Request{}
	ctx.Request.CopyTo(req)
	p.journal = append(p.journal, req)
	id := "cap-" + strconv.Itoa(len(p.journal))
	req.Header.Set("Floodgate-Capture-Id", id)
	ctx.Response.Header.Set("Floodgate-Capture-Id", id)
	ctx.SetStatusCode(fasthttp.StatusAccepted)
	ctx.SetBodyString(`{"status":"order received"}`)
	if len(p.journal) == p.capture {
		// Degraded for a second more (a hold), then normal, then the replay.
		p.replays.Add(1)
		time.AfterFunc(time.Second, func() { p.replay(p.journal) })
	}
	return true
}

func (p *captureProxy) replay(reqs []*fasthttp.Request) {
	defer p.replays.Done()
	p.mu.Lock()
	p.degraded = false
	p.mu.Unlock()
	for _, req := range reqs {
		time.Sleep(20 * time.Millisecond) // a replay rate, not a synchronisation
		resp := fasthttp.AcquireResponse()
		_ = p.shop[0].DoTimeout(req, resp, 5*time.Second)
		fasthttp.ReleaseResponse(resp)
	}
}

// serveFasthttp serves h on a fresh loopback port until the test ends.
func serveFasthttp(t *testing.T, h fasthttp.RequestHandler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: h, CloseOnShutdown: true}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	return ln.Addr().String()
}

// TestRunEndToEnd plays a short spike through a capturing proxy in front of a real
// fleet on loopback, with `spike run` as bench/spike.sh calls it, and checks what
// the report says about the peak, degraded mode, and the captured, retried and
// replayed orders.
func TestRunEndToEnd(t *testing.T) {
	m := Model{Backlog: 64, QueueTimeout: 2 * time.Second}
	if err := parseClassList("static=1ms,page=2ms,search=3ms,order=5ms,backoffice=1ms", &m.Service, time.ParseDuration); err != nil {
		t.Fatal(err)
	}
	m.Backends = []BackendModel{{Name: "shop1", Slots: 2}, {Name: "shop2", Slots: 1}, {Name: "backoffice1", Slots: 2, Backoffice: true}}
	m.Slots = 3
	f := NewFleet(m)
	px := &captureProxy{capture: 5}
	for i, o := range f.backends {
		addr := serveFasthttp(t, o.Handle)
		f.m.Backends[i].Addr = addr
		hc := &fasthttp.HostClient{Addr: addr, MaxConns: 64}
		if m.Backends[i].Backoffice {
			px.bo = hc
		} else {
			px.shop = append(px.shop, hc)
		}
	}
	ctl := httptest.NewServer(f.ControlHandler())
	defer ctl.Close()
	target := serveFasthttp(t, px.handle)

	out := filepath.Join(t.TempDir(), "run.json")
	args := []string{"run", "-target", target, "-name", "test", "-origin-control", strings.TrimPrefix(ctl.URL, "http://"),
		"-metrics", "http://" + target + "/metrics", "-base", "100", "-peak", "300", "-lead", "200ms", "-rise", "200ms",
		"-hold", "1s", "-fall", "200ms", "-recovery", "1s", "-users", "4", "-retry-share", "0.5", "-seed", "3",
		"-replay-wait", "20s", "-replay-settle", "2s", "-replay-rate", "50", "-timeout", "5s", "-json", out, "-quiet"}
	var stdout, stderr strings.Builder
	if rc := run(args, &stdout, &stderr); rc != 0 {
		t.Fatalf("spike run: exit %d\n%s\n%s", rc, stdout.String(), stderr.String())
	}
	px.replays.Wait()
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	t.Log(stdout.String())

	if r.Peak == nil || r.Peak.Sent == 0 || r.Peak.GoodputPct < 99 || r.Peak.ClientTimeouts != 0 || len(r.Peak.ClassGoodputPct) != numClasses {
		t.Errorf("peak %+v", r.Peak)
	}
	if r.Recovery == nil || r.Recovery.Sent == 0 {
		t.Errorf("recovery %+v", r.Recovery)
	}
	var degradedSecs int
	for _, sec := range r.Timeline {
		if sec.Mode == "degraded" {
			degradedSecs++
		}
	}
	if degradedSecs == 0 {
		t.Error("no second of the timeline is marked degraded")
	}
	if md := r.Modes; md == nil || md.Entries != 1 || md.Exits != 1 || md.DegradedAtEnd || md.LastExitS < md.FirstEntryS {
		t.Errorf("modes %+v (%s)", md, r.ModesNote)
	}
	o := r.Orders
	if o.Submitted == 0 || o.Retries == 0 || o.Lost != 0 || o.DupOrders != 0 || o.Failed != 0 || o.ReachedOrigin != o.Submitted {
		t.Errorf("orders %+v", o)
	}
	// Every retry repeats a key the origin has processed or will: it is deduplicated.
	if o.DupKeys != int64(o.Retries) {
		t.Errorf("%d keys deduplicated, want one per retry (%d)", o.DupKeys, o.Retries)
	}
	if r.Origin == nil || r.Origin.Replays != 5 {
		t.Errorf("origin saw %v replays, want 5", r.Origin)
	}
	if o.Captured > 0 && (o.CapturedLastAtS < 0 || o.CapturedAfterExitS == -1 || o.ReplayBudgetS != math.Round((float64(o.Captured)/50+30)*10)/10) {
		t.Errorf("replay figures %+v", o)
	}
	if len(r.Origin.Backends) != 3 || r.Origin.Backends[0].Served == 0 || r.Origin.Backends[1].Served == 0 || r.Origin.Backends[2].Served == 0 {
		t.Errorf("backends %+v", r.Origin.Backends)
	}

	// The side-by-side report prints issue 15's tables.
	var cmp strings.Builder
	if err := cmdReport([]string{out}, &cmp); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"at the peak", "after the peak", "1/1", "orders 2xx", "processed twice"} {
		if !strings.Contains(cmp.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, cmp.String())
		}
	}
}
