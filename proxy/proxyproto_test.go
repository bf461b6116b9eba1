package proxy

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The PROXY protocol tests run the proxy with trusted_proxies 127.0.0.1/32 and
// connect from 127.0.0.1 (the load balancer) or from 127.0.0.2 (anyone else):
// Linux routes all of 127/8 to lo.

const getX = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"

// syncBuffer is a bytes.Buffer for a logger written from other goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func proxyOpts(o Options) Options {
	o.ProxyProtocol = true
	o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	return o
}

// v2Header builds a PROXY v2 header by hand: command 0x20 (LOCAL) or 0x21
// (PROXY), family 0x11 (TCP over IPv4) or 0x21 (TCP over IPv6), then the TLVs.
func v2Header(cmd byte, src, dst netip.AddrPort, tlvs []byte) []byte {
	fam, addrs := byte(0x11), []byte(nil)
	if src.Addr().Is6() {
		fam = 0x21
		s, d := src.Addr().As16(), dst.Addr().As16()
		addrs = append(append(addrs, s[:]...), d[:]...)
	} else {
		s, d := src.Addr().As4(), dst.Addr().As4()
		addrs = append(append(addrs, s[:]...), d[:]...)
	}
	addrs = binary.BigEndian.AppendUint16(addrs, src.Port())
	addrs = binary.BigEndian.AppendUint16(addrs, dst.Port())
	addrs = append(addrs, tlvs...)
	h := []byte("\r\n\r\n\x00\r\nQUIT\n")
	h = append(h, cmd, fam)
	h = binary.BigEndian.AppendUint16(h, uint16(len(addrs)))
	return append(h, addrs...)
}

// sendFrom writes raw from src to addr and returns what comes back until the
// proxy closes or stays quiet.
func sendFrom(t *testing.T, src, addr, raw string) (string, bool) {
	t.Helper()
	c := dialFrom(t, src, addr)
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	return readUntilQuiet(c, 500*time.Millisecond)
}

func TestProxyProtocolFromTrustedPeer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	al, err := NewAccessLog(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	be := newRawBackend(t, nil)
	px := newTestProxy(t, proxyOpts(Options{AccessLog: al}), PoolSpec{}, be.addr())

	dst := netip.MustParseAddrPort("127.0.0.1:80")
	tlv := []byte{0x02, 0x00, 0x03, 'a', 'b', 'c', 0xEA, 0x00, 0x01, 0xFF} // AUTHORITY and a private TLV: ignored
	cases := []struct {
		name, header, client string
	}{
		{"v1 tcp4", "PROXY TCP4 192.0.2.9 127.0.0.1 5555 80\r\n", "192.0.2.9"},
		{"v1 tcp6", "PROXY TCP6 2001:db8::7 ::1 5555 80\r\n", "2001:db8::7"},
		{"v1 unknown keeps the peer", "PROXY UNKNOWN\r\n", "127.0.0.1"},
		{"v2 tcp4 with TLVs", string(v2Header(0x21, netip.MustParseAddrPort("198.51.100.4:4000"), dst, tlv)), "198.51.100.4"},
		{"v2 tcp6", string(v2Header(0x21, netip.MustParseAddrPort("[2001:db8::8]:4000"), netip.MustParseAddrPort("[::1]:80"), nil)), "2001:db8::8"},
		{"v2 local keeps the peer", string(v2Header(0x20, netip.MustParseAddrPort("198.51.100.5:4000"), dst, nil)), "127.0.0.1"},
	}
	for i, tc := range cases {
		// The header and the request in one write: what the proxy reads past
		// the header must not be lost.
		resp, _ := sendFrom(t, "127.0.0.1", px.addr, tc.header+getX)
		if statusOfRaw(resp) != 200 {
			t.Fatalf("%s: %q, want 200", tc.name, resp)
		}
		reqs := be.requests()
		if len(reqs) != i+1 {
			t.Fatalf("%s: backend saw %d requests, want %d", tc.name, len(reqs), i+1)
		}
		if want := "\r\nX-Forwarded-For: " + tc.client + "\r\n"; !strings.Contains(reqs[i], want) {
			t.Errorf("%s: backend request lacks %q:\n%s", tc.name, want, reqs[i])
		}
		waitUntil(t, "access log line", func() bool { return len(readLines(t, path)) == i+1 })
		l := readLines(t, path)[i]
		if l["client"] != tc.client || l["peer"] != tc.client || l["method"] != "GET" || l["status"] != 200.0 {
			t.Errorf("%s: access log line %v, want client and peer %s", tc.name, l, tc.client)
		}
	}

	// Header and request in separate writes, the request on a kept-alive
	// connection twice.
	c := dialFrom(t, "127.0.0.1", px.addr)
	defer c.Close()
	io.WriteString(c, "PROXY TCP4 192.0.2.10 127.0.0.1 5555 80\r\n")
	for range 2 {
		io.WriteString(c, getX)
		if resp, _ := readUntilQuiet(c, 300*time.Millisecond); statusOfRaw(resp) != 200 {
			t.Fatalf("separate writes: %q", resp)
		}
	}
	if r := be.requests(); !strings.Contains(r[len(r)-1], "X-Forwarded-For: 192.0.2.10\r\n") {
		t.Errorf("separate writes: %s", r[len(r)-1])
	}
	if st := px.s.ProxyProtocolStats(); st.Refused != [proxyRefusedReasons]uint64{} {
		t.Errorf("refused = %v, want none", st.Refused)
	}
}

func TestProxyProtocolGuardsSeeTheClient(t *testing.T) {
	px, be := guardedProxy(t, proxyOpts(Options{MaxConnsPerIP: 1}), RouteSpec{
		AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
		RateLimit:  &RateLimitSpec{Rate: 0.001, Burst: 1},
	})
	v1 := func(ip string) string { return "PROXY TCP4 " + ip + " 127.0.0.1 5555 80\r\n" }
	// allow_cidrs acts on the PROXY source, not on the balancer (127.0.0.1).
	if resp, _ := sendFrom(t, "127.0.0.1", px.addr, v1("203.0.113.1")+getX); statusOfRaw(resp) != 403 {
		t.Fatalf("client outside allow_cidrs: %q, want 403", resp)
	}
	if resp, _ := sendFrom(t, "127.0.0.1", px.addr, v1("192.0.2.1")+getX); statusOfRaw(resp) != 200 {
		t.Fatalf("client in allow_cidrs: %q, want 200", resp)
	}
	// The rate limit's bucket is the client's: 192.0.2.1 spent its burst,
	// 192.0.2.2, through the same balancer, has its own.
	if resp, _ := sendFrom(t, "127.0.0.1", px.addr, v1("192.0.2.1")+getX); statusOfRaw(resp) != 429 {
		t.Fatalf("second request of 192.0.2.1: %q, want 429", resp)
	}
	if resp, _ := sendFrom(t, "127.0.0.1", px.addr, v1("192.0.2.2")+getX); statusOfRaw(resp) != 200 {
		t.Fatalf("first request of 192.0.2.2: %q, want 200", resp)
	}
	if n := len(be.requests()); n != 2 {
		t.Fatalf("backend saw %d requests, want 2", n)
	}

	// limits.max_conns_per_ip (1) counts clients: two open connections from
	// the one balancer for two clients pass, a second for the same client not.
	a := dialFrom(t, "127.0.0.1", px.addr)
	defer a.Close()
	io.WriteString(a, v1("192.0.2.3"))
	waitUntil(t, "first connection counted", func() bool { return px.s.ConnStats().Open == 1 })
	b := dialFrom(t, "127.0.0.1", px.addr)
	defer b.Close()
	io.WriteString(b, v1("192.0.2.4"))
	waitUntil(t, "second connection counted", func() bool { return px.s.ConnStats().Open == 2 })
	if resp, _ := sendFrom(t, "127.0.0.1", px.addr, v1("192.0.2.3")); statusOfRaw(resp) != 503 {
		t.Fatalf("second connection of 192.0.2.3: %q, want 503", resp)
	}
}

func TestProxyProtocolFromUntrustedPeer(t *testing.T) {
	logs := new(syncBuffer)
	be := newRawBackend(t, nil)
	px := newTestProxy(t, proxyOpts(Options{Logger: slog.New(slog.NewTextHandler(logs, nil))}), PoolSpec{}, be.addr())

	for _, h := range []string{
		"PROXY TCP4 192.0.2.9 127.0.0.1 5555 80\r\n",
		string(v2Header(0x21, netip.MustParseAddrPort("192.0.2.9:1"), netip.MustParseAddrPort("127.0.0.1:80"), nil)),
	} {
		resp, closed := sendFrom(t, "127.0.0.2", px.addr, h+getX)
		if resp != "" || !closed {
			t.Fatalf("PROXY header from an untrusted peer: %q (closed %v), want closed without an answer", resp, closed)
		}
	}
	if n := len(be.requests()); n != 0 {
		t.Fatalf("backend saw %d requests", n)
	}
	if st := px.s.ProxyProtocolStats(); st.Refused[proxyRefusedUntrusted] != 2 {
		t.Fatalf("refused = %v, want 2 untrusted", st.Refused)
	}
	if n := refusedMetric(t, px.s, "untrusted"); n != 2 {
		t.Errorf("floodgate_proxy_protocol_refused_total{reason=\"untrusted\"} = %v, want 2", n)
	}
	if l := logs.String(); !strings.Contains(l, "peer=127.0.0.2:") || !strings.Contains(l, "reason=untrusted") || strings.Count(l, "PROXY protocol") != 1 {
		t.Errorf("log, want one line naming the peer:\n%s", l)
	}

	// Plain HTTP from an untrusted peer is served, the peer being the client;
	// so are requests whose method starts like the signature.
	for _, req := range []string{getX, "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "PRI / HTTP/1.1\r\nHost: x\r\n\r\n"} {
		resp, _ := sendFrom(t, "127.0.0.2", px.addr, req)
		if req == getX && statusOfRaw(resp) != 200 {
			t.Fatalf("plain GET from an untrusted peer: %q", resp)
		}
		if statusOfRaw(resp) == 0 {
			t.Fatalf("%q from an untrusted peer: no answer", req)
		}
	}
	if r := be.requests(); !strings.Contains(r[0], "X-Forwarded-For: 127.0.0.2\r\n") {
		t.Errorf("backend request: %s", r[0])
	}
	// A request split inside what could be the signature ("P", then "UT").
	c := dialFrom(t, "127.0.0.2", px.addr)
	defer c.Close()
	io.WriteString(c, "P")
	waitUntil(t, "the first byte awaited", func() bool { return px.s.ProxyProtocolStats().Waiting == 1 })
	io.WriteString(c, "UT / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
	if resp, _ := readUntilQuiet(c, 500*time.Millisecond); statusOfRaw(resp) != 200 {
		t.Fatalf("split PUT: %q", resp)
	}
}

func TestProxyProtocolRequiredFromTrustedPeer(t *testing.T) {
	be := newRawBackend(t, nil)
	px := newTestProxy(t, proxyOpts(Options{}), PoolSpec{}, be.addr())
	resp, closed := sendFrom(t, "127.0.0.1", px.addr, getX)
	if resp != "" || !closed {
		t.Fatalf("plain HTTP from a trusted peer: %q (closed %v), want closed without an answer", resp, closed)
	}
	if st := px.s.ProxyProtocolStats(); st.Refused[proxyRefusedInvalid] != 1 {
		t.Fatalf("refused = %v, want 1 invalid", st.Refused)
	}
}

func TestProxyProtocolMalformedHeaders(t *testing.T) {
	be := newRawBackend(t, nil)
	px := newTestProxy(t, proxyOpts(Options{ReadHeaderTimeout: 2 * time.Second}), PoolSpec{}, be.addr())
	dst := netip.MustParseAddrPort("127.0.0.1:80")
	src := netip.MustParseAddrPort("192.0.2.9:1")
	good := v2Header(0x21, src, dst, nil)
	badVersion := bytes.Clone(good)
	badVersion[12] = 0x31
	badFamily := bytes.Clone(good)
	badFamily[13] = 0x71
	huge := v2Header(0x21, src, dst, append([]byte{0xEA, 0x13, 0x88}, make([]byte, 5000)...)) // a 5000-byte TLV: over the limit
	short := bytes.Clone(good)
	binary.BigEndian.PutUint16(short[14:], 4) // shorter than two IPv4 addresses and ports

	for _, tc := range []struct{ name, raw string }{
		{"v1 missing port", "PROXY TCP4 192.0.2.9 127.0.0.1 5555\r\n" + getX},
		{"v1 bad address", "PROXY TCP4 999.0.2.9 127.0.0.1 5555 80\r\n" + getX},
		{"v1 family mismatch", "PROXY TCP4 2001:db8::1 127.0.0.1 5555 80\r\n" + getX},
		{"v1 without CRLF", "PROXY TCP4 192.0.2.9 127.0.0.1 5555 80\n" + getX},
		{"v1 too long", "PROXY TCP4 " + strings.Repeat("1", 200) + "\r\n" + getX},
		{"v1 truncated", "PROXY TCP4 192.0.2.9"},
		{"v2 bad version", string(badVersion) + getX},
		{"v2 bad family", string(badFamily) + getX},
		{"v2 length too short", string(short) + getX},
		{"v2 over the limit", string(huge) + getX},
		{"v2 truncated", string(good[:20])},
		{"garbage", "\x16\x03\x01\x02\x00" + getX},
	} {
		before := px.s.ProxyProtocolStats().Refused[proxyRefusedInvalid]
		resp, closed := sendFromHalfClosed(t, "127.0.0.1", px.addr, tc.raw)
		if resp != "" || !closed {
			t.Errorf("%s: %q (closed %v), want closed without an answer", tc.name, resp, closed)
		}
		if after := px.s.ProxyProtocolStats().Refused[proxyRefusedInvalid]; after != before+1 {
			t.Errorf("%s: invalid count %d -> %d", tc.name, before, after)
		}
	}
	if n := len(be.requests()); n != 0 {
		t.Fatalf("backend saw %d requests", n)
	}
	waitUntil(t, "no header awaited", func() bool { return px.s.ProxyProtocolStats().Waiting == 0 })
}

// refusedMetric returns floodgate_proxy_protocol_refused_total{reason} as the
// Server's Collector exports it.
func refusedMetric(t *testing.T, s *Server, reason string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "floodgate_proxy_protocol_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if l := m.GetLabel(); len(l) == 1 && l[0].GetValue() == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no floodgate_proxy_protocol_refused_total{reason=%q}", reason)
	return 0
}

// sendFromHalfClosed writes raw and half-closes, so that a truncated header
// ends at EOF, and returns what comes back until the proxy closes.
func sendFromHalfClosed(t *testing.T, src, addr, raw string) (string, bool) {
	t.Helper()
	c := dialFrom(t, src, addr)
	defer c.Close()
	io.WriteString(c, raw)
	c.(*net.TCPConn).CloseWrite()
	return readUntilQuiet(c, 3*time.Second)
}

func TestProxyProtocolSlowHeader(t *testing.T) {
	be := newRawBackend(t, nil)
	const timeout = 300 * time.Millisecond
	px := newTestProxy(t, proxyOpts(Options{ReadHeaderTimeout: timeout}), PoolSpec{}, be.addr())
	start := time.Now()
	var conns []net.Conn
	for _, tc := range []struct{ src, raw string }{
		{"127.0.0.1", ""},                  // a trusted peer that sends nothing
		{"127.0.0.1", "PROXY TCP4 192."},   // a v1 header that stalls
		{"127.0.0.1", "\r\n\r\n\x00\r\nQ"}, // a v2 signature that stalls
		{"127.0.0.2", ""},                  // an untrusted peer that sends nothing
		{"127.0.0.2", "PRO"},               // an untrusted peer that stalls inside the signature
	} {
		c := dialFrom(t, tc.src, px.addr)
		defer c.Close()
		io.WriteString(c, tc.raw)
		conns = append(conns, c)
	}
	for i, c := range conns {
		resp, closed := readUntilQuiet(c, 5*time.Second)
		if resp != "" || !closed {
			t.Errorf("connection %d: %q (closed %v), want closed without an answer", i, resp, closed)
		}
	}
	if d := time.Since(start); d > timeout+2*time.Second {
		t.Errorf("closed after %v, want about %v", d, timeout)
	}
	waitUntil(t, "no header awaited", func() bool { return px.s.ProxyProtocolStats().Waiting == 0 })
	if st := px.s.ProxyProtocolStats(); st.Refused[proxyRefusedTimeout] != 4 || st.Refused[proxyRefusedInvalid] != 1 {
		t.Errorf("refused = %v, want 4 timeouts and 1 invalid", st.Refused)
	}
	// The proxy still serves.
	if resp, _ := sendFrom(t, "127.0.0.1", px.addr, "PROXY TCP4 192.0.2.9 127.0.0.1 5555 80\r\n"+getX); statusOfRaw(resp) != 200 {
		t.Fatalf("after the slow ones: %q", resp)
	}
}

func TestProxyProtocolBeforeTLS(t *testing.T) {
	dir := t.TempDir()
	cs, err := NewCertStore([]CertFiles{writeCert(t, dir, "shop", 1, "shop.example")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	be := newRawBackend(t, nil)
	px := newTestProxy(t, proxyOpts(Options{}), PoolSpec{}, be.addr())
	addr := tlsProxy(t, px, cs)

	for i, h := range []string{
		"PROXY TCP4 192.0.2.9 127.0.0.1 5555 443\r\n",
		string(v2Header(0x21, netip.MustParseAddrPort("[2001:db8::9]:1"), netip.MustParseAddrPort("[::1]:443"), nil)),
	} {
		raw := dialFrom(t, "127.0.0.1", addr)
		io.WriteString(raw, h)
		c := tls.Client(raw, &tls.Config{ServerName: "shop.example", InsecureSkipVerify: true}) //nolint:gosec // self-signed test certificate
		io.WriteString(c, getX)
		resp, _ := readUntilQuiet(c, 500*time.Millisecond)
		c.Close()
		if statusOfRaw(resp) != 200 {
			t.Fatalf("TLS behind PROXY: %q", resp)
		}
		want := []string{"192.0.2.9", "2001:db8::9"}[i]
		if r := be.requests(); !strings.Contains(r[i], "X-Forwarded-For: "+want+"\r\n") || !strings.Contains(r[i], "X-Forwarded-Proto: https\r\n") {
			t.Errorf("backend request: %s", r[i])
		}
	}
	// TLS from an untrusted peer without a header is served; with one, refused.
	c, err := tls.DialWithDialer(&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}, "tcp", addr,
		&tls.Config{ServerName: "shop.example", InsecureSkipVerify: true}) //nolint:gosec // self-signed test certificate
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, getX)
	if resp, _ := readUntilQuiet(c, 500*time.Millisecond); statusOfRaw(resp) != 200 {
		t.Fatalf("plain TLS from an untrusted peer: %q", resp)
	}
	c.Close()
	if resp, closed := sendFrom(t, "127.0.0.2", addr, "PROXY TCP4 192.0.2.9 127.0.0.1 5555 443\r\n"); resp != "" || !closed {
		t.Fatalf("PROXY before TLS from an untrusted peer: %q (closed %v)", resp, closed)
	}
}
