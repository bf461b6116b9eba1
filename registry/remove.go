package registry

import (
	"context"
	"fmt"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/floodgate/floodgate/internal/panics"
)

// Removal is the outcome of Remove.
type Removal struct {
	// Drained is true when the backend's in-flight count reached zero before
	// the timeout; false when it was removed with requests still running
	// (they finish on their open connections; no new one is sent).
	Drained bool
	// Inflight is the in-flight count when the backend was removed.
	Inflight int64
	// Waited is how long the drain took.
	Waited time.Duration
}

// removal is one Remove in progress; concurrent Removes of the same backend
// share it.
type removal struct {
	done chan struct{}
	res  Removal
	err  error
}

// Remove drains a backend registered over the API, then removes it, and returns
// only once it is out of the data plane: after Remove returns, no request is
// sent to it. Draining takes it out of the balancing (weight 0, marked down in
// every generation so even requests that loaded an older snapshot skip it) and
// waits up to timeout for its in-flight requests to finish; when the timeout
// passes it is removed anyway. The removal is saved to the state file when it
// starts.
//
// Backends of the config file cannot be removed over the API (ErrConflict):
// the next reload would bring them back; drain them with Update, or edit the
// file. A second Remove of a backend being removed waits for the first and
// returns its result. If ctx ends first Remove returns ctx's error, but the
// removal carries on: a half-drained backend is never left behind.
func (r *Registry) Remove(ctx context.Context, pool, address string, timeout time.Duration) (Removal, error) {
	if c, err := CanonicalAddress(address); err == nil {
		address = c // one removal per backend, however it is spelt
	}
	id := BackendID(pool, address)
	r.remMu.Lock()
	rm := r.removals[id]
	if rm == nil {
		if r.remClosed {
			r.remMu.Unlock()
			return Removal{}, ErrClosed
		}
		rm = &removal{done: make(chan struct{})}
		r.removals[id] = rm
		r.remWG.Add(1)
		go func() {
			defer r.remWG.Done()
			rm.err = r.safely("registry remove", func() (err error) {
				rm.res, err = r.remove(context.WithoutCancel(ctx), pool, address, timeout)
				return err
			})
			r.remMu.Lock()
			delete(r.removals, id)
			r.remMu.Unlock()
			close(rm.done)
		}()
	}
	r.remMu.Unlock()
	select {
	case <-rm.done:
		return rm.res, rm.err
	case <-ctx.Done():
		return Removal{}, ctx.Err()
	}
}

// remove does the work of Remove.
func (r *Registry) remove(ctx context.Context, pool, address string, timeout time.Duration) (Removal, error) {
	start := time.Now()
	// Phase 1: mark it removing, which takes it out of the data plane's
	// choices and out of the state file.
	_, _, err := r.writeAndWait(ctx, func(txn *memdb.Txn) error {
		old, err := r.findBackend(txn, pool, address)
		if err != nil {
			return err
		}
		if old.Source != SourceAPI {
			return conflictf("backend %s of pool %q comes from the config file; remove it there, or drain it with PATCH {\"drain\": true}", address, pool)
		}
		if old.Removing {
			return nil // a previous Remove that gave up on its context; finish it
		}
		row := *old
		row.Removing = true
		return txn.Insert(tableBackends, &row)
	})
	if err != nil {
		return Removal{}, err
	}
	res := r.drain(pool, address, timeout)

	// Phase 2: remove it for good.
	_, _, err = r.writeAndWait(ctx, func(txn *memdb.Txn) error {
		old, err := first[backendRow](txn, tableBackends, pool, address)
		if err != nil {
			return err
		}
		switch {
		case old == nil:
			return nil // its pool went away with a reload meanwhile: removed all the same
		case !old.Removing || old.Source != SourceAPI:
			return conflictf("backend %s of pool %q was taken over by the config file while it drained; it stays", address, pool)
		}
		return txn.Delete(tableBackends, old)
	})
	if err != nil {
		return Removal{}, err
	}
	res.Waited = time.Since(start)
	return res, nil
}

// drain waits until the backend has had no request in flight for the settle
// period, or timeout has passed. The backend is already marked down in every
// generation; its in-flight count (Options.Inflight, which reads the data
// plane's live state) only falls from here, except for a request that read it
// up an instant before it was marked down and takes its slot just after: the
// settle period covers that window.
//
// The data plane offers no notification when a count reaches zero, so this
// polls it; the poll is off the request path and bounded by timeout.
func (r *Registry) drain(pool, address string, timeout time.Duration) Removal {
	inflight := func() int64 {
		n, _ := r.inflight(pool, address)
		return n
	}
	if r.inflight == nil {
		return Removal{Drained: true}
	}
	if _, ok := r.inflight(pool, address); !ok {
		return Removal{Drained: true}
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(r.poll)
	defer tick.Stop()
	var zeroSince time.Time
	for {
		n := inflight()
		now := time.Now()
		switch {
		case n != 0:
			zeroSince = time.Time{}
		case zeroSince.IsZero():
			zeroSince = now
		case now.Sub(zeroSince) >= r.settle:
			return Removal{Drained: true}
		}
		select {
		case <-deadline.C:
			n := inflight()
			return Removal{Drained: n == 0, Inflight: n}
		case <-r.done: // shutting down: phase 2 will find the registry closed
			n := inflight()
			return Removal{Drained: n == 0, Inflight: n}
		case <-tick.C:
		}
	}
}

// safely runs fn and turns a panic in it into an error, after package panics
// has counted and logged it: a bug met while removing one backend fails that
// removal instead of ending the process.
func (r *Registry) safely(where string, fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			panics.Contain(r.log, where, v)
			err = fmt.Errorf("%s: internal error: %v", where, v)
		}
	}()
	return fn()
}
