package proxy

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/floodgate/floodgate/balancer"
)

// Tests from a red-team pass over the client request side (issue #13): each is
// an attack that got through, or a client fault that was blamed on a backend.

// A client that fails its own request body (closes mid-upload, sends a forbidden
// or malformed trailer, a broken chunk) gets 4xx, and the backend is not charged
// with a failure: otherwise any anonymous client could eject every backend of a
// pool (passive health) with a few aborted uploads.
func TestClientBodyFailureIsNotTheBackends(t *testing.T) {
	be := newRawBackend(t, nil)
	px, pool := weightedProxyOpts(t, Options{BodyIdleTimeout: 3 * time.Second}, PoolSpec{}, balancer.PoolOptions{}, []string{be.addr()}, []int{1})
	state := pool.Backends()[0].State
	tests := []struct {
		name, raw string
		want      int
	}{
		{"upload cut short", "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789", 400},
		{"chunked upload cut short", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123", 400},
		{"forbidden trailer", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\nContent-Length: 5\r\n\r\n", 400},
		{"malformed trailer", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\nbogus\r\n\r\n", 400},
		{"broken chunk", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcdef\r\n0\r\n\r\n", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", px.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, tt.raw)
			c.(*net.TCPConn).CloseWrite() // the client is done sending, cut short or not
			resp, _ := readUntilQuiet(c, 2*time.Second)
			if got := statusOfRaw(resp); got != tt.want {
				t.Errorf("status %d, want %d: %.120q", got, tt.want, resp)
			}
			if st := state.Stats(); st.Failures != 0 {
				t.Errorf("the backend was charged with %d failure(s) for the client's fault", st.Failures)
			}
		})
	}
	// The backend still counts its own failures.
	resp, _ := exchange(t, px.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 300*time.Millisecond)
	if statusOfRaw(resp) != 200 || !strings.Contains(resp, "ok") {
		t.Fatalf("a plain request after: %q", resp)
	}
}
