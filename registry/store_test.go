package registry

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

func TestSchemaIsValid(t *testing.T) {
	if err := NewSchema().Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := memdb.NewMemDB(NewSchema()); err != nil {
		t.Fatal(err)
	}
}

// applier stands in for package generation: it watches the registry, records
// each snapshot it applies, and reports it applied, the way the real one does,
// so the store is tested with nothing of the data plane.
type applier struct {
	mu   sync.Mutex
	seen []*Contents
}

func (a *applier) run(ctx context.Context, r *Registry) {
	defer r.Close()
	var last uint64
	first := true
	for {
		c, changed := r.Snapshot()
		if first || c.Index > last {
			a.mu.Lock()
			a.seen = append(a.seen, c)
			a.mu.Unlock()
			r.Applied(c.Index, nil)
			first, last = false, c.Index
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

func (a *applier) last() *Contents {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[len(a.seen)-1]
}

// newStore returns a Registry with an applier running.
func newStore(t *testing.T, opts Options) (*Registry, *applier, context.Context) {
	t.Helper()
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	a := &applier{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.run(ctx, r) }()
	t.Cleanup(func() { cancel(); <-done })
	tctx, tcancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(tcancel)
	return r, a, tctx
}

// settings is what a caller stores as a pool's settings: opaque to the registry.
type settings struct{ probed bool }

// TestStoreOnItsOwn: the registry stores what it is given, hands its watcher
// consistent snapshots with their index, refuses what Check refuses without
// committing it, and writers return once their index is applied.
func TestStoreOnItsOwn(t *testing.T) {
	refuse := false
	var checked []*Contents
	r, a, ctx := newStore(t, Options{
		Probed: func(s any) bool { return s.(settings).probed },
		Check: func(c *Contents) error {
			checked = append(checked, c)
			if refuse {
				return errors.New("the builder says no")
			}
			return nil
		},
	})
	cfg := Config{
		Pools: []PoolSpec{
			{Name: "shop", Settings: settings{}, Backends: []BackendSpec{{Address: "10.0.0.1:80", Weight: 2}}},
			{Name: "erp", Settings: settings{probed: true}},
		},
		Routes: []RouteSpec{{Name: "site", Pool: "shop", Spec: "anything"}},
	}
	if _, err := r.Init(ctx, cfg, State{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Register(ctx, "erp", "10.0.0.2:80", BackendUpdate{}); err != nil {
		t.Fatal(err)
	}
	c := a.last()
	if c.Index != 2 || len(c.Pools) != 2 || c.Pools[0].Name != "shop" || c.Routes[0].Spec != "anything" {
		t.Fatalf("applied contents %+v", c)
	}
	if b := c.Pool("erp").Backends[0]; b.StartUp || b.Source != SourceAPI || b.Weight != 1 {
		t.Fatalf("backend registered in a probed pool: %+v, want it to start down", b)
	}
	if b := c.Pool("shop").Backends[0]; !b.StartUp || b.ID() != "shop/10.0.0.1:80" {
		t.Fatalf("backend known at start: %+v", b)
	}
	if n := len(checked); n != 2 || checked[1].Index != 2 {
		t.Fatalf("Check saw %d contents", n)
	}

	refuse = true
	_, err := r.Register(ctx, "shop", "10.0.0.3:80", BackendUpdate{})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "the builder says no") {
		t.Fatalf("Register refused by Check: %v, want an ErrInvalid with Check's reason", err)
	}
	if now, _ := r.Snapshot(); now.Index != 2 || len(now.Pool("shop").Backends) != 1 {
		t.Fatalf("a refused change was committed: %+v", now)
	}

	refuse = false
	bad := cfg
	bad.Routes = []RouteSpec{{Name: "site", Pool: "nope"}}
	if _, err := r.ApplyConfig(ctx, bad); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `unknown pool "nope"`) {
		t.Fatalf("route to a missing pool: %v", err)
	}
}

// TestWaitAppliedReportsTheApplierError: a writer gets the error its
// generation failed with, and ErrClosed once nothing applies any more.
func TestWaitAppliedReportsTheApplierError(t *testing.T) {
	r, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, changed := r.Snapshot()
	go func() {
		<-changed
		c, _ := r.Snapshot()
		r.Applied(c.Index, errors.New("boom"))
	}()
	if _, err := r.Init(ctx, Config{Pools: []PoolSpec{{Name: "p"}}}, State{}); err == nil || err.Error() != "boom" {
		t.Fatalf("Init: %v, want the applier's error", err)
	}
	r.Close()
	if _, err := r.Register(ctx, "p", "10.0.0.1:80", BackendUpdate{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Register after Close: %v", err)
	}
}

// TestCheckInitCommitsNothing: CheckInit runs Init's transaction and checks
// without a watcher, reports what Init would skip, refuses what Check refuses,
// and leaves the registry empty and Init still to be called.
func TestCheckInitCommitsNothing(t *testing.T) {
	refuse := false
	persisted := 0
	r, err := New(Options{
		Check: func(*Contents) error {
			if refuse {
				return errors.New("the builder says no")
			}
			return nil
		},
		Persist: func(State) error { persisted++; return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Pools: []PoolSpec{{Name: "shop", Backends: []BackendSpec{{Address: "10.0.0.1:80", Weight: 1}}}}}
	saved := State{Version: StateVersion, Backends: []SavedBackend{
		{Pool: "shop", Address: "10.0.0.2:80", Weight: 1, Source: SourceAPI},
		{Pool: "gone", Address: "10.0.0.3:80", Weight: 1, Source: SourceAPI},
	}}
	res, err := r.CheckInit(cfg, saved)
	if err != nil || res.Restored != 1 || len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0], `pool "gone"`) {
		t.Fatalf("CheckInit: %+v %v", res, err)
	}
	refuse = true
	if _, err := r.CheckInit(cfg, saved); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "the builder says no") {
		t.Fatalf("CheckInit refused by Check: %v", err)
	}
	if c, _ := r.Snapshot(); c.Index != 0 || len(c.Pools) != 0 || persisted != 0 {
		t.Fatalf("CheckInit committed or persisted something: %+v, %d saves", c, persisted)
	}
}
