package generation

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/health"
	"github.com/floodgate/floodgate/proxy"
	"github.com/floodgate/floodgate/registry"
)

// syncRecorder is a HealthSyncer that counts the Syncs it gets.
type syncRecorder struct{ n atomic.Int64 }

func (s *syncRecorder) Sync([]health.Probe) { s.n.Add(1) }

// TestBuildChangesNothingLive: Build is pure. Generations built from other
// contents (other pool settings, a new backend, a new route, another
// degraded-mode policy) while traffic flows through the one in service, and
// dropped, change nothing that serves: the snapshot, the view, the health
// probes, the monitor's pools and the backends' passive-health settings. Run
// with -race: building reads the live state while requests write it.
func TestBuildChangesNothingLive(t *testing.T) {
	beLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	beSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go beSrv.Serve(beLn) //nolint:errcheck // ends with Close
	t.Cleanup(func() { beSrv.Close() })
	a := beLn.Addr().String()

	px := proxy.New(proxy.Options{})
	mon := degrade.NewMonitor(degrade.MonitorOptions{})
	defer mon.Close()
	hc := &syncRecorder{}
	m, err := New(Options{Dataplane: px, Health: hc, Monitor: mon})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { defer close(runDone); _ = m.Run(ctx) }()
	defer func() { cancel(); <-runDone; _ = px.Shutdown(context.Background()) }()
	live := PoolSettings{Degrade: Degrade{Enter: degrade.Thresholds{P95Latency: time.Second}, Exit: degrade.Thresholds{P95Latency: time.Millisecond}}}
	if _, err := m.Init(ctx, registry.Config{
		Pools:  []registry.PoolSpec{pool("shop", live, be(a, 1))},
		Routes: Routes(route("site", "/", "shop")),
	}, registry.State{}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go px.Serve(ln) //nolint:errcheck // ends with Shutdown

	snap, view, syncs, gate := px.Current(), m.View(), hc.n.Load(), mon.Gate("shop")
	st := view.Backend("shop", a).State

	// Other contents: passive health on, a second backend, a new pool and
	// route, another policy.
	other := live
	other.MaxFails, other.EjectFor = 1, time.Hour
	other.Degrade.Enter.P95Latency = 2 * time.Second
	c, _ := m.Registry.Snapshot()
	c.Index++
	c.Pools = append([]registry.Pool(nil), c.Pools...)
	c.Pools[0].Settings = other
	c.Pools[0].Backends = append(c.Pools[0].Backends[:1:1], registry.Backend{Pool: "shop", Address: "10.0.0.9:80", Weight: 1, Source: registry.SourceAPI})
	c.Pools = append(c.Pools, registry.Pool{Name: "extra", Settings: other})
	c.Routes = append(c.Routes, registry.Route{Name: "more", Pool: "extra", Spec: proxy.RouteSpec{PathPrefix: "/more/"}})

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var served atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: 5 * time.Second}
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := client.Get("http://" + ln.Addr().String() + "/")
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				served.Add(1)
			}
		}
	}()
	for i := 0; i < 50 || served.Load() < 50; i++ {
		g, err := m.Build(c, m.cur.Load())
		if err != nil {
			t.Fatal(err)
		}
		if g.plan == nil {
			t.Fatal("a changed policy built no monitor plan")
		}
		if err := m.Check(c); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()

	if px.Current() != snap || m.View() != view || hc.n.Load() != syncs {
		t.Fatal("a generation built and dropped was put in service")
	}
	if got := mon.Statuses(); len(got) != 1 || got[0].Pool != "shop" || mon.Gate("shop") != gate {
		t.Fatalf("a generation built and dropped changed the monitor: %+v", got)
	}
	// The live pool has passive health off; a dropped build set it to eject
	// after one failure, which must not have reached the shared state.
	st.Report(false)
	st.Report(false)
	if !st.Up() {
		t.Fatal("a generation built and dropped changed the backend's passive-health settings")
	}
}

// TestWriteBuildsOnce: the generation that Check built inside a write's
// transaction is the one Run commits, not built a second time.
func TestWriteBuildsOnce(t *testing.T) {
	h := newHarness(t, Options{})
	h.init(registry.Config{Pools: []registry.PoolSpec{pool("p", PoolSettings{}, be("10.0.0.1:80", 1))}}, registry.State{})
	for i := 0; i < 5; i++ {
		if _, err := h.r.Register(h.ctx, "p", fmt.Sprintf("10.0.1.%d:80", i+1), registry.BackendUpdate{}); err != nil {
			t.Fatal(err)
		}
		if p := h.r.checked.Load(); p != nil {
			t.Fatalf("write %d: the generation Check built (%d) was not the one committed (%d)", i, p.g.Gen, h.r.cur.Load().Gen)
		}
	}
}
