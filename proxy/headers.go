package proxy

import (
	"net"
	"net/netip"

	"github.com/valyala/fasthttp"
)

// Hop-by-hop headers (RFC 9110 §7.6.1) are meaningful for one connection only and
// are removed in both directions, as are the headers that Connection names.
// Transfer-Encoding and Content-Length are re-framed by fasthttp for the next hop.
// TE is dropped whole: fasthttp's client does not forward trailers, so there is no
// "TE: trailers" to keep.
var hopHeaders = [...]string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization",
	"Proxy-Authenticate", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
}

// isHopHeader reports whether name is one of hopHeaders, ignoring case.
func isHopHeader(name []byte) bool {
	if len(name) < 2 {
		return false
	}
	switch name[0] | 0x20 {
	case 'c':
		return equalFold(name, "connection")
	case 'k':
		return equalFold(name, "keep-alive")
	case 'p':
		return equalFold(name, "proxy-connection") || equalFold(name, "proxy-authorization") ||
			equalFold(name, "proxy-authenticate")
	case 't':
		return equalFold(name, "te") || equalFold(name, "trailer") || equalFold(name, "transfer-encoding")
	case 'u':
		return equalFold(name, "upgrade")
	}
	return false
}

// headerScan is what one pass over a header list finds. It is a value on the
// caller's stack so that the scan allocates nothing.
type headerScan struct {
	hop        bool // some hop-by-hop header is present
	connection bool // Connection has tokens other than keep-alive/close
	xff        int  // number of X-Forwarded-For lines
}

func (s *headerScan) visit(k, v []byte) {
	if isHopHeader(k) {
		s.hop = true
		if equalFold(k, "connection") {
			s.connection = true
		}
		return
	}
	if len(k) == len("x-forwarded-for") && equalFold(k, "x-forwarded-for") {
		s.xff++
	}
}

// stripRequestHop removes hop-by-hop headers from a request about to be forwarded.
// fasthttp keeps "Connection: close" as a flag rather than a header, so it is
// cleared too: the client's wish to close its connection does not apply to our
// pooled backend connection (the server has already recorded it for the client side).
func stripRequestHop(h *fasthttp.RequestHeader, s *headerScan) {
	h.ResetConnectionClose()
	if !s.hop {
		return
	}
	if s.connection {
		for _, v := range h.PeekAll("Connection") {
			delConnectionTokens(v, h.DelBytes)
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
}

// stripResponseHop is stripRequestHop for responses. keepUpgrade is set for a 101
// Switching Protocols answer, which must keep Connection and Upgrade.
func stripResponseHop(h *fasthttp.ResponseHeader, keepUpgrade bool) {
	h.ResetConnectionClose()
	var s headerScan
	h.VisitAll(s.visit)
	if !s.hop {
		return
	}
	if s.connection && !keepUpgrade {
		for _, v := range h.PeekAll("Connection") {
			delConnectionTokens(v, h.DelBytes)
		}
	}
	for _, name := range hopHeaders {
		if keepUpgrade && (name == "Connection" || name == "Upgrade") {
			continue
		}
		h.Del(name)
	}
}

// delConnectionTokens calls del for each field name listed in a Connection value.
func delConnectionTokens(v []byte, del func([]byte)) {
	for len(v) > 0 {
		i := 0
		for i < len(v) && v[i] != ',' {
			i++
		}
		if tok := trimOWS(v[:i]); len(tok) > 0 && !equalFold(tok, "close") && !equalFold(tok, "keep-alive") {
			del(tok)
		}
		if i == len(v) {
			break
		}
		v = v[i+1:]
	}
}

// appendAddr appends the IP of a TCP address (without port) to dst.
func appendAddr(dst []byte, a net.Addr) []byte {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap().AppendTo(dst)
		}
	}
	return append(dst, "unknown"...)
}

// peerAddr returns the IP of a connection's remote address.
func peerAddr(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
}

// setForwarded sets X-Forwarded-For (appending the peer to what the client sent, as
// nginx's $proxy_add_x_forwarded_for and httputil do: the backend trusts only the
// last hop, which is ours), X-Forwarded-Proto and X-Forwarded-Host. scratch is a
// reusable buffer; the grown buffer is returned.
func setForwarded(h *fasthttp.RequestHeader, s *headerScan, peer net.Addr, tls bool, scratch []byte) []byte {
	b := scratch[:0]
	switch s.xff {
	case 0:
	case 1:
		b = append(b, h.Peek("X-Forwarded-For")...)
	default:
		// Several lines are one list (RFC 9110 §5.3); join them in order.
		for i, v := range h.PeekAll("X-Forwarded-For") {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = append(b, v...)
		}
		h.Del("X-Forwarded-For")
	}
	if len(b) > 0 {
		b = append(b, ", "...)
	}
	b = appendAddr(b, peer)
	h.SetBytesV("X-Forwarded-For", b)
	if tls {
		h.Set("X-Forwarded-Proto", "https")
	} else {
		h.Set("X-Forwarded-Proto", "http")
	}
	h.SetBytesV("X-Forwarded-Host", h.Host())
	return b
}
