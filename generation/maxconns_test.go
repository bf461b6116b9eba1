package generation

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/floodgate/floodgate/balancer"
	"github.com/floodgate/floodgate/conf"
	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/internal/limits"
	"github.com/floodgate/floodgate/registry"
)

func beMax(addr string, w, maxConns int) registry.BackendSpec {
	return registry.BackendSpec{Address: addr, Weight: w, MaxConns: maxConns}
}

// limitsOf returns "addr=limit/reserved" of the pool in the data plane's
// snapshot.
func (h *harness) limitsOf(pool string) string {
	h.t.Helper()
	var parts []string
	for _, b := range h.px.Current().Pool(pool).Backends() {
		parts = append(parts, fmt.Sprintf("%s=%d/%d", b.Address, b.MaxConns, b.Reserved))
	}
	return strings.Join(parts, " ")
}

// TestMaxConnsPerBackendLive: a backend's own max_conns reaches the balancer
// (with its own critical reserve), from the file, a register and a PATCH; a
// reload or a PATCH that changes it keeps the live state (in-flight slots,
// queue); the degraded-mode source's capacity is the sum of the limits of the
// backends up.
func TestMaxConnsPerBackendLive(t *testing.T) {
	var saved []registry.State
	h := newHarness(t, Options{Persist: func(s registry.State) error { saved = append(saved, s); return nil }})
	settings := PoolSettings{MaxConnsPerBackend: 20, CriticalShare: 0.1}
	cfg := func(small, large int) registry.Config {
		return registry.Config{
			Pools:  []registry.PoolSpec{pool("shop", settings, beMax("10.0.0.1:80", 1, small), beMax("10.0.0.2:80", 1, large), be("10.0.0.3:80", 1))},
			Routes: Routes(route("site", "/", "shop")),
		}
	}
	h.init(cfg(1, 30), registry.State{})
	// Reserve: 10% of each one's own limit, rounded up; none of a limit of 1.
	if got, want := h.limitsOf("shop"), "10.0.0.1:80=1/0 10.0.0.2:80=30/3 10.0.0.3:80=20/2"; got != want {
		t.Fatalf("limits %q, want %q", got, want)
	}
	v := h.r.View()
	if b := v.Backend("shop", "10.0.0.1:80"); b.MaxConns != 1 || b.Limit != 1 {
		t.Fatalf("view of the small backend: max_conns %d limit %d", b.MaxConns, b.Limit)
	}
	if b := v.Backend("shop", "10.0.0.3:80"); b.MaxConns != 0 || b.Limit != 20 {
		t.Fatalf("view of the pool-sized backend: max_conns %d limit %d", b.MaxConns, b.Limit)
	}
	src := &degrade.PoolSource{Pool: func() *balancer.Pool { return h.px.Current().Pool("shop") }}
	if got := src.Sample().Capacity; got != 1+27+18 {
		t.Fatalf("capacity %d, want %d (the sum of each backend's shared slots)", got, 1+27+18)
	}

	// Hold the small backend's one slot across a reload that raises it.
	p := h.px.Current().Pool("shop")
	held, err := p.Acquire(nil)
	if err != nil {
		t.Fatal(err)
	}
	small := v.Backend("shop", "10.0.0.1:80").State
	for held.State != small { // the ring's turn: take until the small one is held
		defer held.Release()
		if held, err = p.Acquire(nil); err != nil {
			t.Fatal(err)
		}
	}
	ps := h.r.View().Pool("shop").State
	if _, err := h.r.ApplyConfig(h.ctx, cfg(2, 30)); err != nil {
		t.Fatal(err)
	}
	if got, want := h.limitsOf("shop"), "10.0.0.1:80=2/1 10.0.0.2:80=30/3 10.0.0.3:80=20/2"; got != want {
		t.Fatalf("after the reload: limits %q, want %q", got, want)
	}
	v = h.r.View()
	if v.Backend("shop", "10.0.0.1:80").State != small || v.Pool("shop").State != ps || small.Inflight() != 1 {
		t.Fatal("a reload that changed a limit replaced live state")
	}
	held.Release() // through the old generation: the slot is the shared state's
	if small.Inflight() != 0 {
		t.Fatalf("in flight after release: %d", small.Inflight())
	}

	// PATCH: an override of the file, saved with the file's value.
	if err := h.r.Update(h.ctx, "shop", "10.0.0.2:80", registry.BackendUpdate{MaxConns: ptr(5)}); err != nil {
		t.Fatal(err)
	}
	if got, want := h.limitsOf("shop"), "10.0.0.1:80=2/1 10.0.0.2:80=5/1 10.0.0.3:80=20/2"; got != want {
		t.Fatalf("after PATCH: limits %q, want %q", got, want)
	}
	want := registry.SavedBackend{Pool: "shop", Address: "10.0.0.2:80", Weight: 1, MaxConns: 5, Source: registry.SourceConfig, FileWeight: 1, FileMaxConns: 30}
	if n := len(saved); n == 0 || len(saved[n-1].Backends) != 1 || saved[n-1].Backends[0] != want {
		t.Fatalf("saved %+v, want %+v", saved, want)
	}
	// 0 returns it to the pool's.
	if err := h.r.Update(h.ctx, "shop", "10.0.0.2:80", registry.BackendUpdate{MaxConns: ptr(0)}); err != nil {
		t.Fatal(err)
	}
	if got, want := h.limitsOf("shop"), "10.0.0.1:80=2/1 10.0.0.2:80=20/2 10.0.0.3:80=20/2"; got != want {
		t.Fatalf("after PATCH 0: limits %q, want %q", got, want)
	}
	// An unrelated reload keeps the override; a change of the file's
	// max_conns for the backend ends it.
	if _, err := h.r.ApplyConfig(h.ctx, cfg(2, 30)); err != nil {
		t.Fatal(err)
	}
	if got := h.r.View().Backend("shop", "10.0.0.2:80"); got.MaxConns != 0 || !got.Overridden {
		t.Fatalf("override lost by an unrelated reload: %+v", got.Backend)
	}
	res, err := h.r.ApplyConfig(h.ctx, cfg(2, 40))
	if err != nil || len(res.OverridesCleared) != 1 {
		t.Fatalf("reload changing the file's max_conns: %+v %v", res, err)
	}
	if got, want := h.limitsOf("shop"), "10.0.0.1:80=2/1 10.0.0.2:80=40/4 10.0.0.3:80=20/2"; got != want {
		t.Fatalf("after the file changed: limits %q, want %q", got, want)
	}

	// Register with a limit of its own.
	if _, err := h.r.Register(h.ctx, "shop", "10.0.0.9:80", registry.BackendUpdate{MaxConns: ptr(3)}); err != nil {
		t.Fatal(err)
	}
	if got := h.limitsOf("shop"); !strings.HasSuffix(got, " 10.0.0.9:80=3/1") {
		t.Fatalf("after register: limits %q", got)
	}
	if got := src.Sample().Capacity; got != 1+36+18+2 {
		t.Fatalf("capacity %d, want %d", got, 1+36+18+2)
	}
}

// TestInvalidMaxConnsChangesNothing: a bad value, alone or beside good ones,
// is refused whole, naming the field.
func TestInvalidMaxConnsChangesNothing(t *testing.T) {
	h := newHarness(t, Options{})
	h.init(registry.Config{Pools: []registry.PoolSpec{pool("shop", PoolSettings{MaxConnsPerBackend: 4}, beMax("10.0.0.1:80", 2, 3))}}, registry.State{})
	gen := h.r.View().Gen
	for _, u := range []registry.BackendUpdate{
		{MaxConns: ptr(-1)},
		{Weight: ptr(7), MaxConns: ptr(-1)},
		{Weight: ptr(7), MaxConns: ptr(limits.MaxConnsPerBackend + 1), Drain: ptr(true)},
	} {
		err := h.r.Update(h.ctx, "shop", "10.0.0.1:80", u)
		if !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "max_conns") {
			t.Errorf("Update(%v): %v, want ErrInvalid naming max_conns", *u.MaxConns, err)
		}
		if _, err := h.r.Register(h.ctx, "shop", "10.0.0.5:80", registry.BackendUpdate{Weight: u.Weight, MaxConns: u.MaxConns}); !errors.Is(err, registry.ErrInvalid) || !strings.Contains(err.Error(), "max_conns") {
			t.Errorf("Register(%v): %v, want ErrInvalid naming max_conns", *u.MaxConns, err)
		}
	}
	v := h.r.View()
	if b := v.Backend("shop", "10.0.0.1:80"); v.Gen != gen || b.Weight != 2 || b.MaxConns != 3 || b.Drain || v.Backend("shop", "10.0.0.5:80") != nil {
		t.Fatalf("a refused change changed something: gen %d (was %d), %+v", v.Gen, gen, b.Backend)
	}
}

// TestMaxConnsRuleAgrees: `floodgate -check` (conf), the admin API (the
// registry), the state file and the balancer accept and refuse the same
// connection limits per backend: one rule, limits.CheckMaxConns.
func TestMaxConnsRuleAgrees(t *testing.T) {
	h := newHarness(t, Options{})
	h.init(registry.Config{Pools: []registry.PoolSpec{pool("shop", PoolSettings{}, be("10.0.0.1:80", 1))}}, registry.State{})
	for _, n := range []int{-1 << 40, -1, 0, 1, 3, 1000, limits.MaxConnsPerBackend, limits.MaxConnsPerBackend + 1, 1 << 40} {
		yaml := fmt.Sprintf("pools: [{name: shop, backends: [{address: \"10.0.0.1:80\", max_conns: %d}]}]\nroutes: [{name: s, path_prefix: /, pool: shop}]\n", n)
		_, cerr := conf.Parse("t.yaml", []byte(yaml))
		var es conf.Errors
		if cerr != nil && (!errors.As(cerr, &es) || len(es) != 1 || es[0].Field != "pools[0].backends[0].max_conns") {
			t.Errorf("%d: conf refused it for another reason: %v", n, cerr)
		}
		pyaml := fmt.Sprintf("pools: [{name: shop, max_conns_per_backend: %d, backends: [{address: \"10.0.0.1:80\"}]}]\nroutes: [{name: s, path_prefix: /, pool: shop}]\n", n)
		_, perr := conf.Parse("t.yaml", []byte(pyaml))
		uerr := h.r.Update(h.ctx, "shop", "10.0.0.1:80", registry.BackendUpdate{MaxConns: ptr(n)})
		st, _ := json.Marshal(registry.State{Version: registry.StateVersion, Backends: []registry.SavedBackend{
			{Pool: "shop", Address: "10.0.0.9:80", Weight: 1, MaxConns: n, Source: registry.SourceAPI}}})
		_, serr := registry.ParseState(st)
		berr := balancer.ValidatePool(balancer.PoolOptions{Name: "shop", Backends: []balancer.BackendSpec{{Address: "a", Weight: 1, MaxConns: int64(n)}}})
		bperr := balancer.ValidatePool(balancer.PoolOptions{Name: "shop", MaxConnsPerBackend: int64(n)})
		ok := cerr == nil
		for what, err := range map[string]error{"max_conns_per_backend (conf)": perr, "admin API": uerr, "state file": serr, "balancer": berr, "balancer pool": bperr} {
			if (err == nil) != ok {
				t.Errorf("%d: conf -check error %v, %s error %v", n, cerr, what, err)
			}
		}
	}
}
