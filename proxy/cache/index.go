package cache

import (
	"bytes"
	"sync"
	"sync/atomic"
)

// The index is split into numShards shards, each a map from primary key to
// the newest variant (older variants hang off entry.alt) plus a segmented
// LRU. Hits take one shard's read lock for a map lookup (or none, see
// Cache.hot) and set the entry's ref bit atomically; only inserts,
// evictions and removals take the write lock. The byte budget is global: an
// insert first reserves its size with a CAS on Cache.bytes, evicting until
// the reservation fits, so the accounted total never exceeds MaxBytes.
//
// Eviction is a segmented LRU (Karedla, Love and Wherry, "Caching
// strategies to improve disk system performance", 1994) with lazy
// promotion: new entries enter the probation segment; a hit only sets the
// entry's ref bit; when eviction meets a probation entry whose bit is set it
// promotes it to the protected segment instead (CLOCK-style second chance),
// and the protected segment is capped at 80% of the shard's bytes, its
// overflow demoted back to probation. A scan of one-hit URLs therefore only
// churns the probation segment and the hot set survives it. The eviction
// hand moves round-robin over the shards (Cache.evictNext), so the pressure
// of inserts is spread over the whole cache and the shards together behave
// like one approximate LRU whatever shard an insert lands in.

const (
	numShards      = 256
	segProbation   = 0
	segProtected   = 1
	protectedShare = 80 // percent of a shard's bytes the protected segment may hold
	maxVariants    = 32 // variants kept per URL; the oldest beyond are dropped
	sweepBatch     = 512
)

type lruList struct{ head, tail *entry }

func (l *lruList) pushFront(e *entry) {
	e.prev = nil
	e.next = l.head
	if l.head != nil {
		l.head.prev = e
	} else {
		l.tail = e
	}
	l.head = e
}

func (l *lruList) remove(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

// flight is one in-progress backend fetch that concurrent misses for the
// same key wait for (request collapsing, RFC 9111 §4).
type flight struct {
	key     string
	done    chan struct{}
	waiters atomic.Int32
}

type shard struct {
	mu      sync.RWMutex
	m       map[string]*entry
	flights map[string]*flight
	lists   [2]lruList
	bytes   [2]int64 // per segment, guarded by mu
	n       [2]int   // entries per segment, guarded by mu
	_       [64]byte // keep neighbouring shards' locks on separate cache lines
}

func (s *shard) link(e *entry, seg uint8) {
	e.seg = seg
	s.lists[seg].pushFront(e)
	s.bytes[seg] += e.size
	s.n[seg]++
}

func (s *shard) unlink(e *entry) {
	s.lists[e.seg].remove(e)
	s.bytes[e.seg] -= e.size
	s.n[e.seg]--
}

// rebalance demotes protected entries to probation while the protected
// segment holds more than its share.
func (s *shard) rebalance() {
	limit := (s.bytes[0] + s.bytes[1]) * protectedShare / 100
	for s.bytes[segProtected] > limit {
		d := s.lists[segProtected].tail
		if d == nil {
			return
		}
		s.unlink(d)
		s.link(d, segProbation)
	}
}

// insert publishes e as the newest variant of its URL, replacing the
// variant with the same Vary names and values and any hit-for-miss marker,
// and releases the bytes of what it replaced. The caller has reserved
// e.size. It publishes nothing and reports false when e's key was purged
// since gen was read (see Cache.genOf).
func (c *Cache) insert(s *shard, e *entry, gen uint64) bool {
	key := e.keyString()
	var freed, objs int64
	s.mu.Lock()
	if gen != noGenCheck && c.genOf(e.hash) != gen {
		s.mu.Unlock()
		return false
	}
	head := s.m[key]
	e.alt = nil
	tail, n := e, 1
	for v := head; v != nil; {
		next := v.alt
		c.unhot(v) // it is replaced, or no longer alone in its chain
		same := !e.isMarker() && !v.isMarker() && bytes.Equal(v.vary(), e.vary()) && bytes.Equal(v.vkey(), e.vkey())
		if v.isMarker() || same || n >= maxVariants {
			if same && v.ref.Load() != 0 {
				e.ref.Store(1) // a replaced hot entry stays hot
			}
			s.unlink(v)
			v.alt = nil
			freed += v.size
			if !v.isMarker() {
				objs--
			}
		} else {
			tail.alt = v
			tail = v
			n++
		}
		v = next
	}
	tail.alt = nil
	if head != nil {
		// The map keeps the key string of the first insertion, which
		// aliases the old head's buffer; re-keying lets that buffer go.
		delete(s.m, key)
	}
	s.m[key] = e
	s.link(e, segProbation)
	s.mu.Unlock()
	if !e.isMarker() {
		objs++
	}
	c.bytes.Add(-freed)
	c.objects.Add(objs)
	return true
}

// removeLocked unlinks one entry from its variant chain and the LRU and
// returns the bytes freed. s.mu must be held for writing.
func (c *Cache) removeLocked(s *shard, e *entry) int64 {
	key := e.keyString()
	head := s.m[key]
	if head == e {
		delete(s.m, key)
		if e.alt != nil {
			s.m[e.alt.keyString()] = e.alt
		}
	} else {
		for v := head; v != nil; v = v.alt {
			if v.alt == e {
				v.alt = e.alt
				break
			}
		}
	}
	e.alt = nil
	s.unlink(e)
	c.unhot(e)
	c.bytes.Add(-e.size)
	if !e.isMarker() {
		c.objects.Add(-1)
	}
	return e.size
}

// removeChainLocked removes every variant and marker stored for key and
// returns how many responses (not markers) it removed.
func (c *Cache) removeChainLocked(s *shard, key []byte) int {
	head := s.m[string(key)]
	if head == nil {
		return 0
	}
	delete(s.m, string(key))
	n := 0
	var freed int64
	for v := head; v != nil; {
		next := v.alt
		v.alt = nil
		s.unlink(v)
		c.unhot(v)
		freed += v.size
		if !v.isMarker() {
			n++
		}
		v = next
	}
	c.bytes.Add(-freed)
	c.objects.Add(-int64(n))
	return n
}

// remove drops e if it is still stored.
func (c *Cache) remove(s *shard, e *entry) {
	s.mu.Lock()
	for v := s.m[e.keyString()]; v != nil; v = v.alt {
		if v == e {
			c.removeLocked(s, e)
			break
		}
	}
	s.mu.Unlock()
}

// evictOne evicts one entry from s following the segmented LRU and returns
// the bytes freed. Like a CLOCK hand it looks at no more entries than the
// shard holds (at most 16): a recently used entry it meets is promoted or
// moved to the front with its mark cleared instead of being evicted, and
// when every entry looked at was recently used it evicts nothing and
// returns 0, so that reserve moves on to another shard. With force it then
// evicts the coldest entry anyway.
func (c *Cache) evictOne(s *shard, force bool) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	look := min(s.n[segProbation]+s.n[segProtected], 16)
	for range look {
		if p := s.lists[segProbation].tail; p != nil {
			if p.ref.Load() != 0 {
				p.ref.Store(0)
				s.unlink(p)
				s.link(p, segProtected)
				s.rebalance()
				continue
			}
			c.evicted.Add(1)
			return c.removeLocked(s, p)
		}
		q := s.lists[segProtected].tail
		if q.ref.Load() != 0 {
			q.ref.Store(0)
			s.unlink(q)
			s.link(q, segProtected)
			continue
		}
		c.evicted.Add(1)
		return c.removeLocked(s, q)
	}
	if !force {
		return 0
	}
	v := s.lists[segProbation].tail
	if v == nil {
		v = s.lists[segProtected].tail
	}
	if v == nil {
		return 0
	}
	c.evicted.Add(1)
	return c.removeLocked(s, v)
}

// reserve accounts size bytes against MaxBytes, evicting until they fit.
// The eviction hand moves round-robin over the shards, so the pressure of
// inserts spreads over the whole cache whatever shard they land in, and
// the budget behaves like one global (approximate) LRU. It fails only when
// size alone exceeds the budget or nothing is left to evict.
func (c *Cache) reserve(size int64) bool {
	if size > c.max {
		return false
	}
	for {
		cur := c.bytes.Load()
		if cur+size <= c.max {
			if c.bytes.CompareAndSwap(cur, cur+size) {
				return true
			}
			continue
		}
		if !c.evictSome(false) && !c.evictSome(true) {
			return false
		}
	}
}

// evictSome evicts one entry from the next shard that has one to give, and
// leaves the hand there: the shards it passed over just had their marks
// cleared and must not be visited again before the others.
func (c *Cache) evictSome(force bool) bool {
	start := c.evictNext.Add(1)
	for i := range uint32(numShards) {
		if c.evictOne(&c.shards[(start+i)%numShards], force) > 0 {
			if i > 0 {
				c.evictNext.Store(start + i)
			}
			return true
		}
	}
	return false
}

// store reserves space for e and publishes it; it reports false (and
// publishes nothing) when e cannot fit in the budget or its key was purged
// since gen, its generation when the fetch that brought e started, was read
// (noGenCheck: no such check).
func (c *Cache) store(s *shard, e *entry, gen uint64) bool {
	e.hash = c.hash(e.key())
	if !c.reserve(e.size) {
		return false
	}
	if !c.insert(s, e, gen) { // e.size is already accounted by reserve
		c.bytes.Add(-e.size)
		return false
	}
	return true
}

// Purge generations. A fetch reads its key's generation (genOf) before it
// starts and stores its answer only if it has not moved by the time the
// answer is published (checked under the shard lock): a purge or
// invalidation that ran meanwhile may have removed the very content the
// fetch brings back. Removing one key's responses bumps that key's stripe
// (bumpKey, under the shard lock, before the removal), a purge of many keys
// bumps purgeGen before it starts; both only grow, so their sum moves when
// either does.
const genStripes = 4096

// noGenCheck stores without a generation check (hit-for-miss markers).
const noGenCheck = ^uint64(0)

func (c *Cache) genOf(h uint64) uint64 { return c.purgeGen.Load() + c.keyGen[h%genStripes].Load() }
func (c *Cache) bumpKey(h uint64)      { c.keyGen[h%genStripes].Add(1) }

// sweep removes entries that can no longer serve any request (see
// entry.setTiming), examining at most sweepBatch URLs per shard. Go's map
// iteration starts at a random position, so successive sweeps cover the
// whole index without keeping a cursor.
func (c *Cache) sweep(now int64) int {
	removed := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n := 0
		for _, head := range s.m {
			if n >= sweepBatch {
				break
			}
			n++
			for v := head; v != nil; {
				next := v.alt
				if v.deadAt <= now {
					c.removeLocked(s, v)
					if !v.isMarker() {
						removed++
					}
				}
				v = next
			}
		}
		s.mu.Unlock()
	}
	c.expired.Add(uint64(removed))
	return removed
}

// join registers interest in fetching key. The first caller becomes the
// leader and must call finish; the others get the leader's flight to wait
// on.
func (s *shard) join(key []byte) (f *flight, leader bool) {
	s.mu.Lock()
	if f = s.flights[string(key)]; f != nil {
		f.waiters.Add(1)
		s.mu.Unlock()
		return f, false
	}
	f = &flight{key: string(key), done: make(chan struct{})}
	s.flights[f.key] = f
	s.mu.Unlock()
	return f, true
}

// finish ends the leader's flight and wakes its waiters.
func (s *shard) finish(f *flight) {
	s.mu.Lock()
	delete(s.flights, f.key)
	s.mu.Unlock()
	close(f.done)
}
