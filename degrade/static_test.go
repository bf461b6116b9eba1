package degrade

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, name string, size int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, bytes.Repeat([]byte("x"), size), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadStatic(t *testing.T) {
	html := writeFile(t, "busy.html", 100)
	st, err := LoadStatic(html, 0, map[string]string{"retry-after": RetryAfter(30 * time.Second), "Cache-Control": "no-store"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != 503 || st.ContentType != "text/html; charset=utf-8" || len(st.Body) != 100 {
		t.Errorf("static = %d %q %d bytes", st.Status, st.ContentType, len(st.Body))
	}
	if want := []Header{{"Cache-Control", "no-store"}, {"Retry-After", "30"}}; len(st.Header) != 2 || st.Header[0] != want[0] || st.Header[1] != want[1] {
		t.Errorf("headers = %v, want %v", st.Header, want)
	}

	tests := []struct {
		name    string
		file    string
		status  int
		headers map[string]string
		ctype   string
		err     string
	}{
		{"json", "busy.json", 200, nil, "application/json", ""},
		{"no extension", "busy", 0, nil, "application/octet-stream", ""},
		{"configured type wins", "busy.html", 0, map[string]string{"content-type": "text/plain"}, "text/plain", ""},
		{"exactly the cap", "cap.txt", 0, nil, "text/plain; charset=utf-8", ""},
		{"too large", "big.html", 0, nil, "", "too large"},
		{"missing", "", 0, nil, "", "no such file"},
		{"status", "busy.html", 99, nil, "", "status 99"},
		{"header injection", "busy.html", 0, map[string]string{"X-A": "1\r\nSet-Cookie: x"}, "", "invalid value"},
		{"bad name", "busy.html", 0, map[string]string{"X A": "1"}, "", "invalid name"},
		{"framing", "busy.html", 0, map[string]string{"content-length": "5"}, "", "Content-Length: set by the proxy"},
		{"hop by hop", "busy.html", 0, map[string]string{"Connection": "close"}, "", "Connection: set by the proxy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var path string
			switch tt.file {
			case "":
				path = filepath.Join(t.TempDir(), "absent.html")
			case "cap.txt":
				path = writeFile(t, tt.file, MaxStaticSize)
			case "big.html":
				path = writeFile(t, tt.file, MaxStaticSize+1)
			default:
				path = writeFile(t, tt.file, 10)
			}
			st, err := LoadStatic(path, tt.status, tt.headers)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				if tt.name == "too large" && !errors.Is(err, ErrStaticTooLarge) {
					t.Errorf("err = %v, want ErrStaticTooLarge", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.ContentType != tt.ctype {
				t.Errorf("content type %q, want %q", st.ContentType, tt.ctype)
			}
		})
	}
	if _, err := LoadStatic(t.TempDir(), 0, nil); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
}

func TestCanonicalKey(t *testing.T) {
	for in, want := range map[string]string{"retry-after": "Retry-After", "CONTENT-TYPE": "Content-Type", "x-a-b": "X-A-B", "Te": "Te", "x_y": "X_y"} {
		if got := canonicalKey(in); got != want {
			t.Errorf("canonicalKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRetryAfterAndShed(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{{-time.Second, "0"}, {0, "0"}, {time.Nanosecond, "1"}, {1500 * time.Millisecond, "2"}, {30 * time.Second, "30"}, {time.Hour, "3600"}} {
		if got := RetryAfter(tt.d); got != tt.want {
			t.Errorf("RetryAfter(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
	s, err := NewShed(0, 30*time.Second)
	if err != nil || s.Status != 503 || s.RetryAfter != "30" || string(s.Body) != "503 Service Unavailable\n" {
		t.Errorf("NewShed(0, 30s) = %+v, %v", s, err)
	}
	s, err = NewShed(429, 0)
	if err != nil || s.Status != 429 || s.RetryAfter != "" || string(s.Body) != "429 Too Many Requests\n" {
		t.Errorf("NewShed(429, 0) = %+v, %v", s, err)
	}
	for _, ra := range []time.Duration{1500 * time.Millisecond, 2 * time.Hour} {
		if _, err := NewShed(503, ra); err == nil {
			t.Errorf("NewShed(503, %s) accepted: the file refuses it", ra)
		}
	}
	if _, err := NewShed(500, 0); err == nil {
		t.Error("NewShed(500) accepted")
	}
	if _, err := NewShed(503, -time.Second); err == nil {
		t.Error("negative Retry-After accepted")
	}
}
