package generation

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/floodgate/floodgate/balancer"
	"github.com/floodgate/floodgate/health"
	"github.com/floodgate/floodgate/proxy"
	"github.com/floodgate/floodgate/registry"
)

// harness is a Registry over a real, not serving, proxy.Server, with Run going.
type harness struct {
	t   *testing.T
	r   *Manager
	px  *proxy.Server
	ctx context.Context
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	px := proxy.New(proxy.Options{})
	opts.Dataplane = px
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = px.Shutdown(context.Background())
	})
	tctx, tcancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(tcancel)
	return &harness{t: t, r: r, px: px, ctx: tctx}
}

func pool(name string, c PoolSettings, backends ...registry.BackendSpec) registry.PoolSpec {
	return registry.PoolSpec{Name: name, Settings: c, Backends: backends}
}

func be(addr string, w int) registry.BackendSpec {
	return registry.BackendSpec{Address: addr, Weight: w}
}

func route(name, prefix, pool string) proxy.RouteSpec {
	return proxy.RouteSpec{Name: name, PathPrefix: prefix, Pool: pool}
}

func ptr[T any](v T) *T { return &v }

// weights returns "addr=weight" of the pool in the data plane's snapshot.
func (h *harness) weights(pool string) string {
	h.t.Helper()
	snap := h.px.Current()
	if snap == nil || snap.Pool(pool) == nil {
		return "<no pool>"
	}
	var parts []string
	for _, b := range snap.Pool(pool).Backends() {
		parts = append(parts, fmt.Sprintf("%s=%d", b.Address, b.Weight))
	}
	return strings.Join(parts, " ")
}

func (h *harness) init(cfg registry.Config, saved registry.State) registry.InitResult {
	h.t.Helper()
	res, err := h.r.Init(h.ctx, cfg, saved)
	if err != nil {
		h.t.Fatal(err)
	}
	return res
}

func TestInitBuildsTheFirstGeneration(t *testing.T) {
	h := newHarness(t, Options{})
	h.init(registry.Config{
		Pools:  []registry.PoolSpec{pool("shop", PoolSettings{}, be("10.0.0.1:80", 60), be("10.0.0.2:80", 40))},
		Routes: Routes(route("site", "/", "shop")),
	}, registry.State{})
	if got, want := h.weights("shop"), "10.0.0.1:80=60 10.0.0.2:80=40"; got != want {
		t.Fatalf("snapshot weights %q, want %q", got, want)
	}
	v := h.r.View()
	if v.Gen == 0 || h.px.Current().Gen != v.Gen {
		t.Fatalf("view gen %d, snapshot gen %d", v.Gen, h.px.Current().Gen)
	}
	b := v.Backend("shop", "10.0.0.1:80")
	if b == nil || b.Source != registry.SourceConfig || b.Status() != StatusUp {
		t.Fatalf("backend view %+v", b)
	}
	if _, err := h.r.Init(h.ctx, registry.Config{}, registry.State{}); err == nil {
		t.Fatal("second Init accepted")
	}
}

func TestRegisterIsIdempotent(t *testing.T) {
	h := newHarness(t, Options{})
	h.init(registry.Config{Pools: []registry.PoolSpec{pool("shop", PoolSettings{}, be("10.0.0.1:80", 1))}}, registry.State{})
	gen := h.r.View().Gen

	created, err := h.r.Register(h.ctx, "shop", "10.0.0.9:80", registry.BackendUpdate{})
	if err != nil || !created {
		t.Fatalf("first register: created=%v err=%v", created, err)
	}
	if got := h.weights("shop"); got != "10.0.0.1:80=1 10.0.0.9:80=1" {
		t.Fatalf("after register: %s", got)
	}
	st := h.r.View().Backend("shop", "10.0.0.9:80").State
	gen2 := h.r.View().Gen
	if gen2 <= gen {
		t.Fatalf("generation did not move: %d -> %d", gen, gen2)
	}
	created, err = h.r.Register(h.ctx, "shop", "10.0.0.9:80", registry.BackendUpdate{})
	if err != nil || created {
		t.Fatalf("retry: created=%v err=%v", created, err)
	}
	if h.r.View().Gen != gen2 {
		t.Fatal("an idempotent retry built a new generation")
	}
	if _, err = h.r.Register(h.ctx, "shop", "10.0.0.9:80", registry.BackendUpdate{Weight: ptr(5)}); err != nil {
		t.Fatal(err)
	}
	if got := h.weights("shop"); got != "10.0.0.1:80=1 10.0.0.9:80=5" {
		t.Fatalf("after weight change: %s", got)
	}
	if h.r.View().Backend("shop", "10.0.0.9:80").State != st {
		t.Fatal("a weight change replaced the backend's live state")
	}

	for _, tt := range []struct {
		pool, addr string
		weight     *int
		want       error
	}{
		{"shop", "10.0.0.1", nil, registry.ErrInvalid},
		{"shop", ":80", nil, registry.ErrInvalid},
		{"shop", "10.0.0.1:0", nil, registry.ErrInvalid},
		{"shop", "bad host:80", nil, registry.ErrInvalid},
		{"shop", "10.0.0.3:80", ptr(1001), registry.ErrInvalid},
		{"shop", "10.0.0.3:80", ptr(-1), registry.ErrInvalid},
		{"nope", "10.0.0.3:80", nil, registry.ErrNotFound},
	} {
		if _, err := h.r.Register(h.ctx, tt.pool, tt.addr, registry.BackendUpdate{Weight: tt.weight}); !errors.Is(err, tt.want) {
			t.Errorf("Register(%s, %s): %v, want %v", tt.pool, tt.addr, err, tt.want)
		}
	}
}

func TestUpdateWeightAndDrain(t *testing.T) {
	h := newHarness(t, Options{})
	h.init(registry.Config{Pools: []registry.PoolSpec{pool("erp", PoolSettings{}, be("dc1:80", 60), be("dc2:80", 40))}}, registry.State{})
	if err := h.r.Update(h.ctx, "erp", "dc1:80", registry.BackendUpdate{Weight: ptr(0)}); err != nil {
		t.Fatal(err)
	}
	if err := h.r.Update(h.ctx, "erp", "dc2:80", registry.BackendUpdate{Weight: ptr(100)}); err != nil {
		t.Fatal(err)
	}
	if got := h.weights("erp"); got != "dc1:80=0 dc2:80=100" {
		t.Fatalf("after failover: %s", got)
	}
	if err := h.r.Update(h.ctx, "erp", "dc2:80", registry.BackendUpdate{Drain: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	b := h.r.View().Backend("erp", "dc2:80")
	if b.Status() != StatusDraining || b.Weight != 100 || h.weights("erp") != "dc1:80=0 dc2:80=0" {
		t.Fatalf("drained: status %s weight %d, snapshot %s", b.Status(), b.Weight, h.weights("erp"))
	}
	if err := h.r.Update(h.ctx, "erp", "dc2:80", registry.BackendUpdate{Drain: ptr(false)}); err != nil {
		t.Fatal(err)
	}
	if got := h.weights("erp"); got != "dc1:80=0 dc2:80=100" {
		t.Fatalf("undrained: %s", got)
	}
	for _, tt := range []struct {
		pool, addr string
		u          registry.BackendUpdate
		want       error
	}{
		{"erp", "dc1:80", registry.BackendUpdate{}, registry.ErrInvalid},
		{"erp", "dc1:80", registry.BackendUpdate{Weight: ptr(5000)}, registry.ErrInvalid},
		{"erp", "dc9:80", registry.BackendUpdate{Weight: ptr(1)}, registry.ErrNotFound},
		{"nope", "dc1:80", registry.BackendUpdate{Weight: ptr(1)}, registry.ErrNotFound},
	} {
		if err := h.r.Update(h.ctx, tt.pool, tt.addr, tt.u); !errors.Is(err, tt.want) {
			t.Errorf("Update(%s, %s, %+v): %v, want %v", tt.pool, tt.addr, tt.u, err, tt.want)
		}
	}
}

func TestReloadKeepsAPIBackendsAndLiveState(t *testing.T) {
	h := newHarness(t, Options{})
	cfg := func(w1 int, extra ...registry.BackendSpec) registry.Config {
		return registry.Config{
			Pools:  []registry.PoolSpec{pool("shop", PoolSettings{}, append([]registry.BackendSpec{be("10.0.0.1:80", w1)}, extra...)...)},
			Routes: Routes(route("site", "/", "shop")),
		}
	}
	h.init(cfg(1), registry.State{})
	if _, err := h.r.Register(h.ctx, "shop", "10.0.0.9:80", registry.BackendUpdate{Weight: ptr(2)}); err != nil {
		t.Fatal(err)
	}
	cfgState := h.r.View().Backend("shop", "10.0.0.1:80").State
	apiState := h.r.View().Backend("shop", "10.0.0.9:80").State
	ps := h.r.View().Pool("shop").State

	res, err := h.r.ApplyConfig(h.ctx, cfg(3, be("10.0.0.2:80", 1)))
	if err != nil || !res.Changed {
		t.Fatalf("reload: %+v %v", res, err)
	}
	// File backends first in file order, then the API's.
	if got, want := h.weights("shop"), "10.0.0.1:80=3 10.0.0.2:80=1 10.0.0.9:80=2"; got != want {
		t.Fatalf("after reload %q, want %q", got, want)
	}
	v := h.r.View()
	if v.Backend("shop", "10.0.0.1:80").State != cfgState || v.Backend("shop", "10.0.0.9:80").State != apiState || v.Pool("shop").State != ps {
		t.Fatal("a reload replaced live state of backends or pools it kept")
	}
	res, err = h.r.ApplyConfig(h.ctx, cfg(3, be("10.0.0.2:80", 1)))
	if err != nil || res.Changed {
		t.Fatalf("same config again: %+v %v, want unchanged", res, err)
	}
	// Dropping a config backend keeps the API's.
	if _, err := h.r.ApplyConfig(h.ctx, cfg(3)); err != nil {
		t.Fatal(err)
	}
	if got, want := h.weights("shop"), "10.0.0.1:80=3 10.0.0.9:80=2"; got != want {
		t.Fatalf("after removal %q, want %q", got, want)
	}
}

func TestOverridesLastUntilTheFileChanges(t *testing.T) {
	var saved []registry.State
	h := newHarness(t, Options{Persist: func(s registry.State) error { saved = append(saved, s); return nil }})
	cfg := func(w int) registry.Config {
		return registry.Config{Pools: []registry.PoolSpec{pool("erp", PoolSettings{}, be("dc1:80", w), be("dc2:80", 40))}}
	}
	h.init(cfg(60), registry.State{})
	if err := h.r.Update(h.ctx, "erp", "dc1:80", registry.BackendUpdate{Weight: ptr(0)}); err != nil {
		t.Fatal(err)
	}
	want := registry.SavedBackend{Pool: "erp", Address: "dc1:80", Weight: 0, Source: registry.SourceConfig, FileWeight: 60}
	if n := len(saved); n == 0 || len(saved[n-1].Backends) != 1 || saved[n-1].Backends[0] != want {
		t.Fatalf("saved %+v, want the override %+v", saved, want)
	}
	// Reloading the same file keeps the override.
	if _, err := h.r.ApplyConfig(h.ctx, cfg(60)); err != nil {
		t.Fatal(err)
	}
	if got := h.weights("erp"); got != "dc1:80=0 dc2:80=40" {
		t.Fatalf("override lost by an unrelated reload: %s", got)
	}
	// Changing that backend in the file ends it.
	res, err := h.r.ApplyConfig(h.ctx, cfg(50))
	if err != nil || len(res.OverridesCleared) != 1 {
		t.Fatalf("reload: %+v %v", res, err)
	}
	if got := h.weights("erp"); got != "dc1:80=50 dc2:80=40" {
		t.Fatalf("after the file changed: %s", got)
	}
	if n := len(saved); len(saved[n-1].Backends) != 0 {
		t.Fatalf("override still saved: %+v", saved[n-1])
	}
	// registry.Config backends cannot be removed over the API.
	if _, err := h.r.Remove(h.ctx, "erp", "dc1:80", time.Second); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("removing a config backend: %v, want ErrConflict", err)
	}
}

func TestFileTakesOverAnAPIBackend(t *testing.T) {
	h := newHarness(t, Options{})
	h.init(registry.Config{Pools: []registry.PoolSpec{pool("shop", PoolSettings{}, be("10.0.0.1:80", 1))}}, registry.State{})
	if _, err := h.r.Register(h.ctx, "shop", "10.0.0.9:80", registry.BackendUpdate{Weight: ptr(7)}); err != nil {
		t.Fatal(err)
	}
	st := h.r.View().Backend("shop", "10.0.0.9:80").State
	res, err := h.r.ApplyConfig(h.ctx, registry.Config{Pools: []registry.PoolSpec{pool("shop", PoolSettings{}, be("10.0.0.1:80", 1), be("10.0.0.9:80", 2))}})
	if err != nil || len(res.TakenOver) != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	b := h.r.View().Backend("shop", "10.0.0.9:80")
	if b.Source != registry.SourceConfig || b.Weight != 2 || b.State != st {
		t.Fatalf("taken over: %+v", b)
	}
}

func TestRemovingAPoolDropsItsAPIBackends(t *testing.T) {
	h := newHarness(t, Options{})
	h.init(registry.Config{Pools: []registry.PoolSpec{pool("a", PoolSettings{}), pool("b", PoolSettings{}, be("10.0.0.1:80", 1))}}, registry.State{})
	if _, err := h.r.Register(h.ctx, "a", "10.0.0.9:80", registry.BackendUpdate{}); err != nil {
		t.Fatal(err)
	}
	res, err := h.r.ApplyConfig(h.ctx, registry.Config{Pools: []registry.PoolSpec{pool("b", PoolSettings{}, be("10.0.0.1:80", 1))}})
	if err != nil || len(res.Dropped) != 1 || res.Dropped[0] != "a/10.0.0.9:80" {
		t.Fatalf("%+v %v", res, err)
	}
	if h.r.View().Pool("a") != nil || h.px.Current().Pool("a") != nil {
		t.Fatal("pool a still in service")
	}
}

func TestInvalidChangesApplyNothing(t *testing.T) {
	h := newHarness(t, Options{})
	good := registry.Config{Pools: []registry.PoolSpec{pool("shop", PoolSettings{}, be("10.0.0.1:80", 1))}, Routes: Routes(route("r", "/", "shop"))}
	h.init(good, registry.State{})
	gen := h.r.View().Gen
	for name, cfg := range map[string]registry.Config{
		"route to a missing pool": {Pools: good.Pools, Routes: Routes(route("r", "/", "nope"))},
		"pool defined twice":      {Pools: []registry.PoolSpec{good.Pools[0], good.Pools[0]}},
		"bad weight":              {Pools: []registry.PoolSpec{pool("shop", PoolSettings{}, be("10.0.0.1:80", 1), be("10.0.0.2:80", 5000))}},
		"queue without timeout":   {Pools: []registry.PoolSpec{pool("shop", PoolSettings{QueueMax: 10, MaxConnsPerBackend: 1})}},
		"invalid health check":    {Pools: []registry.PoolSpec{pool("shop", PoolSettings{Health: health.Check{Type: health.TypeHTTP}})}},
	} {
		if _, err := h.r.ApplyConfig(h.ctx, cfg); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if h.r.View().Gen != gen || h.weights("shop") != "10.0.0.1:80=1" {
		t.Fatal("a rejected change was applied")
	}
}

func TestPersistFailureAbortsTheChange(t *testing.T) {
	fail := errors.New("disk full")
	var failing bool
	var mu sync.Mutex
	h := newHarness(t, Options{Persist: func(registry.State) error {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return fail
		}
		return nil
	}})
	h.init(registry.Config{Pools: []registry.PoolSpec{pool("shop", PoolSettings{})}}, registry.State{})
	mu.Lock()
	failing = true
	mu.Unlock()
	gen := h.r.View().Gen
	if _, err := h.r.Register(h.ctx, "shop", "10.0.0.9:80", registry.BackendUpdate{}); !errors.Is(err, fail) {
		t.Fatalf("register with a failing state file: %v", err)
	}
	if h.r.View().Gen != gen || h.r.View().Backend("shop", "10.0.0.9:80") != nil {
		t.Fatal("a change that could not be saved was applied")
	}
}

// soleBackend registers addr as the only backend of pool "p" (config has none)
// and returns the data plane's balancer pool.
func soleBackend(t *testing.T, h *harness, addr string) *balancer.Pool {
	t.Helper()
	h.init(registry.Config{Pools: []registry.PoolSpec{pool("p", PoolSettings{})}, Routes: Routes(route("r", "/", "p"))}, registry.State{})
	if _, err := h.r.Register(h.ctx, "p", addr, registry.BackendUpdate{}); err != nil {
		t.Fatal(err)
	}
	return h.px.Current().Pool("p")
}

func TestRemoveDrainsInFlightThenRemoves(t *testing.T) {
	h := newHarness(t, Options{})
	old := soleBackend(t, h, "10.0.0.9:80")
	b, err := old.Acquire(nil) // a request in flight, on the old generation
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		r   registry.Removal
		err error
	}
	done := make(chan result, 1)
	gen := h.r.View().Gen
	go func() {
		r, err := h.r.Remove(h.ctx, "p", "10.0.0.9:80", 20*time.Second)
		done <- result{r, err}
	}()
	// Wait for the drain to start: the generation marking it removing.
	if err := h.r.WaitApplied(h.ctx, gen+1); err != nil {
		t.Fatal(err)
	}
	if b := h.r.View().Backend("p", "10.0.0.9:80"); b == nil || !b.Removing || b.Status() != StatusDraining {
		t.Fatalf("after the first generation of Remove: %+v", b)
	}
	// Neither the new generation nor the old one hands it out any more.
	if _, err := old.Pick(); !errors.Is(err, balancer.ErrNoHealthyBackend) {
		t.Fatalf("old generation still picks the draining backend: %v", err)
	}
	if _, err := h.px.Current().Pool("p").Pick(); !errors.Is(err, balancer.ErrNoHealthyBackend) {
		t.Fatalf("new generation picks the draining backend: %v", err)
	}
	select {
	case r := <-done:
		t.Fatalf("Remove returned with a request in flight: %+v", r)
	default:
	}
	b.Release()
	r := <-done
	if r.err != nil || !r.r.Drained || r.r.Inflight != 0 {
		t.Fatalf("remove: %+v %v", r.r, r.err)
	}
	if h.r.View().Backend("p", "10.0.0.9:80") != nil || h.weights("p") != "" {
		t.Fatalf("still there after Remove: %q", h.weights("p"))
	}
	if _, err := h.r.Remove(h.ctx, "p", "10.0.0.9:80", time.Second); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("second remove: %v, want ErrNotFound", err)
	}
}

func TestRemoveGivesUpAfterTheTimeout(t *testing.T) {
	h := newHarness(t, Options{})
	p := soleBackend(t, h, "10.0.0.9:80")
	b, err := p.Acquire(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	r, err := h.r.Remove(h.ctx, "p", "10.0.0.9:80", 50*time.Millisecond)
	if err != nil || r.Drained || r.Inflight != 1 {
		t.Fatalf("remove: %+v %v", r, err)
	}
	if h.r.View().Backend("p", "10.0.0.9:80") != nil {
		t.Fatal("not removed after the drain timeout")
	}
}

func TestConcurrentRemovesShareOneDrain(t *testing.T) {
	h := newHarness(t, Options{})
	p := soleBackend(t, h, "10.0.0.9:80")
	b, err := p.Acquire(nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	gen := h.r.View().Gen
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := h.r.Remove(h.ctx, "p", "10.0.0.9:80", 20*time.Second)
			errs <- err
		}()
	}
	if err := h.r.WaitApplied(h.ctx, gen+1); err != nil { // the drain has started
		t.Fatal(err)
	}
	// Changing or re-registering a backend being removed is a conflict.
	if err := h.r.Update(h.ctx, "p", "10.0.0.9:80", registry.BackendUpdate{Weight: ptr(3)}); !errors.Is(err, registry.ErrConflict) {
		t.Errorf("update while removing: %v", err)
	}
	if _, err := h.r.Register(h.ctx, "p", "10.0.0.9:80", registry.BackendUpdate{}); !errors.Is(err, registry.ErrConflict) {
		t.Errorf("register while removing: %v", err)
	}
	b.Release()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent remove: %v", err)
		}
	}
}

// TestHealthGatedAddition: a backend registered into a pool with an active
// check gets no traffic until it passes its rise probes.
func TestHealthGatedAddition(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	ups := make(chan health.Transition, 16)
	hc := health.NewChecker(health.Options{OnTransition: func(tr health.Transition) { ups <- tr }})
	t.Cleanup(hc.Close)
	h := newHarness(t, Options{Health: hc})
	check := health.Check{Type: health.TypeHTTP, Path: "/", Interval: 50 * time.Millisecond, Timeout: 40 * time.Millisecond, Rise: 2, Fall: 2}
	h.init(registry.Config{Pools: []registry.PoolSpec{pool("p", PoolSettings{Health: check})}}, registry.State{})
	if _, err := h.r.Register(h.ctx, "p", ln.Addr().String(), registry.BackendUpdate{}); err != nil {
		t.Fatal(err)
	}
	b := h.r.View().Backend("p", ln.Addr().String())
	if b.State.Up() || b.Status() != StatusDown {
		t.Fatalf("a new backend is %s before any probe passed", b.Status())
	}
	if _, err := h.px.Current().Pool("p").Pick(); !errors.Is(err, balancer.ErrNoHealthyBackend) {
		t.Fatalf("unprobed backend picked: %v", err)
	}
	select {
	case tr := <-ups:
		if !tr.Up {
			t.Fatalf("transition %+v", tr)
		}
	case <-h.ctx.Done():
		t.Fatal("backend never came up")
	}
	if !b.State.Up() {
		t.Fatal("up transition reported but the state is down")
	}
}

func TestRestore(t *testing.T) {
	h := newHarness(t, Options{})
	res := h.init(registry.Config{Pools: []registry.PoolSpec{
		pool("shop", PoolSettings{}, be("10.0.0.1:80", 1)),
		pool("erp", PoolSettings{}, be("dc1:80", 60), be("dc2:80", 40)),
	}}, registry.State{Version: 1, Backends: []registry.SavedBackend{
		{Pool: "shop", Address: "10.0.0.9:80", Weight: 3, Source: registry.SourceAPI},
		{Pool: "shop", Address: "10.0.0.8:80", Weight: 2, Drain: true, Source: registry.SourceAPI},
		{Pool: "shop", Address: "10.0.0.1:80", Weight: 9, Source: registry.SourceAPI},              // now in the file
		{Pool: "gone", Address: "10.0.0.7:80", Weight: 1, Source: registry.SourceAPI},              // pool removed
		{Pool: "erp", Address: "dc1:80", Weight: 0, Source: registry.SourceConfig, FileWeight: 60}, // override still valid
		{Pool: "erp", Address: "dc2:80", Weight: 0, Source: registry.SourceConfig, FileWeight: 50}, // file changed since
	}})
	if res.Restored != 3 || len(res.Skipped) != 3 {
		t.Fatalf("restored %d, skipped %q", res.Restored, res.Skipped)
	}
	if got, want := h.weights("shop"), "10.0.0.1:80=1 10.0.0.9:80=3 10.0.0.8:80=0"; got != want {
		t.Fatalf("shop %q, want %q", got, want)
	}
	if got, want := h.weights("erp"), "dc1:80=0 dc2:80=40"; got != want {
		t.Fatalf("erp %q, want %q", got, want)
	}
	if b := h.r.View().Backend("shop", "10.0.0.9:80"); b.Source != registry.SourceAPI || b.Status() != StatusUp {
		t.Fatalf("restored backend %+v is %s", b, b.Status())
	}
}

// TestConcurrentWriters runs config reloads, registrations, updates and removals
// at once; the race detector and the final state check them.
func TestConcurrentWriters(t *testing.T) {
	h := newHarness(t, Options{DrainSettle: time.Millisecond})
	cfg := func(w int) registry.Config {
		return registry.Config{Pools: []registry.PoolSpec{pool("p", PoolSettings{}, be("10.0.0.1:80", w))}, Routes: Routes(route("r", "/", "p"))}
	}
	h.init(cfg(1), registry.State{})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				addr := fmt.Sprintf("10.1.%d.%d:80", g, i)
				if _, err := h.r.Register(h.ctx, "p", addr, registry.BackendUpdate{Weight: ptr(i%5 + 1)}); err != nil {
					t.Error(err)
					return
				}
				if err := h.r.Update(h.ctx, "p", addr, registry.BackendUpdate{Drain: ptr(i%2 == 0)}); err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					if _, err := h.r.Remove(h.ctx, "p", addr, time.Second); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			if _, err := h.r.ApplyConfig(h.ctx, cfg(i%7+1)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
	// 4 goroutines x 20 registered, 7 of each 20 removed, plus the config one.
	if n := len(h.px.Current().Pool("p").Backends()); n != 1+4*13 {
		t.Fatalf("%d backends in service, want %d", n, 1+4*13)
	}
}

// TestRunWaitsForRemovals: stopping the watcher ends a drain in progress, and
// Run returns only once it has.
func TestRunWaitsForRemovals(t *testing.T) {
	px := proxy.New(proxy.Options{})
	r, err := New(Options{Dataplane: px})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	if _, err := r.Init(ctx, registry.Config{Pools: []registry.PoolSpec{pool("p", PoolSettings{})}}, registry.State{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Register(ctx, "p", "10.0.0.9:80", registry.BackendUpdate{}); err != nil {
		t.Fatal(err)
	}
	b, err := px.Current().Pool("p").Acquire(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	gen := r.View().Gen
	removed := make(chan error, 1)
	go func() { _, err := r.Remove(context.Background(), "p", "10.0.0.9:80", time.Hour); removed <- err }()
	if err := r.WaitApplied(ctx, gen+1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-removed; !errors.Is(err, registry.ErrClosed) {
		t.Fatalf("Remove during shutdown: %v, want ErrClosed", err)
	}
	if _, err := r.Remove(context.Background(), "p", "10.0.0.9:80", time.Second); !errors.Is(err, registry.ErrClosed) {
		t.Fatalf("Remove after Run: %v", err)
	}
	_ = px.Shutdown(context.Background())
}
