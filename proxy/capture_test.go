package proxy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/floodgate/floodgate/degrade"
	"github.com/floodgate/floodgate/degrade/capture"
)

// openCapture opens a journal in a temporary directory, closed when the test
// ends, and the proxy's capture over it.
func openCapture(t *testing.T) (*capture.Journal, *Capture) {
	t.Helper()
	j, err := capture.Open(capture.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	c, err := NewCapture(CaptureOptions{Journal: j})
	if err != nil {
		t.Fatal(err)
	}
	return j, c
}

func TestCaptureThenReplay(t *testing.T) {
	j, c := openCapture(t)
	be := newRawBackend(t, nil)
	px, mon := degradedProxy(t, Options{Capture: c}, PoolSpec{}, be.addr(),
		RouteSpec{Name: "checkout", PathPrefix: "/checkout", Pool: "p", Priority: degrade.PriorityHigh, Action: degrade.ActionCapture, CaptureAlways: true})
	mon.SetOverride("p", degrade.OverrideDegraded)
	order := "POST /checkout?cart=7 HTTP/1.1\r\nHost: shop.example\r\nContent-Type: application/json\r\nIdempotency-Key: client-key-1\r\nX-Session: s1\r\nContent-Length: 13\r\n\r\n{\"items\":[1]}"
	r1, _ := exchange(t, px.addr, order, 300*time.Millisecond)
	if statusOfRaw(r1) != 202 || !strings.Contains(r1, "Floodgate-Capture-Id: ") || !strings.Contains(r1, `"status":"received"`) {
		t.Fatalf("order while degraded: %q", r1)
	}
	id := r1[strings.Index(r1, "Floodgate-Capture-Id: ")+len("Floodgate-Capture-Id: "):]
	id = id[:strings.Index(id, "\r\n")]
	if !strings.Contains(r1, `"capture_id":"`+id+`"`) {
		t.Fatalf("body does not carry the id %q: %q", id, r1)
	}
	// The same client key again: the first id, no second record.
	r2, _ := exchange(t, px.addr, order, 300*time.Millisecond)
	if !strings.Contains(r2, "Floodgate-Capture-Id: "+id+"\r\n") {
		t.Fatalf("a repeated submission got another id: %q", r2)
	}
	if n := len(be.requests()); n != 0 {
		t.Fatalf("backend got %d requests while orders were captured", n)
	}
	if st := j.Stats(); st.Backlog["p"] != 1 {
		t.Fatalf("backlog %v, want 1 record for pool p", st.Backlog)
	}
	if px.s.PoolReady("p") {
		t.Fatal("replay must not start while the pool is degraded")
	}

	mon.SetOverride("p", degrade.OverrideNormal)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := j.StartReplay(ctx, px.s.Sender(), capture.ReplayOptions{Ready: px.s.PoolReady})
	defer stop()
	got := <-be.got
	if !strings.HasPrefix(got, "POST /checkout?cart=7 HTTP/1.1\r\n") || !strings.Contains(got, "Idempotency-Key: client-key-1\r\n") ||
		!strings.Contains(got, "Floodgate-Capture-Id: "+id+"\r\n") || !strings.Contains(got, "X-Session: s1\r\n") || !strings.Contains(got, "X-Forwarded-For: 127.0.0.1\r\n") {
		t.Fatalf("replayed request:\n%s", got)
	}
	if b := be.body(0); string(b) != `{"items":[1]}` {
		t.Fatalf("replayed body %q", b)
	}
	waitUntil(t, "the record delivered", func() bool { return j.Stats().Backlog["p"] == 0 })
}

func TestCaptureJournalFailureIs503(t *testing.T) {
	j, c := openCapture(t)
	be := newRawBackend(t, nil)
	px, mon := degradedProxy(t, Options{Capture: c}, PoolSpec{}, be.addr(),
		RouteSpec{Name: "checkout", PathPrefix: "/", Pool: "p", Action: degrade.ActionCapture, CaptureAlways: true})
	mon.SetOverride("p", degrade.OverrideDegraded)
	j.Close() // every append now fails
	r, _ := exchange(t, px.addr, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 300*time.Millisecond)
	if statusOfRaw(r) != 503 || strings.Contains(r, "Floodgate-Capture-Id") {
		t.Fatalf("journal failure: want 503 without a capture id, got %q", r)
	}
	if !strings.Contains(r, "\r\nRetry-After: 5\r\n") ||
		!strings.HasSuffix(r, "\r\n\r\n503 Service Unavailable: route checkout: the order could not be recorded, please retry\n") {
		t.Fatalf("journal failure: want Retry-After and the plain-text reason, got %q", r)
	}
}

// TestResubmittedOrderAfterRecovery: a client that resubmits a captured order
// (same Idempotency-Key) once the pool is normal again gets the same capture id,
// and the backend sees the order once, from replay, not twice.
func TestResubmittedOrderAfterRecovery(t *testing.T) {
	_, c := openCapture(t)
	be := newRawBackend(t, nil)
	px, mon := degradedProxy(t, Options{Capture: c}, PoolSpec{}, be.addr(),
		RouteSpec{Name: "checkout", PathPrefix: "/", Pool: "p", Action: degrade.ActionCapture, CaptureAlways: true})
	order := "POST /o HTTP/1.1\r\nHost: x\r\nIdempotency-Key: k9\r\nContent-Length: 2\r\n\r\n{}"
	mon.SetOverride("p", degrade.OverrideDegraded)
	r1, _ := exchange(t, px.addr, order, 300*time.Millisecond)
	mon.SetOverride("p", degrade.OverrideNormal)
	r2, _ := exchange(t, px.addr, order, 300*time.Millisecond)
	if statusOfRaw(r2) != 202 || r1[strings.Index(r1, "Floodgate-Capture-Id"):][:40] != r2[strings.Index(r2, "Floodgate-Capture-Id"):][:40] {
		t.Fatalf("resubmission after recovery:\n%q\n%q", r1, r2)
	}
	if n := len(be.requests()); n != 0 {
		t.Fatalf("the resubmission reached the backend (%d requests): it would be recorded twice", n)
	}
	// The same key for a different order is refused.
	other := "POST /o HTTP/1.1\r\nHost: x\r\nIdempotency-Key: k10\r\nContent-Length: 2\r\n\r\n{}"
	mon.SetOverride("p", degrade.OverrideDegraded)
	exchange(t, px.addr, other, 300*time.Millisecond)
	conflict := "POST /o HTTP/1.1\r\nHost: x\r\nIdempotency-Key: k10\r\nContent-Length: 3\r\n\r\n{1}"
	if r, _ := exchange(t, px.addr, conflict, 300*time.Millisecond); statusOfRaw(r) != 422 ||
		!strings.HasSuffix(r, "\r\n\r\n422 Unprocessable Entity: route checkout: Idempotency-Key already used for a different request\n") {
		t.Fatalf("key reused for another order: %q, want 422 with its reason", r)
	}
}

// TestCaptureWhenNoBackendIsUp: an order is journalled, not refused, when no
// backend of its pool is up, even outside degraded mode.
func TestCaptureWhenNoBackendIsUp(t *testing.T) {
	_, c := openCapture(t)
	be := newRawBackend(t, nil)
	px, _ := degradedProxy(t, Options{Capture: c}, PoolSpec{}, be.addr(),
		RouteSpec{Name: "checkout", PathPrefix: "/", Pool: "p", Action: degrade.ActionCapture})
	px.s.Current().Pool("p").Backends()[0].State.SetProbeUp(false)
	r, _ := exchange(t, px.addr, "POST /o HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 300*time.Millisecond)
	if statusOfRaw(r) != 202 {
		t.Fatalf("order with no backend up: %q, want 202", r)
	}
	if r, _ := exchange(t, px.addr, "GET /o HTTP/1.1\r\nHost: x\r\n\r\n", 300*time.Millisecond); statusOfRaw(r) != 503 {
		t.Fatalf("a GET is never captured: %q", r)
	}
}

// TestCaptureWhenRefused: with the default when: refused, an order admitted
// while the pool is degraded goes to the backend; one that finds every slot
// busy until the queue gives up is journalled and answered 202, not failed.
func TestCaptureWhenRefused(t *testing.T) {
	j, c := openCapture(t)
	px, pool, block := saturableDegradedProxy(t, Options{Capture: c},
		RouteSpec{Name: "checkout", PathPrefix: "/", Pool: "p", Priority: degrade.PriorityHigh, Action: degrade.ActionCapture})

	// Admitted with a free slot: forwarded (the backend holds it).
	done := make(chan string, 1)
	go func() {
		r, _ := exchange(t, px.addr, "POST /o HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 5*time.Second)
		done <- r
	}()
	waitUntil(t, "the admitted order at the backend", func() bool { return pool.Backends()[0].State.Inflight() == 1 })
	// No slot: journalled at once (the pool has no queue).
	r, _ := exchange(t, px.addr, "POST /o HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 300*time.Millisecond)
	if statusOfRaw(r) != 202 || !strings.Contains(r, "Floodgate-Capture-Id: ") {
		t.Fatalf("order refused for want of a slot while degraded: %q, want 202 with a capture id", r)
	}
	close(block)
	if r := <-done; statusOfRaw(r) != 200 {
		t.Fatalf("admitted order while degraded: %q, want the backend's 200", r)
	}
	if st := j.Stats(); st.Backlog["p"] != 1 {
		t.Fatalf("backlog %v, want the one refused order", st.Backlog)
	}
}
