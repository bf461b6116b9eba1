package proxy

import (
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	peer := func(s string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(s), Port: 1} }
	tests := []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"untrusted peer, XFF ignored", "203.0.113.9", []string{"1.2.3.4"}, "203.0.113.9"},
		{"trusted peer, one hop", "10.0.0.1", []string{"198.51.100.7"}, "198.51.100.7"},
		{"trusted chain, rightmost untrusted wins", "10.0.0.1", []string{"6.6.6.6, 198.51.100.7, 10.1.1.1"}, "198.51.100.7"},
		{"several lines are one list", "10.0.0.1", []string{"6.6.6.6", "198.51.100.7, 10.2.2.2"}, "198.51.100.7"},
		{"all trusted: leftmost", "10.0.0.1", []string{"10.9.9.9, 10.1.1.1"}, "10.9.9.9"},
		{"malformed hop is an unknown client", "10.0.0.1", []string{"198.51.100.7, garbage"}, "invalid IP"},
		{"malformed hop left of the client is not read", "10.0.0.1", []string{"garbage, 198.51.100.7"}, "198.51.100.7"},
		{"empty element is an unknown client", "10.0.0.1", []string{"198.51.100.7,"}, "invalid IP"},
		{"five lines", "10.0.0.1", []string{"1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4", "198.51.100.7"}, "198.51.100.7"},
		{"trusted lines skipped", "10.0.0.1", []string{"1.1.1.1", "198.51.100.7", "10.1.1.1", "10.2.2.2, 10.3.3.3"}, "198.51.100.7"},
		{"IPv4 with port", "10.0.0.1", []string{"198.51.100.7:4711"}, "198.51.100.7"},
		{"IPv6 in brackets with port", "10.0.0.1", []string{"[2001:db8::5]:80"}, "2001:db8::5"},
		{"IPv6 in brackets", "10.0.0.1", []string{"[2001:db8::5]"}, "2001:db8::5"},
		{"IPv4-mapped IPv6 element", "10.0.0.1", []string{"::ffff:198.51.100.7"}, "198.51.100.7"},
		{"IPv6 with zone is malformed", "10.0.0.1", []string{"fe80::1%eth0"}, "invalid IP"},
		{"leading zero is malformed", "10.0.0.1", []string{"198.051.100.7"}, "invalid IP"},
		{"no XFF from a trusted peer", "10.0.0.1", nil, "10.0.0.1"},
		{"IPv6", "fd00::1", []string{"2001:db8::5"}, "2001:db8::5"},
		{"IPv4-mapped peer", "::ffff:203.0.113.9", nil, "203.0.113.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var raw []byte
			raw = append(raw, "Host: x\r\n"...)
			for i, v := range tt.xff {
				name := "X-Forwarded-For"
				if i%2 == 1 {
					name = "x-forwarded-FOR"
				}
				raw = append(raw, name+": "+v+"\r\nX-Other: 6.6.6.6\r\n"...)
			}
			raw = append(raw, "\r\n"...)
			if got := clientIP(peer(tt.peer), raw, trusted); got.String() != tt.want {
				t.Fatalf("clientIP = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestACL(t *testing.T) {
	a := &acl{
		allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")},
		deny:  []netip.Prefix{netip.MustParsePrefix("10.6.6.0/24"), netip.MustParsePrefix("2001:db8:bad::/48")},
	}
	for ip, want := range map[string]bool{
		"10.1.2.3": true, "10.6.6.6": false, "192.0.2.1": false,
		"2001:db8::1": true, "2001:db8:bad::1": false, "2001:db9::1": false,
	} {
		if got := a.admits(netip.MustParseAddr(ip)); got != want {
			t.Errorf("admits(%s) = %v, want %v", ip, got, want)
		}
	}
	denyOnly := &acl{deny: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}
	if !denyOnly.admits(netip.MustParseAddr("198.51.100.1")) || denyOnly.admits(netip.MustParseAddr("192.0.2.7")) {
		t.Error("a deny-only list must admit everything else")
	}
}

// dialFrom connects to addr from a chosen loopback source address.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func statusFrom(t *testing.T, src, addr, raw string) int {
	t.Helper()
	c := dialFrom(t, src, addr)
	defer c.Close()
	io.WriteString(c, raw)
	resp, _ := readUntilQuiet(c, 300*time.Millisecond)
	return statusOfRaw(resp)
}

// guardedProxy is a proxy with one route configured by rs.
func guardedProxy(t *testing.T, opts Options, rs RouteSpec) (*testProxy, *rawBackend) {
	be := newRawBackend(t, nil)
	px := newTestProxy(t, opts, PoolSpec{}, be.addr())
	rs.Name, rs.PathPrefix, rs.Pool = "r", "/", "p"
	snap, err := px.s.Build(Spec{Gen: 2, Pools: []PoolSpec{{Pool: px.s.Current().Pool("p")}}, Routes: []RouteSpec{rs}})
	if err != nil {
		t.Fatal(err)
	}
	px.s.Swap(snap)
	return px, be
}

func TestAllowCIDRsThroughProxy(t *testing.T) {
	px, be := guardedProxy(t, Options{}, RouteSpec{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}})
	const get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	if got := statusFrom(t, "127.0.0.1", px.addr, get); got != 403 {
		t.Fatalf("from 127.0.0.1: %d, want 403", got)
	}
	if len(be.requests()) != 0 {
		t.Fatal("a refused request reached the backend")
	}
	if got := statusFrom(t, "127.0.0.2", px.addr, get); got != 200 {
		t.Fatalf("from 127.0.0.2: %d, want 200", got)
	}
	// A spoofed X-Forwarded-For from an untrusted peer changes nothing.
	if got := statusFrom(t, "127.0.0.1", px.addr, "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 127.0.0.2\r\n\r\n"); got != 403 {
		t.Fatalf("spoofed XFF from an untrusted peer: %d, want 403", got)
	}
	if st := px.s.RouteStats(); st[1].Denied() != 2 {
		t.Fatalf("denied counter = %d, want 2", st[1].Denied())
	}
}

func TestTrustedProxyXFF(t *testing.T) {
	px, _ := guardedProxy(t, Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")}},
		RouteSpec{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	raw := "GET / HTTP/1.1\r\nHost: x\r\nx-forwarded-for: 192.0.2.55\r\n\r\n"
	if got := statusFrom(t, "127.0.0.3", px.addr, raw); got != 200 {
		t.Fatalf("XFF from a trusted proxy: %d, want 200", got)
	}
	if got := statusFrom(t, "127.0.0.4", px.addr, raw); got != 403 {
		t.Fatalf("the same XFF from an untrusted peer: %d, want 403", got)
	}
}

func TestIPv6Deny(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback here")
	}
	ln.Close()
	be := newRawBackend(t, nil)
	px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
	snap, err := px.s.Build(Spec{Gen: 2, Pools: []PoolSpec{{Pool: px.s.Current().Pool("p")}},
		Routes: []RouteSpec{{Name: "r", PathPrefix: "/", Pool: "p", DenyCIDRs: []netip.Prefix{netip.MustParsePrefix("::1/128")}}}})
	if err != nil {
		t.Fatal(err)
	}
	px.s.Swap(snap)
	ln6, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	go px.s.Serve(ln6) //nolint:errcheck // stopped by the proxy's Shutdown
	if got := statusFrom(t, "::1", ln6.Addr().String(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); got != 403 {
		t.Fatalf("from ::1 with ::1/128 denied: %d, want 403", got)
	}
	if got := statusFrom(t, "127.0.0.1", px.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); got != 200 {
		t.Fatalf("from 127.0.0.1: %d, want 200", got)
	}
}

func TestRateLimitPerClient(t *testing.T) {
	px, _ := guardedProxy(t, Options{}, RouteSpec{RateLimit: &RateLimitSpec{Rate: 1, Burst: 3}})
	const get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	for i := 0; i < 3; i++ {
		if got := statusFrom(t, "127.0.0.5", px.addr, get); got != 200 {
			t.Fatalf("request %d within the burst: %d", i, got)
		}
	}
	c := dialFrom(t, "127.0.0.5", px.addr)
	io.WriteString(c, get)
	resp, _ := readUntilQuiet(c, 300*time.Millisecond)
	c.Close()
	if statusOfRaw(resp) != 429 || !strings.Contains(resp, "Retry-After: 1\r\n") {
		t.Fatalf("over the rate: want 429 with Retry-After, got %q", resp)
	}
	if got := statusFrom(t, "127.0.0.6", px.addr, get); got != 200 {
		t.Fatalf("another client is unaffected: %d", got)
	}
	if st := px.s.RouteStats(); st[1].RateLimited() != 1 {
		t.Fatalf("ratelimited counter = %d, want 1", st[1].RateLimited())
	}
}

func TestRateLimitByHeaderIgnoresCase(t *testing.T) {
	px, _ := guardedProxy(t, Options{}, RouteSpec{RateLimit: &RateLimitSpec{Header: "X-Api-Key", Rate: 1, Burst: 1}})
	if got := statusFrom(t, "127.0.0.1", px.addr, "GET / HTTP/1.1\r\nHost: x\r\nx-api-key: k1\r\n\r\n"); got != 200 {
		t.Fatal(got)
	}
	if got := statusFrom(t, "127.0.0.2", px.addr, "GET / HTTP/1.1\r\nHost: x\r\nX-API-KEY: k1\r\n\r\n"); got != 429 {
		t.Fatalf("same key, other case and address: %d, want 429", got)
	}
	if got := statusFrom(t, "127.0.0.1", px.addr, "GET / HTTP/1.1\r\nHost: x\r\nX-Api-Key: k2\r\n\r\n"); got != 200 {
		t.Fatalf("another key: %d, want 200", got)
	}
}

// TestLimiterMemoryIsBounded feeds a million distinct client addresses through one
// limiter and checks that the table stays within max_keys and its memory within the
// documented bound (docs/configuration.md: about 200 bytes per key).
func TestLimiterMemoryIsBounded(t *testing.T) {
	const maxKeys = 100000
	l := newLimiter(RateLimitSpec{Rate: 10, Burst: 20, MaxKeys: maxKeys})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	now := time.Now()
	for i := 0; i < 1000000; i++ {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.allowIP(ip, now)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	keys := l.keys()
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("1,000,000 distinct keys: %d kept, %d evicted, heap %d bytes (%d per kept key)", keys, l.evicted.Load(), heap, heap/int64(max(keys, 1)))
	if keys > maxKeys {
		t.Fatalf("%d keys kept, want at most %d", keys, maxKeys)
	}
	if limit := int64(maxKeys) * 400; heap > limit {
		t.Fatalf("heap grew by %d bytes for %d keys, over the %d-byte bound", heap, keys, limit)
	}
}

// BenchmarkLimiterEvict measures a full limiter taking new client addresses:
// each one evicts the least recently seen of a sample.
func BenchmarkLimiterEvict(b *testing.B) {
	l := newLimiter(RateLimitSpec{Rate: 10, Burst: 20, MaxKeys: 1024})
	now := time.Now()
	i := 0
	for b.Loop() {
		i++
		l.allowIP(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), now)
	}
}
