package httpwire

import (
	"bufio"
	"strings"
	"testing"
)

func TestResponseBody(t *testing.T) {
	for _, tt := range []struct {
		head       bool
		status, cl int
		mode       BodyMode
		n          int64
	}{
		{false, 200, 5, BodyFixed, 5},
		{false, 200, 0, BodyFixed, 0},
		{false, 200, -1, BodyChunked, 0},
		{false, 200, -2, BodyToClose, 0},
		{true, 200, 5, BodyNone, 0},
		{false, 204, 5, BodyNone, 0},
		{false, 304, -1, BodyNone, 0},
	} {
		if mode, n := ResponseBody(tt.head, tt.status, tt.cl); mode != tt.mode || n != tt.n {
			t.Errorf("ResponseBody(%v, %d, %d) = %d %d, want %d %d", tt.head, tt.status, tt.cl, mode, n, tt.mode, tt.n)
		}
	}
}

func TestCheckStatusDigit(t *testing.T) {
	for head, bad := range map[string]bool{
		"HTTP/1.1 200 OK\r\n": false, "HTTP/1.1 000 X\r\n": true, "HTTP/1.1 600 X\r\n": true, "HTTP/1.1 099 X\r\n": true,
		"HTTP/1.1 1": false, "garbage\n": false, "HTTP/2 200\r\n": false, "": false,
	} {
		err := CheckStatusDigit(bufio.NewReader(strings.NewReader(head)))
		if (err != nil) != bad {
			t.Errorf("CheckStatusDigit(%q) = %v", head, err)
		}
	}
	for p, ok := range map[string]bool{"HTTP/1.1": true, "HTTP/1.0": true, "HTTP/2": false, "http/1.1": false, "HTTP/1.10": false} {
		if ValidVersion([]byte(p)) != ok {
			t.Errorf("ValidVersion(%q) != %v", p, ok)
		}
	}
	if ValidStatus(99) || !ValidStatus(100) || !ValidStatus(599) || ValidStatus(600) {
		t.Error("ValidStatus")
	}
}
