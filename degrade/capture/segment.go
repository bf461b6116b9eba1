package capture

import (
	"fmt"
	"os"
	"path/filepath"
)

// segment is one open segment file. Fields other than f and path are guarded
// by Journal.mu; size and broken are written only by the committer.
type segment struct {
	num  uint64
	path string
	f    file

	size    int64 // durable end: bytes fsynced (or recovered)
	broken  bool  // a write or fsync failed: never appended to again
	live    int   // pending and dead records whose current frame is here
	refs    int   // reads in progress; the segment is not deleted under them
	keyHold int64 // unix ns until which an idempotency key in here is kept

	liveBytes int64    // frame bytes of the live records, for compaction
	entries   []*entry // every record whose frame was placed here
}

// rotate creates the next segment and makes it active. The header is fsynced
// and so is the directory before any record goes in, so that a record's
// fsync never depends on a file whose name may vanish in a crash. Only the
// committer (or Open, before it starts) calls rotate.
func (j *Journal) rotate() (*segment, error) {
	num := uint64(1)
	var prevEnd uint64
	if old := j.active; old != nil {
		num = old.num + 1
		prevEnd = uint64(old.size)
	}
	path := filepath.Join(j.o.Dir, segName(num))
	// O_TRUNC, not O_EXCL: a file of this number can only be the remains of
	// an earlier failed attempt, which nothing refers to.
	f, err := j.fs.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("capture: create segment: %w", err)
	}
	fail := func(what string, err error) (*segment, error) {
		f.Close()
		if rerr := j.fs.Remove(path); rerr == nil {
			_ = j.fs.SyncDir(j.o.Dir)
		}
		return nil, fmt.Errorf("capture: create segment %s: %s: %w", path, what, err)
	}
	if _, err := f.WriteAt(segHeader{num: num, prevEnd: prevEnd}.encode(), 0); err != nil {
		return fail("write header", err)
	}
	if err := f.Sync(); err != nil {
		return fail("fsync", err)
	}
	if err := j.fs.SyncDir(j.o.Dir); err != nil {
		return fail("fsync directory", err)
	}
	seg := &segment{num: num, path: path, f: f, size: segHeaderSize}
	j.mu.Lock()
	j.segs = append(j.segs, seg)
	j.active = seg
	j.mu.Unlock()
	return seg, nil
}

// readRecord reads back and verifies the capture or carry frame at off.
func readRecord(seg *segment, off int64, size int) (*Record, error) {
	buf := make([]byte, size)
	if _, err := seg.f.ReadAt(buf, off); err != nil {
		return nil, err
	}
	if size < frameHeaderSize || int(le32(buf)) != size-frameHeaderSize || frameCRC(buf) != le32(buf[4:]) {
		return nil, fmt.Errorf("%w: checksum mismatch reading back %s at offset %d", ErrCorrupt, seg.path, off)
	}
	p, err := capturePayload(buf[8], buf[frameHeaderSize:])
	if err != nil {
		return nil, err
	}
	_, r, err := decodeCapture(p)
	return r, err
}

// sweep deletes the oldest segments once nothing in them is needed, and
// carries forward the few live records that keep an otherwise dead segment
// alive. Only the committer calls it.
//
// Deletion is strictly oldest first: a segment goes only when every older
// segment is gone. That is what makes it safe to leave state-change frames
// where they are: a frame in segment n refers to a record captured in segment
// n or earlier, so when n is deleted, so is every record its frames could
// change.
func (j *Journal) sweep() {
	j.mu.Lock()
	now := j.now().UnixNano()
	retry := j.undeleted
	j.undeleted = nil
	var gone []*segment
	if len(retry) == 0 {
		for len(j.segs) > 1 {
			s := j.segs[0]
			if s == j.active || s.live > 0 || s.refs > 0 || now < s.keyHold {
				break
			}
			j.segs = j.segs[1:]
			j.forgetLocked(s)
			gone = append(gone, s)
		}
	}
	j.mu.Unlock()

	for _, path := range retry {
		j.removeFile(path)
	}
	for _, s := range gone {
		s.f.Close()
		j.removeFile(s.path)
	}
	j.compact()
	j.notifyTest()
}

// removeFile deletes a segment file and fsyncs the directory, so that a later
// deletion never becomes durable before this one. A failure is retried on the
// next sweep, and no other segment is deleted until it succeeds.
func (j *Journal) removeFile(path string) {
	err := j.fs.Remove(path)
	if err == nil || os.IsNotExist(err) {
		err = j.fs.SyncDir(j.o.Dir)
	}
	if err != nil {
		j.log.Error("capture: cannot delete a resolved segment; will retry", "file", path, "err", err)
		j.mu.Lock()
		j.undeleted = append(j.undeleted, path)
		j.mu.Unlock()
		return
	}
	j.log.Debug("capture: segment deleted", "file", path)
}

// forgetLocked drops the records whose frame was in s: all are delivered or
// discarded, since s had no live record.
func (j *Journal) forgetLocked(s *segment) {
	for _, e := range s.entries {
		if e.seg != s {
			continue // carried forward
		}
		delete(j.byID, e.id)
		if e.scope != "" && j.keys[e.scope] == e {
			delete(j.keys, e.scope)
		}
	}
	s.entries = nil
}

// compact carries the live records of the oldest segment into the active one
// when they are a small part of it (a quarter or less), so that a few dead
// letters or a stuck record do not pin every segment after them. Carrying
// rewrites the record with its current state (frameCarry); recovery lets the
// newer frame win. A record with a state change queued is skipped this round,
// so that the carry frame, which is written after it, never records a stale
// state.
func (j *Journal) compact() {
	j.mu.Lock()
	if len(j.segs) < 2 || j.closed {
		j.mu.Unlock()
		return
	}
	s := j.segs[0]
	// Carrying only helps when the segment could then be deleted, i.e. once
	// its idempotency keys have expired.
	if s == j.active || s.live == 0 || s.liveBytes*4 > s.size || j.now().UnixNano() < s.keyHold {
		j.mu.Unlock()
		return
	}
	var cands []*entry
	var total int
	for _, e := range s.entries {
		if e.seg != s || !isLive(e.status) || e.op != nil || e.carrying {
			continue
		}
		cands = append(cands, e)
		total += e.size
		if total >= compactChunk {
			break
		}
	}
	type loc struct {
		off  int64
		size int
	}
	locs := make([]loc, len(cands))
	for i, e := range cands {
		locs[i] = loc{e.off, e.size}
	}
	j.mu.Unlock()

	// s is not deleted while we read: only the committer (us) deletes.
	payloads := make([][]byte, len(cands))
	for i, l := range locs {
		buf := make([]byte, l.size)
		if _, err := s.f.ReadAt(buf, l.off); err != nil || frameCRC(buf) != le32(buf[4:]) {
			j.log.Error("capture: cannot read a record to carry forward", "file", s.path, "offset", l.off, "err", err)
			continue
		}
		p, err := capturePayload(buf[8], buf[frameHeaderSize:])
		if err != nil {
			continue
		}
		payloads[i] = p
	}

	j.mu.Lock()
	n := 0
	b := j.open
	for i, e := range cands {
		p := payloads[i]
		if p == nil || e.seg != s || !isLive(e.status) || e.op != nil || e.carrying {
			continue
		}
		state := carryPending
		if e.status == StatusDead {
			state = carryDead
		}
		o := outcome{attempts: e.attempts, at: e.deadAt, reason: e.reason}
		off := len(b.buf)
		b.buf = beginFrame(b.buf, frameCarry, carryPrefixLen(&o)+len(p))
		b.buf = appendCarryPrefix(b.buf, state, &o)
		b.buf = append(b.buf, p...)
		b.ops = append(b.ops, op{kind: frameCarry, off: off, size: len(b.buf) - off, e: e})
		e.carrying = true
		n++
	}
	j.mu.Unlock()
	if n > 0 {
		j.log.Info("capture: carrying live records forward to free an old segment", "file", s.path, "records", n)
		j.wake()
	}
}
