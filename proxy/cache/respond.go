package cache

import (
	"bufio"
	"errors"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/internal/httpwire"
)

// readBlock replaces dst's header with the parsed block. Parsing (rather
// than CopyTo from a template header) keeps the server's NoDefaultDate
// setting, so the stored Date reaches the client (RFC 9111 §4 does not let
// a cache change it); it also keeps fasthttp's header-name normalisation
// choice. The connection-close flag is the caller's and is restored.
func readBlock(dst *fasthttp.ResponseHeader, block []byte, sc *scratch) error {
	br := sc.br
	if len(block) > smallBlock {
		if len(block) > maxBlock {
			return errBlockTooLarge
		}
		if sc.big == nil {
			sc.big = bufio.NewReaderSize(&sc.rd, maxBlock)
		}
		br = sc.big
	}
	sc.rd.Reset(block)
	br.Reset(&sc.rd)
	wasClose := dst.ConnectionClose()
	err := dst.Read(br)
	if wasClose {
		dst.SetConnectionClose()
	} else {
		dst.ResetConnectionClose()
	}
	return err
}

var errBlockTooLarge = errors.New("cache: header section too large")

// passUnstored adds to the client's answer the end-to-end fields of the
// validation response (in sc.kvs) that the stored response leaves out,
// such as Set-Cookie: they were sent in reply to this client's request, so
// this client gets them, and nobody else does.
func (o *op) passUnstored(m *respMeta) {
	ctx, sc := o.ctx, o.sc
	for i := range sc.kvs {
		k, v := sc.kvs[i].k, sc.kvs[i].v
		if m.storedField(k) || !m.forwardedField(k) || httpwire.EqualFold(k, "age") {
			continue
		}
		ctx.Response.Header.AddBytesKV(k, v)
	}
}

// respond writes the stored response e, as of now, into ctx.Response: a 304
// when the client's validators match, a single byte range when asked and
// allowed, the whole response otherwise, plus Age and sc.cs as Cache-Status.
// The body is shared, not copied.
func (o *op) respond(e *entry, now int64) {
	c, ctx, sc, rq := o.c, o.ctx, o.sc, &o.rq
	r := &ctx.Response
	if err := readBlock(&r.Header, e.block(), sc); err != nil {
		c.onError(ctx, err)
		return
	}
	if rq.flags&(rqINM|rqIMS) != 0 && rq.notModified(e) {
		r.ResetBody()
		r.SetStatusCode(fasthttp.StatusNotModified)
	} else if first, last, ok := rq.rangeOf(e); ok {
		r.SetStatusCode(fasthttp.StatusPartialContent)
		r.Header.SetContentRange(first, last, len(e.body))
		r.SetBodyRaw(e.body[first : last+1 : last+1])
	} else {
		r.SetBodyRaw(e.body)
	}
	age := e.ageNs(now) / 1e9
	sc.num = strconv.AppendInt(sc.num[:0], age, 10)
	r.Header.SetCanonical(strAge, sc.num)
	r.Header.AddBytesKV(strCacheStatus, sc.cs)
}

var (
	strAge         = []byte("Age")
	strCacheStatus = []byte("Cache-Status")
)

// transfer passes the backend response resp (status, received at
// o.respTime, forwarded for o.fwd) to the client: its fields minus the
// connection-specific ones, and its body (the stored entry's bytes when it
// was stored, which are identical and need no copy). It reports whether
// ctx.Response now references resp's memory (resp must then not be
// released).
func (o *op) transfer(resp *fasthttp.Response, stored *entry, status int) bool {
	ctx, sc, fwd, respTime := o.ctx, o.sc, o.fwd, o.respTime
	r := &ctx.Response
	head := ctx.Request.Header.IsHead()
	clear(sc.kvs)
	sc.kvs = collectFields(sc.kvs[:0], &resp.Header)
	var m respMeta
	m.analyze(sc.kvs)
	sc.kvs = addDate(sc.kvs, &m, sc, respTime)
	cl := int64(-1)
	switch {
	case resp.IsBodyStream():
		if n := resp.Header.ContentLength(); n >= 0 {
			cl = int64(n)
		}
	case head:
		if m.has&mContentLength != 0 {
			cl = m.contentLength
		}
	case stored != nil:
		cl = int64(len(stored.body))
	default:
		cl = int64(len(resp.Body()))
	}
	var keep bool
	sc.blk, _ = appendBlock(sc.blk[:0], status, resp.Header.StatusMessage(), sc.kvs, (*respMeta).forwardedField, &m, cl)
	if err := readBlock(&r.Header, sc.blk, sc); err != nil {
		// Header section beyond maxBlock: fall back to a plain copy.
		resp.Header.CopyTo(&r.Header)
	}
	switch {
	case resp.IsBodyStream():
		r.SetBodyStream(resp.BodyStream(), int(cl))
		keep = true
	case head:
		r.ResetBody()
	case stored != nil:
		r.SetBodyRaw(stored.body)
	default:
		b := resp.Body()
		if len(b) > 64<<10 {
			// Large and not stored: hand the buffer over instead of
			// copying it; resp is then left to the garbage collector.
			r.SetBodyRaw(b)
			keep = true
		} else {
			r.SetBody(b)
		}
	}
	var ttl int64
	kind := csForward
	if stored != nil {
		kind = csStored
		ttl = stored.ttlNs(stored.respTime)
	}
	sc.cs = appendStatus(sc.cs[:0], kind, fwd, status, ttl, "")
	r.Header.AddBytesKV(strCacheStatus, sc.cs)
	return keep
}

// gatewayTimeout writes the 504 a cache generates when it may neither use a
// stored response nor has one (RFC 9111 §5.2.1.7, §5.2.2.2).
func (o *op) gatewayTimeout(fwd fwdReason, fwdStatus int, detail string) {
	ctx, sc := o.ctx, o.sc
	r := &ctx.Response
	if err := readBlock(&r.Header, block504, sc); err != nil {
		r.Header.SetStatusCode(fasthttp.StatusGatewayTimeout)
	}
	r.ResetBody()
	kind := csForward
	if fwd == fwdNone {
		kind = csNone
	}
	sc.cs = appendStatus(sc.cs[:0], kind, fwd, fwdStatus, 0, detail)
	r.Header.AddBytesKV(strCacheStatus, sc.cs)
}

var block504 = []byte("HTTP/1.1 504 Gateway Timeout\r\nContent-Length: 0\r\n\r\n")

// Kinds of Cache-Status member (RFC 9211 §2).
const (
	csNone        = iota // neither hit nor fwd (only-if-cached miss)
	csHit                // hit; ttl
	csCollapsed          // fwd=...; collapsed; ttl
	csForward            // fwd=...; fwd-status
	csStored             // fwd=...; fwd-status; stored; ttl
	csRevalidated        // fwd=...; fwd-status=304; ttl
)

// CacheStatusName is this cache's identifier in Cache-Status.
const CacheStatusName = "floodgate"

// appendStatus appends a Cache-Status member (RFC 9211) for this cache.
func appendStatus(dst []byte, kind int, fwd fwdReason, fwdStatus int, ttlNs int64, detail string) []byte {
	dst = append(dst, CacheStatusName...)
	switch kind {
	case csHit:
		dst = append(dst, "; hit"...)
	case csCollapsed, csForward, csStored, csRevalidated:
		dst = append(dst, "; fwd="...)
		dst = append(dst, fwdNames[fwd]...)
		if fwdStatus > 0 {
			dst = append(dst, "; fwd-status="...)
			dst = strconv.AppendInt(dst, int64(fwdStatus), 10)
		}
	}
	switch kind {
	case csCollapsed:
		dst = append(dst, "; collapsed"...)
	case csStored:
		dst = append(dst, "; stored"...)
	}
	if kind == csHit || kind == csCollapsed || kind == csStored || kind == csRevalidated || (kind == csForward && detail == "stale-if-error") {
		dst = append(dst, "; ttl="...)
		dst = strconv.AppendInt(dst, floorDiv(ttlNs, 1e9), 10)
	}
	if detail != "" {
		dst = append(dst, "; detail="...)
		dst = append(dst, detail...)
	}
	return dst
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && (a < 0) != (b < 0) {
		q--
	}
	return q
}
