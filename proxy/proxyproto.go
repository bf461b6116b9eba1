package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// PROXY protocol (HAProxy's, v1 text and v2 binary) on the public listeners, as
// HAProxy's accept-proxy, nginx's listen ... proxy_protocol with set_real_ip_from,
// Traefik's entryPoints.proxyProtocol.trustedIPs and Envoy's proxy_protocol
// listener filter do it. The parsing is github.com/pires/go-proxyproto's (Traefik's
// and Caddy's choice); this file decides whom to believe and when to give up.
//
//   - A peer in Options.TrustedProxies must open with a PROXY header: anything
//     else is refused, since the load balancer in front always sends one and a
//     connection that lacks it did not come through it. The header's source
//     address becomes the connection's RemoteAddr, so the per-address connection
//     limit, allow_cidrs/deny_cidrs, rate limits keyed on the client, the
//     X-Forwarded-For sent to the backend and the access log all see the client.
//     A v2 LOCAL command (the balancer's own health check), a v1 UNKNOWN line and
//     a v2 header of a family other than TCP over IPv4/IPv6 keep the peer's
//     address. v2 TLVs are not used (the library keeps them unparsed).
//   - Any other peer may not send a PROXY header (it could claim any address):
//     one that does is refused. Plain HTTP or TLS from it is served as without
//     PROXY protocol, with the peer as the client: what nginx does with a
//     proxy_protocol listener and set_real_ip_from, and Traefik with trustedIPs,
//     and the way to keep serving direct clients (or a health checker) on the
//     same port while a load balancer is put in front. Refusing them too, as
//     HAProxy's accept-proxy does, gains nothing: their address is their own.
//
// A refused connection is closed without an answer (there is no protocol to
// answer in yet), counted in floodgate_proxy_protocol_refused_total by reason and
// logged, at most once a second, with the peer's address.
//
// The header is read before Accept returns the connection, by one goroutine per
// connection, so that the connection limits are applied to the client's address
// and a slow header holds up no other connection. The read has until
// Options.ReadHeaderTimeout; a header larger than go-proxyproto's limit (4096
// bytes of v2 addresses and TLVs; a v1 line is at most 107 bytes) is refused.
// At most maxPendingProxy headers are awaited at once (a connection beyond that
// is refused at once), so a flood of silent connections costs bounded memory.

// Reasons a connection is refused, the label of
// floodgate_proxy_protocol_refused_total.
const (
	proxyRefusedUntrusted = iota // a PROXY header from a peer not in trusted_proxies
	proxyRefusedInvalid          // a trusted peer sent no header, a malformed or an oversized one
	proxyRefusedTimeout          // the header did not arrive within timeouts.client_header
	proxyRefusedOverload         // maxPendingProxy headers were already awaited
	proxyRefusedReasons
)

// ProxyRefusedReasons are the label values of the refusal counts, in the order
// of ProxyProtocolStats.Refused.
var ProxyRefusedReasons = [proxyRefusedReasons]string{"untrusted", "invalid", "timeout", "overload"}

// maxPendingProxy bounds the connections whose PROXY header (or, from an
// untrusted peer, first bytes) is awaited at once.
const maxPendingProxy = 4096

// proxyStats counts refused connections; shared by a Server's listeners.
type proxyStats struct {
	refused [proxyRefusedReasons]atomic.Uint64
	lastLog atomic.Int64 // clock tick of the last refusal logged
	waiting atomic.Int64 // connections whose header is being awaited
}

// ProxyProtocolStats are the PROXY protocol counts.
type ProxyProtocolStats struct {
	Refused [proxyRefusedReasons]uint64 // by reason, as ProxyRefusedReasons names them
	Waiting int64                       // connections whose header is being awaited now
}

// ProxyProtocolStats returns the PROXY protocol counts. Safe for concurrent use.
func (s *Server) ProxyProtocolStats() ProxyProtocolStats {
	var st ProxyProtocolStats
	for i := range st.Refused {
		st.Refused[i] = s.proxy.refused[i].Load()
	}
	st.Waiting = s.proxy.waiting.Load()
	return st
}

// proxyListener reads the PROXY header of each accepted connection and hands
// on, through Accept, those that pass, with the client's address.
type proxyListener struct {
	net.Listener
	s       *Server
	trusted []netip.Prefix
	timeout time.Duration

	start   sync.Once
	ready   chan net.Conn
	errs    chan error
	pending chan struct{} // a token per header awaited
	done    chan struct{}
	close   sync.Once
}

func newProxyListener(ln net.Listener, s *Server) *proxyListener {
	return &proxyListener{Listener: ln, s: s, trusted: s.opts.TrustedProxies, timeout: s.opts.ReadHeaderTimeout,
		ready: make(chan net.Conn), errs: make(chan error), pending: make(chan struct{}, maxPendingProxy), done: make(chan struct{})}
}

func (l *proxyListener) Accept() (net.Conn, error) {
	l.start.Do(func() { go l.acceptLoop() })
	select {
	case c := <-l.ready:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close closes the listener and ends the goroutines that wait on it: a
// connection whose header arrives afterwards is closed.
func (l *proxyListener) Close() error {
	l.close.Do(func() { close(l.done) })
	return l.Listener.Close()
}

func (l *proxyListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case l.errs <- err:
			case <-l.done:
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // temporary (EMFILE...): fasthttp's Serve backs off and calls Accept again
		}
		select {
		case l.pending <- struct{}{}:
			go l.handshake(c)
		default:
			l.refuse(c, proxyRefusedOverload, nil)
		}
	}
}

// handshake reads what c opens with and hands c on, or refuses it.
func (l *proxyListener) handshake(c net.Conn) {
	l.s.proxy.waiting.Add(1)
	defer func() { l.s.proxy.waiting.Add(-1); <-l.pending }()
	if l.timeout > 0 {
		_ = c.SetReadDeadline(time.Now().Add(l.timeout))
	}
	pc, reason, err := l.read(c)
	if pc == nil {
		l.refuse(c, reason, err)
		return
	}
	_ = c.SetReadDeadline(time.Time{}) // conn sets its own on the first read
	select {
	case l.ready <- pc:
	case <-l.done:
		_ = c.Close()
	}
}

// read returns the connection to hand on, or nil with the reason to refuse c.
func (l *proxyListener) read(c net.Conn) (net.Conn, int, error) {
	peer := peerIP(c.RemoteAddr())
	if !peer.IsValid() || !inPrefixes(peer, l.trusted) {
		sent, err := opensWithProxySignature(c)
		switch {
		case sent:
			return nil, proxyRefusedUntrusted, nil
		case err != nil && !errors.Is(err, os.ErrDeadlineExceeded):
			// The peer's own problem (a reset): floodgate's conn finds it too.
			return c, 0, nil
		case err != nil:
			return nil, proxyRefusedTimeout, err
		}
		return c, 0, nil
	}
	// bufio reads past the header what the client sent with it; proxiedConn
	// hands those bytes on first.
	br := bufio.NewReaderSize(c, 256)
	h, err := proxyproto.Read(br)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, proxyRefusedTimeout, err
		}
		return nil, proxyRefusedInvalid, err
	}
	pc := &proxiedConn{Conn: c, remote: c.RemoteAddr()}
	if src, _, ok := h.TCPAddrs(); ok && !h.Command.IsLocal() {
		pc.remote = src
	}
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		pc.pre = bytes.Clone(b)
	}
	return pc, 0, nil
}

// refuse closes c, counts it and logs it, at most once a second.
func (l *proxyListener) refuse(c net.Conn, reason int, err error) {
	st := &l.s.proxy
	st.refused[reason].Add(1)
	defer c.Close() // after the log line, which a test looks for once the peer sees the close
	now := l.s.clock.ticks.Load()
	if last := st.lastLog.Load(); now-last >= int64(time.Second/clockTick) && st.lastLog.CompareAndSwap(last, now) {
		args := []any{"peer", c.RemoteAddr().String(), "reason", ProxyRefusedReasons[reason]}
		if err != nil {
			args = append(args, "err", err.Error())
		}
		l.s.log.Warn("PROXY protocol: connection refused (logged at most once a second)", args...)
	}
}

// opensWithProxySignature reports whether c's first bytes are a PROXY header's
// signature ("PROXY" or v2's 12 bytes), without consuming them: it peeks at the
// socket (MSG_PEEK), so that the connection is handed on untouched and keeps
// its fast paths (hold.go). It waits until the first bytes tell, until EOF, or
// until the read deadline.
func opensWithProxySignature(c net.Conn) (bool, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false, nil // not a socket (tests' pipes): nothing to peek at
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false, nil
	}
	var (
		buf  [12]byte
		sent bool
		perr error
	)
	err = raw.Read(func(fd uintptr) bool {
		n, _, e := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case e == syscall.EAGAIN || e == syscall.EINTR:
			return false // wait for (more) bytes
		case e != nil:
			perr = e
			return true
		case n == 0:
			return true // EOF: not a header
		}
		more, match := signatureMatch(buf[:n])
		if more {
			return false // a prefix of a signature: the next bytes tell
		}
		sent = match
		return true
	})
	if err == nil {
		err = perr
	}
	return sent, err
}

// signatureMatch compares the first bytes of a stream with the PROXY
// signatures: match when one is complete, more when b is a proper prefix of one.
func signatureMatch(b []byte) (more, match bool) {
	for _, sig := range [...][]byte{proxyproto.SIGV1, proxyproto.SIGV2} {
		n := min(len(b), len(sig))
		if bytes.Equal(b[:n], sig[:n]) {
			if n == len(sig) {
				return false, true
			}
			more = true
		}
	}
	return more, false
}

// proxiedConn is a connection that came with a PROXY header: RemoteAddr is the
// client's, and pre are the bytes read past the header, which Read returns
// first.
type proxiedConn struct {
	net.Conn
	remote net.Addr
	pre    []byte
}

func (c *proxiedConn) RemoteAddr() net.Addr { return c.remote }

func (c *proxiedConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		if c.pre = c.pre[n:]; len(c.pre) == 0 {
			c.pre = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the socket (tunnels, conn.CloseWrite).
func (c *proxiedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// rawSocket returns the socket under c for holder's fast path (hold.go), which
// reads and writes the socket itself: c when it is one, the socket under a
// proxiedConn with nothing left of what was read past its header, else c (and
// holder then takes the ordinary path).
func rawSocket(c net.Conn) net.Conn {
	if pc, ok := c.(*proxiedConn); ok && len(pc.pre) == 0 {
		return pc.Conn
	}
	return c
}
