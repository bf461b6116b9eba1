package proxy

import (
	"net"
	"net/netip"
	"sync"

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

// copyBackendHeader is copyResponseHeader for relay, with the copy made once
// for a run of answers whose status and fields are the same. A backend's answers
// to the same resource mostly are, byte for byte, but for a Date that changes
// once a second; copyResponseHeader costs an AddBytesKV per field (each copies
// name and value once more and scans both for line breaks) and more for the
// Date. So each pooled headTemplate keeps the fields of the last header it
// copied and the copy it made; a header with the same status and the same
// fields, in the same order, gets a CopyTo of that copy, which is what
// copyResponseHeader would have made of it: its result depends on nothing else.
// BenchmarkRelayHead, with the serialisation: 449 ns a head → 166 ns.
func copyBackendHeader(dst, src *fasthttp.ResponseHeader) {
	t := headTemplates.Get().(*headTemplate)
	if t.matches(src) {
		t.out.CopyTo(dst)
		t.misses = 0
	} else {
		copyResponseHeader(dst, src)
		// A backend whose every answer differs (an ID per response) would
		// pay for a new template each time: after a few misses in a row, one
		// in 64.
		if t.misses++; t.misses <= 4 || t.misses%64 == 0 {
			t.store(dst, src)
		}
	}
	headTemplates.Put(t)
}

// headTemplate is a response header's status and fields (fasthttp's All, in
// order) and copyResponseHeader's copy of it.
type headTemplate struct {
	status int
	fields []byte  // names and values, one after the other
	ends   []int32 // end of each name and value in fields
	out    fasthttp.ResponseHeader
	valid  bool
	misses int
}

// maxTemplateBytes bounds what a template keeps; a larger header is not kept.
const maxTemplateBytes = 4 << 10

var headTemplates = sync.Pool{New: func() any { return new(headTemplate) }}

func (t *headTemplate) matches(src *fasthttp.ResponseHeader) bool {
	if !t.valid || src.StatusCode() != t.status {
		return false
	}
	i, start := 0, int32(0)
	for k, v := range src.All() {
		if i+1 >= len(t.ends) {
			return false
		}
		kEnd, vEnd := t.ends[i], t.ends[i+1]
		if string(t.fields[start:kEnd]) != string(k) || string(t.fields[kEnd:vEnd]) != string(v) {
			return false
		}
		i, start = i+2, vEnd
	}
	return i == len(t.ends)
}

func (t *headTemplate) store(dst, src *fasthttp.ResponseHeader) {
	t.valid = false
	t.status = src.StatusCode()
	t.fields, t.ends = t.fields[:0], t.ends[:0]
	for k, v := range src.All() {
		if len(t.fields)+len(k)+len(v) > maxTemplateBytes {
			return
		}
		t.fields = append(t.fields, k...)
		t.ends = append(t.ends, int32(len(t.fields)))
		t.fields = append(t.fields, v...)
		t.ends = append(t.ends, int32(len(t.fields)))
	}
	dst.CopyTo(&t.out)
	t.valid = true
}
