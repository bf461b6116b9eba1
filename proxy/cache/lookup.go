package cache

import "bytes"

// lookup finds the newest stored variant of sc.key that the request selects
// (RFC 9111 §4.1) as of o.now, skipping dead entries. fwd is the
// reason to forward when nothing matches; marker reports a live hit-for-miss
// marker. When the URL has variants, sc.vkey holds the request's secondary
// key for the newest variant's Vary names.
//
// A URL with a single stored response that was hit recently is found in
// c.hot without any lock: one atomic load and a key comparison. Entries are
// immutable and every removal clears their hot slot, so a hot hit is
// exactly as current as a locked one that ran a moment earlier.
func (o *op) lookup() (e *entry, fwd fwdReason, marker bool) {
	c, s, h, sc, ctx, now := o.c, o.s, o.hash, o.sc, o.ctx, o.now
	slot := &c.hot[hotIndex(h)]
	computed := false
	if e = slot.Load(); e != nil && e.deadAt > now && bytes.Equal(e.key(), sc.key) {
		if vn := e.vary(); len(vn) == 0 {
			goto found
		} else if sc.vkey = c.appendVaryKey(sc.vkey[:0], vn, ctx, sc); bytes.Equal(sc.vkey, e.vkey()) {
			goto found
		}
	}
	e = nil
	{
		s.mu.RLock()
		head := s.m[string(sc.key)]
		if head == nil {
			s.mu.RUnlock()
			return nil, fwdURIMiss, false
		}
		var names []byte
		for v := head; v != nil; v = v.alt {
			if v.isMarker() {
				marker = marker || v.deadAt > now
				continue
			}
			if v.deadAt <= now {
				continue
			}
			vn := v.vary()
			if len(vn) == 0 {
				e = v
				break
			}
			if !computed || !bytes.Equal(vn, names) {
				sc.vkey = c.appendVaryKey(sc.vkey[:0], vn, ctx, sc)
				names, computed = vn, true
			}
			if bytes.Equal(sc.vkey, v.vkey()) {
				e = v
				break
			}
		}
		if e != nil && e == head && e.alt == nil && slot.Load() != e {
			// Promote under the read lock: a removal (write lock) either
			// ran before, and e would not have been found, or runs after
			// and clears the slot.
			slot.Store(e)
		}
		s.mu.RUnlock()
	}
	if e == nil {
		if computed {
			return nil, fwdVaryMiss, marker
		}
		return nil, fwdMiss, marker
	}
found:
	if e.ref.Load() == 0 {
		e.ref.Store(1)
	}
	return e, fwdNone, marker
}

// hotSlots is the size of the lock-free table of hot single-variant URLs.
const hotSlots = 4096

func hotIndex(h uint64) uint64 { return (h >> 8) % hotSlots }

// unhot clears e's hot slot if it holds e. Every path that unpublishes an
// entry calls it with the shard's write lock held.
func (c *Cache) unhot(e *entry) { c.hot[hotIndex(e.hash)].CompareAndSwap(e, nil) }

// What to do with a stored response for a request.
type action uint8

const (
	actFresh    action = iota // serve it
	actMaxStale               // serve it stale: the client's max-stale allows it
	actSWR                    // serve it stale and refresh in the background
	actForward                // validate or replace it
)

// decide applies RFC 9111 §4.2 (freshness), §4.2.4 (serving stale),
// §5.2.1 (request directives) and RFC 5861 §3 (stale-while-revalidate).
// forced reports a fresh response the request itself refused.
func decide(e *entry, rq *reqInfo, now int64) (act action, forced bool) {
	if e.flags&fNoCache != 0 {
		return actForward, false
	}
	ageNs := e.ageNs(now)
	ttl := e.lifetime*1e9 - ageNs
	if ttl > 0 {
		ok := !rq.cc.has(qcNoCache)
		// max-age=0 always revalidates; otherwise the age must not exceed it.
		if ok && rq.cc.has(qcMaxAge) && (rq.cc.maxAge == 0 || ageNs > rq.cc.maxAge*1e9) {
			ok = false
		}
		if ok && rq.cc.has(qcMinFresh) && ttl < rq.cc.minFresh*1e9 {
			ok = false
		}
		if ok {
			return actFresh, false
		}
		return actForward, true
	}
	if rq.cc.has(qcNoCache) || e.forbidsStale() {
		return actForward, false
	}
	stale := -ttl
	if rq.cc.has(qcMaxStaleAny) || (rq.cc.has(qcMaxStale) && stale <= rq.cc.maxStale*1e9) {
		if !rq.cc.has(qcMaxAge) || ageNs <= rq.cc.maxAge*1e9 {
			return actMaxStale, false
		}
	}
	if e.swr > 0 && stale <= int64(e.swr)*1e9 && !rq.cc.has(qcMaxAge|qcMinFresh) {
		return actSWR, false
	}
	return actForward, false
}

// staleIfError reports whether e may be served after a failed fetch: within
// the response's or the request's stale-if-error window (RFC 5861 §4), and
// only if nothing forbids serving it stale.
func staleIfError(e *entry, rq *reqInfo, now int64) bool {
	if e.forbidsStale() {
		return false
	}
	stale := -e.ttlNs(now)
	if stale <= 0 {
		return true
	}
	if e.sie > 0 && stale <= int64(e.sie)*1e9 {
		return true
	}
	return rq.cc.has(qcSIE) && stale <= rq.cc.sie*1e9
}
