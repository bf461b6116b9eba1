// Package panics contains panics at the goroutine boundaries that handle
// outside input: a request, a client or backend connection, a health probe, a
// replay, a watcher, an admin call. A panic there is a bug, but one request's
// bug must not take down the process and every other client with it. Recover
// (or Contain, for a caller that recovers itself) counts it, for
// floodgate_panics_total, and logs it once with its stack; the caller closes
// what the panic affected: the request gets a 500 and its connection is
// closed, a background task ends or skips one round.
//
// Under `go test` a contained panic is re-raised after it is counted, so that a
// test still fails on one, as it did before containment; a test of containment
// itself says so with Contain(t). The floodgate binary never re-raises.
//
// It imports only the standard library, so that every package can use it.
package panics

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"testing"
)

var (
	total   atomic.Uint64
	allowed atomic.Int32 // tests that let panics be contained, see Allow
)

// Total returns how many panics were contained since the process started.
func Total() uint64 { return total.Load() }

// Recover contains a panic of the calling goroutine: it must be deferred
// directly (defer panics.Recover(log, "health probe")), and where names the
// boundary in the log line. The goroutine's function then returns normally
// from the point where it deferred Recover. log may be nil.
func Recover(log *slog.Logger, where string) {
	if v := recover(); v != nil {
		Contain(log, where, v)
	}
}

// Contain counts and logs v, a panic value the caller has just recovered, with
// the stack of the panicking goroutine (call it from the deferred function that
// recovered, so that the stack still shows where the panic came from). Under go
// test it panics again with v, unless a test allowed containment.
func Contain(log *slog.Logger, where string, v any) {
	total.Add(1)
	if log != nil && log.Enabled(context.Background(), slog.LevelError) {
		log.Error("panic contained: "+where, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	}
	if testing.Testing() && allowed.Load() == 0 {
		panic(v)
	}
}

// Allow lets panics be contained, instead of re-raised, until the test ends.
// For tests of containment itself; while one runs, a panic of any test of the
// same binary is contained (and counted) too, so such tests should not run in
// parallel with others.
func Allow(t testing.TB) {
	allowed.Add(1)
	t.Cleanup(func() { allowed.Add(-1) })
}
