package capture

import "sort"

// Pending returns up to max pending records of pool, oldest first (capture
// order); max <= 0 means all. Records being replayed are still pending. A
// record that cannot be read back is logged and left out. Safe for concurrent
// use; the records are the caller's.
func (j *Journal) Pending(poolName string, max int) []*Record {
	type loc struct {
		seg  *segment
		off  int64
		size int
	}
	j.mu.Lock()
	p := j.pools[poolName]
	if j.closed || p == nil || p.n == 0 {
		j.mu.Unlock()
		return nil
	}
	n := p.n
	if max > 0 && max < n {
		n = max
	}
	locs := make([]loc, 0, n)
	for e := p.head; e != nil && len(locs) < n; e = e.next {
		e.seg.refs++
		locs = append(locs, loc{e.seg, e.off, e.size})
	}
	j.readers.Add(1)
	j.mu.Unlock()

	out := make([]*Record, 0, len(locs))
	for _, l := range locs {
		r, err := readRecord(l.seg, l.off, l.size)
		if err != nil {
			j.log.Error("capture: unreadable record", "file", l.seg.path, "offset", l.off, "err", err)
			continue
		}
		out = append(out, r)
	}
	j.mu.Lock()
	for _, l := range locs {
		l.seg.refs--
	}
	j.mu.Unlock()
	j.readers.Done()
	return out
}

// Get returns record id and its status. ok is false when the journal holds no
// such record (never captured, or resolved and its segment deleted). The
// record is nil, with ok true, when it cannot be read back (logged). Safe for
// concurrent use.
func (j *Journal) Get(id string) (*Record, Status, bool) {
	j.mu.Lock()
	e := j.byID[id]
	if j.closed || e == nil {
		j.mu.Unlock()
		return nil, 0, false
	}
	seg, off, size, st := e.seg, e.off, e.size, e.status
	seg.refs++
	j.readers.Add(1)
	j.mu.Unlock()
	r, err := readRecord(seg, off, size)
	j.mu.Lock()
	seg.refs--
	j.mu.Unlock()
	j.readers.Done()
	if err != nil {
		j.log.Error("capture: unreadable record", "id", id, "file", seg.path, "offset", off, "err", err)
		return nil, st, true
	}
	return r, st, true
}

// Lookup returns the record captured on route with idempotency key key, if the
// journal still remembers it (as Append would deduplicate against it). The
// proxy calls it on the live path of a capture route for a request that
// carries a key: if the order was captured while the pool was degraded, the
// client's resubmission gets the same 202 instead of reaching the backend a
// second time (replay sends it under the same key, but not every backend
// deduplicates). Safe for concurrent use.
func (j *Journal) Lookup(route, key string) (id string, st Status, ok bool) {
	if key == "" {
		return "", 0, false
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	e := j.keys[keyScope(route, key)]
	if e == nil {
		return "", 0, false
	}
	return e.id, e.status, true
}

// DeadLetters lists the dead letters awaiting Retry or Discard, oldest capture
// first. Safe for concurrent use.
func (j *Journal) DeadLetters() []DeadLetter {
	j.mu.Lock()
	es := make([]*entry, 0, len(j.dead))
	for e := range j.dead {
		es = append(es, e)
	}
	out := make([]DeadLetter, len(es))
	sort.Slice(es, func(a, b int) bool { return es[a].seq < es[b].seq })
	for i, e := range es {
		out[i] = DeadLetter{
			ID: e.id, Pool: e.pool.name, Route: e.route, Reason: e.reason,
			Attempts: e.attempts, Time: unixNano(e.deadAt), Captured: unixNano(e.captured),
		}
	}
	j.mu.Unlock()
	return out
}

// Stats returns a snapshot of the journal's counters. Safe for concurrent use.
func (j *Journal) Stats() Stats {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := Stats{
		Backlog:     make(map[string]int),
		DeadLetters: len(j.dead),
		Appended:    j.appended,
		Delivered:   j.delivered,
		Fsyncs:      j.fsyncs,
		Segments:    len(j.segs),
	}
	for name, p := range j.pools {
		if p.n > 0 {
			s.Backlog[name] = p.n
			s.Pending += p.n
		}
	}
	for _, seg := range j.segs {
		s.Bytes += seg.size
	}
	return s
}
