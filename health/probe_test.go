package health

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestProbeHTTP runs probeHTTP once against real loopback servers.
func TestProbeHTTP(t *testing.T) {
	status := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
	}
	tests := []struct {
		name       string
		handler    http.HandlerFunc // nil: nothing listens
		check      Check            // Timeout 0 means 5s: only the timeout case should time out, even on a starved CI machine
		wantOK     bool
		wantReason string
	}{
		{name: "200 is up", handler: status(200), wantOK: true, wantReason: "status 200"},
		{name: "204 is up", handler: status(204), wantOK: true, wantReason: "status 204"},
		{name: "302 is up and not followed", handler: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://127.0.0.1:1/elsewhere", http.StatusFound)
		}, wantOK: true, wantReason: "status 302"},
		{name: "404 is down", handler: status(404), wantReason: "status 404"},
		{name: "503 is down", handler: status(503), wantReason: "status 503"},
		{name: "expect 204 rejects 200", handler: status(200), check: Check{ExpectStatus: 204}, wantReason: "status 200"},
		{name: "expect 418 accepts 418", handler: status(418), check: Check{ExpectStatus: 418}, wantOK: true, wantReason: "status 418"},
		{name: "request line and headers", check: Check{Path: "/ready?deep=1", Host: "shop.example"},
			handler: func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodGet || r.URL.RequestURI() != "/ready?deep=1" || r.Host != "shop.example" ||
					r.UserAgent() != "floodgate-health" {
					w.WriteHeader(http.StatusBadRequest)
				}
			}, wantOK: true, wantReason: "status 200"},
		{name: "timeout", handler: func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
			check: Check{Timeout: 100 * time.Millisecond}, wantReason: "timeout after 100ms"},
		{name: "body read is bounded", wantOK: true, wantReason: "status 200",
			handler: func(w http.ResponseWriter, r *http.Request) {
				// Twice the bound, flushed, then a body that never ends: reading
				// it all would hit the timeout.
				_, _ = w.Write(make([]byte, 2*maxBody))
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			}},
		{name: "refused", wantReason: "connect: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := closedAddr(t)
			if tt.handler != nil {
				srv := httptest.NewServer(tt.handler)
				t.Cleanup(srv.Close)
				addr = srv.Listener.Addr().String()
			}
			chk := tt.check
			chk.Type, chk.Interval = TypeHTTP, 5*time.Second
			if chk.Timeout == 0 {
				chk.Timeout = 5 * time.Second
			}
			chk = chk.normalized()
			ctx, cancel := context.WithTimeout(t.Context(), chk.Timeout)
			defer cancel()
			ok, reason := probeHTTP(ctx, addr, chk)
			if ok != tt.wantOK || reason != tt.wantReason {
				t.Errorf("probeHTTP = %v, %q; want %v, %q", ok, reason, tt.wantOK, tt.wantReason)
			}
		})
	}
}

// TestProbeHTTPCancel checks that cancelling the context (Close, Sync removal)
// interrupts a probe blocked on a silent backend at once, not at its timeout.
func TestProbeHTTPCancel(t *testing.T) {
	t.Parallel()
	arrived := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
	defer cancel()
	go func() { <-arrived; cancel() }()
	start := time.Now()
	chk := Check{Type: TypeHTTP, Interval: time.Hour}.normalized()
	if ok, _ := probeHTTP(ctx, srv.Listener.Addr().String(), chk); ok {
		t.Fatal("cancelled probe reported up")
	}
	if d := time.Since(start); d > waitFor {
		t.Fatalf("cancelled probe returned after %s", d)
	}
}

func TestProbeTCP(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	tests := []struct {
		name       string
		addr       string
		wantOK     bool
		wantReason string
	}{
		{"listening", ln.Addr().String(), true, "connected"},
		{"refused", closedAddr(t), false, "connect: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			ok, reason := probeTCP(ctx, tt.addr, Check{Type: TypeTCP, Timeout: time.Second})
			if ok != tt.wantOK || reason != tt.wantReason {
				t.Errorf("probeTCP = %v, %q; want %v, %q", ok, reason, tt.wantOK, tt.wantReason)
			}
		})
	}
}

func TestFailReason(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"deadline", context.DeadlineExceeded, "timeout after 1.5s"},
		{"dns", &net.DNSError{Err: "no such host", Name: "nope"}, "resolve: no such host"},
		{"op error", &net.OpError{Op: "read", Net: "tcp", Err: errString("boom")}, "read: boom"},
		{"other", errString("weird"), "weird"},
	}
	for _, tt := range tests {
		if got := failReason(tt.err, 1500*time.Millisecond); got != tt.want {
			t.Errorf("%s: failReason = %q, want %q", tt.name, got, tt.want)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }
