package balancer

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is an injectable clock that also counts its reads, so tests can
// assert that steady state never looks at the time.
type fakeClock struct {
	ns    atomic.Int64
	reads atomic.Int64
}

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time {
	c.reads.Add(1)
	return time.Unix(0, c.ns.Load())
}

func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// specs builds backends named a, b, c, ... with the given weights and fresh
// states.
func specs(weights ...int) []BackendSpec {
	out := make([]BackendSpec, len(weights))
	for i, w := range weights {
		name := string(rune('a' + i))
		out[i] = BackendSpec{Address: name, Weight: w, State: NewBackendState(name)}
	}
	return out
}

// respec returns specs with the same addresses and states and new weights: the
// next generation of the same pool.
func respec(old []BackendSpec, weights ...int) []BackendSpec {
	out := append([]BackendSpec(nil), old...)
	for i := range out {
		out[i].Weight = weights[i]
	}
	return out
}

func mustPool(tb testing.TB, opts PoolOptions) *Pool {
	tb.Helper()
	if opts.Name == "" {
		opts.Name = "test"
	}
	p, err := NewPool(opts)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func weighted(tb testing.TB, weights ...int) *Pool {
	tb.Helper()
	return mustPool(tb, PoolOptions{Backends: specs(weights...)})
}

// picks returns the addresses of the next n picks, "-" for an error.
func picks(p *Pool, n int) string {
	var sb strings.Builder
	for range n {
		b, err := p.Pick()
		if err != nil {
			sb.WriteByte('-')
			continue
		}
		sb.WriteString(b.Address)
	}
	return sb.String()
}

func count(seq string) map[rune]int {
	m := map[rune]int{}
	for _, r := range seq {
		m[r]++
	}
	return m
}

// queueSignal makes s report on the returned channel each time a request starts
// waiting, so a test can wait for a goroutine to be queued instead of sleeping.
func queueSignal(s *PoolState) <-chan struct{} {
	ch := make(chan struct{}, 100)
	s.mu.Lock()
	s.onQueue = func() { ch <- struct{}{} }
	s.mu.Unlock()
	return ch
}

type result struct {
	id  int
	b   *Backend
	err error
}

// acquireAsync runs p.Acquire(skip) in a goroutine and delivers the result.
func acquireAsync(p *Pool, skip *Backend, id int, out chan<- result) {
	go func() {
		b, err := p.Acquire(skip)
		out <- result{id, b, err}
	}()
}

// receive waits for one result, failing the test if none comes in a long time
// (a hang, not a timing assertion).
func receive(tb testing.TB, ch <-chan result) result {
	tb.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		tb.Fatal("no result after 10s")
		return result{}
	}
}

func mustAcquire(tb testing.TB, p *Pool, skip *Backend) *Backend {
	tb.Helper()
	b, err := p.Acquire(skip)
	if err != nil {
		tb.Fatalf("Acquire: %v", err)
	}
	return b
}
