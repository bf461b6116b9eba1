package cache

import (
	"bytes"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/internal/httpwire"
)

// addDate adds to a backend response without Date the time it was received,
// as a recipient with a clock must before storing or forwarding it (RFC 9110
// §6.6.1); that Date is then what the stored response carries on every hit.
// An origin's Date, even an invalid one, is left as it is.
func addDate(kvs []kv, m *respMeta, sc *scratch, respTime int64) []kv {
	if m.has&mDate != 0 {
		return kvs
	}
	for i := range kvs {
		if httpwire.EqualFold(kvs[i].k, "date") {
			return kvs
		}
	}
	sc.date = fasthttp.AppendHTTPDate(sc.date[:0], time.Unix(0, respTime))
	m.has |= mDate
	m.date = respTime / 1e9
	return append(kvs, kv{strDate, sc.date})
}

var strDate = []byte("Date")

// collectFields lists every header field of h in order.
func collectFields(dst []kv, h *fasthttp.ResponseHeader) []kv {
	for k, v := range h.All() {
		dst = append(dst, kv{k, v})
	}
	return dst
}

// storeResponse stores a full GET response when RFC 9111 §3 and the policy
// allow it and returns the published entry, or nil. When the response is
// unstorable for reasons of its own (not of this request), it leaves a
// hit-for-miss marker so the next requests for the URL do not queue behind
// one another only to fetch anyway.
//
// The secondary key comes from o.ctx's request as forwarded; a background
// refresh has no client request (o.ctx is nil) and stores under prev's
// secondary key, which needs the same Vary names.
func (o *op) storeResponse(prev *entry, status int, reason []byte, m *respMeta, body []byte) *entry {
	c, sc, s, p, rq, ctx, reqTime, respTime := o.c, o.sc, o.s, o.p, &o.rq, o.ctx, o.now, o.respTime
	ok, mark := storable(p, rq, status, m, len(body))
	var initAge, lifetime int64
	if ok {
		initAge, lifetime, _ = m.freshness(status, reqTime, respTime, p)
		useful := lifetime > initAge || len(m.etag) > 0 || m.has&mLastMod != 0 ||
			m.cc.has(rcSWR|rcSIE) || p.maxStale > 0
		if !useful {
			ok = false
		}
	}
	if ok {
		var star, tooMany bool
		sc.names, star, tooMany = appendVaryNames(sc.names[:0], m.vary[:m.nVary])
		if star || tooMany {
			ok = false
		}
	}
	if !ok {
		if mark && rq.flags&(rqAuth|rqMarked) == 0 {
			c.storeMarker(s, sc.key, respTime)
		}
		return nil
	}
	switch {
	case ctx != nil:
		sc.vkey2 = c.appendVaryKey(sc.vkey2[:0], sc.names, ctx, sc)
	case prev != nil && bytes.Equal(sc.names, prev.vary()):
		sc.vkey2 = append(sc.vkey2[:0], prev.vkey()...)
	default:
		return nil
	}
	var bi blockInfo
	sc.blk, bi = appendBlock(sc.blk[:0], status, reason, sc.kvs, (*respMeta).storedField, m, int64(len(body)))
	if len(sc.blk) > maxBlock {
		return nil
	}
	e := buildEntry(sc.key, sc.names, sc.vkey2, sc.blk, bi, body, false)
	e.setTiming(m, status, reqTime, respTime, initAge, lifetime, p)
	if !c.store(s, e, sc.gen) {
		return nil
	}
	return e
}

// storable applies RFC 9111 §3 for a shared cache, plus the policy. mark
// reports that the refusal comes from the response itself, so later
// requests for the URL are likely to get the same answer.
func storable(p *Policy, rq *reqInfo, status int, m *respMeta, bodyLen int) (ok, mark bool) {
	if rq.forbidsStore(m) {
		return false, false // RFC 9111 §3, §3.5: not for reasons of the response
	}
	if status < 200 || status == fasthttp.StatusPartialContent || status == fasthttp.StatusNotModified ||
		(status == fasthttp.StatusRequestedRangeNotSatisfiable && m.has&mContentRange != 0) {
		return false, false // partial content is not combined or stored; a 200 with Content-Range is whole (RFC 9110 §14.4)
	}
	understood := understoodStatus(status)
	if m.cc.has(rcMustUnderstand) && !understood {
		return false, true
	}
	// must-understand overrides no-store for understood statuses
	// (RFC 9111 §5.2.2.3).
	if m.cc.has(rcNoStore) && !(m.cc.has(rcMustUnderstand) && understood) {
		return false, true
	}
	if m.cc.has(rcPrivate) {
		return false, true
	}
	if m.has&mSetCookie != 0 && !p.opts.CacheSetCookie {
		return false, true
	}
	if p.opts.MaxObjectBytes > 0 && bodyLen > p.opts.MaxObjectBytes {
		return false, true
	}
	explicit := m.cc.has(rcMaxAge|rcSMaxAge) || m.has&mExpires != 0
	if !explicit && !heuristicStatus(status) && !m.cc.has(rcPublic) {
		return false, true
	}
	return true, false
}

// storeMarker records that key's last response was not storable.
func (c *Cache) storeMarker(s *shard, key []byte, now int64) {
	e := buildEntry(key, nil, nil, nil, blockInfo{}, nil, false)
	e.flags |= fMarker
	e.deadAt = now + markerTTL
	c.store(s, e, noGenCheck) // a marker outliving a purge does no harm
}

// freshen applies a 304 (or, with head, a 200 to HEAD) to the stored
// response e as RFC 9111 §3.2 and §4.3.4 say: every field of the new
// response replaces the stored fields of that name, except those a cache
// must not store and Content-Length; the body is kept. The updated entry is
// published in place of e and returned; nil means the response does not
// describe e.
func (o *op) freshen(e *entry, m *respMeta, head bool) *entry {
	c, sc, s, p, rq, reqTime, respTime := o.c, o.sc, o.s, o.p, &o.rq, o.now, o.respTime
	if !head {
		if len(m.etag) > 0 && len(e.etag()) > 0 {
			a, _ := opaqueTag(m.etag)
			b, _ := opaqueTag(e.etag())
			if string(a) != string(b) {
				return nil
			}
		} else if len(m.etag) == 0 && m.has&mLastMod != 0 && e.flags&fLastMod != 0 && m.lastMod != e.lastMod {
			return nil
		}
	}
	var status int
	sc.kvs2, status = blockFields(sc.kvs2[:0], e.block())
	// Keep the stored fields the new response does not replace.
	merged := sc.kvs2[:0]
	for _, f := range sc.kvs2 {
		replaced := false
		for i := range sc.kvs {
			if httpwire.EqualFoldBytes(sc.kvs[i].k, f.k) && m.storedField(f.k) {
				replaced = true
				break
			}
		}
		if !replaced {
			merged = append(merged, f)
		}
	}
	for i := range sc.kvs {
		if m.storedField(sc.kvs[i].k) {
			merged = append(merged, sc.kvs[i])
		}
	}
	sc.kvs2 = merged
	var mm respMeta
	mm.analyze(merged)
	reason := statusReason(e.block())
	var bi blockInfo
	sc.blk, bi = appendBlock(sc.blk[:0], status, reason, merged, (*respMeta).storedField, &mm, int64(len(e.body)))
	// Small bodies are copied so the old entry's buffer can be freed;
	// large ones are shared (they are immutable).
	share := len(e.body) > 4096
	e2 := buildEntry(e.key(), e.vary(), e.vkey(), sc.blk, bi, e.body, share)
	initAge, lifetime, _ := mm.freshness(status, reqTime, respTime, p)
	e2.setTiming(&mm, status, reqTime, respTime, initAge, lifetime, p)
	if rq.forbidsStore(&mm) {
		// A validation for one client (no-store, Authorization): e2 answers
		// it, and the shared entry stays as it was.
		return e2
	}
	if ok, _ := storable(p, rq, status, &mm, len(e.body)); !ok || len(sc.blk) > maxBlock {
		c.remove(s, e)
		return e2 // serve this once, unpublished
	}
	if !c.store(s, e2, sc.gen) {
		c.remove(s, e)
	}
	return e2
}

// headUpdate applies a 200 response to HEAD to the stored GET response
// (RFC 9111 §4.3.5): if its validators or length differ, the stored
// response is out of date and is dropped; otherwise its fields freshen it.
func (o *op) headUpdate(e *entry, m *respMeta) *entry {
	differ := false
	if len(m.etag) > 0 && len(e.etag()) > 0 && !bytes.Equal(m.etag, e.etag()) {
		differ = true
	}
	if m.has&mLastMod != 0 && e.flags&fLastMod != 0 && m.lastMod != e.lastMod {
		differ = true
	}
	if m.has&mContentLength != 0 && m.contentLength != int64(len(e.body)) {
		differ = true
	}
	if differ {
		o.c.remove(o.s, e)
		return nil
	}
	return o.freshen(e, m, true)
}

func statusReason(block []byte) []byte {
	i := indexByte(block, '\n')
	if i < 14 {
		return nil
	}
	return block[13 : i-1]
}
