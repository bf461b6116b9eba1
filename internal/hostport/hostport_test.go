package hostport

import (
	"strings"
	"testing"
)

func TestBackend(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"127.0.0.1:8080", "127.0.0.1:8080", ""},
		{"127.0.0.1:01", "127.0.0.1:1", ""},
		{"127.0.0.1:000080", "127.0.0.1:80", ""},
		{"[::ffff:127.0.0.1]:80", "127.0.0.1:80", ""},
		{"[2001:DB8:0:0::1]:443", "[2001:db8::1]:443", ""},
		{"[127.0.0.1]:80", "127.0.0.1:80", ""},
		{"Backend.Example.COM:80", "backend.example.com:80", ""},
		{"svc_a.local.:9000", "svc_a.local.:9000", ""},
		{"0.0.0.0:80", "", "unspecified"},
		{"[::]:80", "", "unspecified"},
		{"[::ffff:0.0.0.0]:80", "", "unspecified"},
		{"127.0.0.1:0", "", "port 0"},
		{"127.0.0.1:00", "", "port 0"},
		{"127.0.0.1:65536", "", "between 1 and 65535"},
		{"127.0.0.1:+80", "", "between 1 and 65535"},
		{"127.0.0.1:-1", "", "between 1 and 65535"},
		{"127.0.0.1: 80", "", "between 1 and 65535"},
		{"127.0.0.1:http", "", "between 1 and 65535"},
		{"[fe80::1%lo]:8080", "", "zones"},
		{"127.0.0.01:80", "", "invalid IPv4"},
		{"10.1:80", "", "invalid IPv4"},
		{":80", "", "needs a host"},
		{"127.0.0.1", "", "host:port"},
		{"", "", "required"},
		{"bad host:80", "", "invalid host"},
		{strings.Repeat("a", 300) + ":80", "", "longer than"},
	} {
		got, err := Backend(c.in)
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("Backend(%q) = %q, %v; want %q", c.in, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("Backend(%q) = %q, %v; want an error about %q", c.in, got, err, c.err)
		}
		if err == nil {
			if again, err := Backend(got); err != nil || again != got {
				t.Errorf("Backend(%q) = %q, %v: the canonical form is not a fixed point", got, again, err)
			}
		}
	}
}
