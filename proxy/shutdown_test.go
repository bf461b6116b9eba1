package proxy

import (
	"net"
	"testing"
	"time"
)

// TestShutdownBeforeServe: a Shutdown that runs before Serve has started (a
// signal at start-up; CI caught a test helper hanging for ten minutes on it)
// makes Serve return nil at once and close its listener, instead of accepting
// forever.
func TestShutdownBeforeServe(t *testing.T) {
	s := New(Options{})
	if err := s.Shutdown(contextWithTimeout(t, time.Second)); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after Shutdown: %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		ln.Close()
		t.Fatal("Serve after Shutdown is still accepting")
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatal("the listener is still open after Serve returned")
	}
}

// TestShutdownRacingServe: Shutdown right after Serve was started, in the
// order the test helpers use; Serve must always return.
func TestShutdownRacingServe(t *testing.T) {
	for range 50 {
		s := New(Options{})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Serve(ln) }()
		if err := s.Shutdown(contextWithTimeout(t, time.Second)); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Serve: %v, want nil after Shutdown", err)
			}
		case <-time.After(10 * time.Second):
			ln.Close()
			t.Fatal("Serve still accepting after Shutdown")
		}
	}
}
