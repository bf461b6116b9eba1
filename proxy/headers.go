package proxy

import (
	"net"
	"net/netip"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/internal/httpwire"
)

// Hop-by-hop headers (RFC 9110 §7.6.1, the list is httpwire.IsHopByHop's) are
// meaningful for one connection only and are removed in both directions, as are
// the headers that Connection names. Transfer-Encoding and Content-Length are
// re-framed by fasthttp for the next hop. TE is dropped whole: fasthttp's client
// does not forward trailers, so there is no "TE: trailers" to keep.

// copyResponseHeader copies the backend's status and end-to-end header fields to the
// client's response, in order: fasthttp's CopyTo followed by deletions would
// reorder fields (it deletes by swapping with the last one), and the order of
// same-name fields such as Set-Cookie must be kept (RFC 9110 §5.3).
func copyResponseHeader(dst, src *fasthttp.ResponseHeader) {
	var connBuf [8][]byte
	connection, overflow := httpwire.AppendListsTokens(connBuf[:0], src.PeekAll("Connection"))
	if overflow {
		// More than eight tokens: copy the lines now (the slow path; it
		// allocates), since PeekAll's buffer is not ours to keep.
		var all [][]byte
		for _, v := range src.PeekAll("Connection") {
			all = append(all, append([]byte(nil), v...))
		}
		connection = connection[:0]
		for _, v := range all {
			connection = httpwire.AppendAllTokens(connection, v)
		}
	}
	// The origin's Date is kept; fasthttp writes one only if it sent none.
	resetForCopy(dst, src)
	dst.DisableNormalizing()
	dst.SetStatusCode(src.StatusCode())
	dst.SetNoDefaultContentType(true)
	src.VisitAll(func(k, v []byte) {
		if httpwire.IsHopByHop(k) || httpwire.NamedIn(connection, k) {
			return
		}
		dst.AddBytesKV(k, v)
	})
}

// appendSwitchingHead appends a 101 response head for the client: the backend's
// fields minus hop-by-hop ones, but with Connection and Upgrade, which are the
// point of a 101.
func appendSwitchingHead(dst []byte, src *fasthttp.ResponseHeader) []byte {
	dst = append(dst, "HTTP/1.1 101 Switching Protocols\r\n"...)
	src.VisitAll(func(k, v []byte) {
		if httpwire.IsHopByHop(k) && !httpwire.EqualFold(k, "connection") && !httpwire.EqualFold(k, "upgrade") {
			return
		}
		dst = append(dst, k...)
		dst = append(dst, ": "...)
		dst = append(dst, v...)
		dst = append(dst, "\r\n"...)
	})
	return append(dst, "\r\n"...)
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
