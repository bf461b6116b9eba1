package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// FuzzProxyHeader feeds arbitrary bytes from a trusted peer through the real
// listener (proxyListener, then floodgate's conn) into a proxy with a backend.
// The parsing is go-proxyproto's; what is ours, and checked here, is what
// follows from it: every connection ends within the header timeout whatever it
// sends, no header wait outlives its connection, and nothing is answered, let
// alone forwarded, unless the bytes open with a header the library accepts.
// Seeds: testdata/fuzz/FuzzProxyHeader.
func FuzzProxyHeader(f *testing.F) {
	be := newRawBackend(f, nil)
	px := newTestProxy(f, proxyOpts(Options{ReadHeaderTimeout: time.Second}), PoolSpec{}, be.addr())
	f.Add([]byte("PROXY TCP4 192.0.2.9 127.0.0.1 5555 80\r\n" + getX))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
		c, err := d.Dial("tcp", px.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = c.Write(data) // the proxy may close before taking it all
		_ = c.(*net.TCPConn).CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := io.ReadAll(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("connection still open after 5 s (header timeout 1 s); got %q", resp)
		}
		if len(resp) > 0 {
			if _, perr := proxyproto.Read(bufio.NewReader(bytes.NewReader(data))); perr != nil {
				t.Fatalf("answered %q to input the library refuses (%v)", resp, perr)
			}
		}
		waitUntil(t, "no header awaited", func() bool { return px.s.ProxyProtocolStats().Waiting == 0 })
	})
}
