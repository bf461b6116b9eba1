package capture

import (
	"fmt"
	"time"
)

// run is the committer: the only goroutine that writes, rotates and deletes
// segment files.
func (j *Journal) run() {
	defer close(j.done)
	tick := time.NewTicker(sweepInterval)
	defer tick.Stop()
	j.sweep()
	for {
		select {
		case <-j.kick:
		case <-tick.C:
		case <-j.quit:
			// Close set closed before quit, so nothing more is queued:
			// write what was.
			for j.commit() {
			}
			return
		}
		for j.commit() {
		}
		j.sweep()
	}
}

// commit writes the open batch, if it holds anything, applies it in memory
// and releases its waiters. It reports whether there was a batch.
func (j *Journal) commit() bool {
	j.mu.Lock()
	b := j.open
	if len(b.ops) == 0 {
		j.mu.Unlock()
		return false
	}
	j.open = j.newBatchLocked()
	j.mu.Unlock()

	seg, start, err := j.write(b)

	j.mu.Lock()
	if err == nil {
		j.apply(b, seg, start)
	} else {
		j.revert(b)
	}
	b.err = err
	if cap(b.buf) <= spareBufMax && len(j.spare) < 2 {
		j.spare = append(j.spare, b.buf[:0])
	}
	b.buf = nil
	j.mu.Unlock()
	close(b.done)
	j.notifyTest()
	return true
}

func (j *Journal) notifyTest() {
	if j.o.committed != nil {
		select {
		case j.o.committed <- struct{}{}:
		default:
		}
	}
}

// write puts the batch in the active segment and fsyncs it. Only the
// committer calls it.
func (j *Journal) write(b *batch) (*segment, int64, error) {
	seg := j.active
	if seg == nil || seg.broken || seg.size >= j.o.SegmentBytes {
		var err error
		if seg, err = j.rotate(); err != nil {
			return nil, 0, err
		}
	}
	start := seg.size
	for _, op := range b.ops {
		sealFrame(b.buf[op.off:op.off+op.size], start)
	}
	if _, err := seg.f.WriteAt(b.buf, start); err != nil {
		j.abandon(seg, "write", err)
		return nil, 0, fmt.Errorf("capture: write %s: %w", seg.path, err)
	}
	t0 := time.Now()
	err := seg.f.Sync()
	j.m.fsync.Observe(time.Since(t0).Seconds())
	j.mu.Lock()
	j.fsyncs++
	j.mu.Unlock()
	if err != nil {
		j.abandon(seg, "fsync", err)
		return nil, 0, fmt.Errorf("capture: fsync %s: %w", seg.path, err)
	}
	return seg, start, nil
}

// abandon stops appending to seg after a failed write or fsync. After a
// failed fsync the kernel may have dropped the dirty pages and a second fsync
// may report success for data that is not there, so the only safe assumption
// is that everything after the last successful fsync is unknown. The next
// segment's header records the last durable offset (prevEnd), and recovery cuts
// this one there. The next segment is created at once so that the window in
// which a crash could resurrect the failed batch is as short as possible.
func (j *Journal) abandon(seg *segment, what string, err error) {
	j.mu.Lock()
	seg.broken = true
	j.mu.Unlock()
	j.log.Error("capture: segment abandoned after a failed "+what, "file", seg.path, "durable_offset", seg.size, "err", err)
	if _, rerr := j.rotate(); rerr != nil {
		j.log.Error("capture: cannot start a new segment; appends fail until one can be created", "err", rerr)
	}
}

// apply makes a durable batch visible. Ops apply in frame order, the order
// recovery will replay them in.
func (j *Journal) apply(b *batch, seg *segment, start int64) {
	seg.size = start + int64(len(b.buf))
	for i := range b.ops {
		op := &b.ops[i]
		e := op.e
		switch op.kind {
		case frameCapture:
			j.place(e, seg, start+int64(op.off), op.size)
			j.byID[e.id] = e
			if e.scope != "" {
				j.keys[e.scope] = e
				if j.inflightKeys[e.scope] == b {
					delete(j.inflightKeys, e.scope)
				}
			}
			j.setStatus(e, StatusPending)
			j.appended++
			j.m.captured.Inc()
		case frameCarry:
			e.carrying = false
			j.place(e, seg, start+int64(op.off), op.size)
		default:
			if e.op == b {
				e.op = nil
			}
			j.applyOutcome(e, op.kind, &op.out)
		}
	}
}

// applyOutcome applies a state-change frame, live or during recovery.
func (j *Journal) applyOutcome(e *entry, typ byte, o *outcome) {
	switch typ {
	case frameDelivered:
		if e.status != StatusDelivered {
			j.delivered++
		}
		j.setStatus(e, StatusDelivered)
	case frameDead:
		e.attempts = o.attempts
		e.reason = o.reason
		e.deadAt = o.at
		j.setStatus(e, StatusDead)
	case frameRetried:
		e.attempts, e.reason, e.deadAt, e.retryAt, e.sentOK = 0, "", 0, 0, false
		j.setStatus(e, StatusPending)
	case frameDiscarded:
		j.setStatus(e, StatusDiscarded)
	}
}

// revert forgets a failed batch: nothing in it becomes visible.
func (j *Journal) revert(b *batch) {
	for i := range b.ops {
		op := &b.ops[i]
		switch op.kind {
		case frameCapture:
			if s := op.e.scope; s != "" && j.inflightKeys[s] == b {
				delete(j.inflightKeys, s)
			}
		case frameCarry:
			op.e.carrying = false
		default:
			if op.e.op == b {
				op.e.op = nil
			}
		}
	}
}

// place records that e's current frame is at seg/off, moving its liveness
// from the segment it was in.
func (j *Journal) place(e *entry, seg *segment, off int64, size int) {
	if e.seg != nil && isLive(e.status) {
		e.seg.live--
		e.seg.liveBytes -= int64(e.size)
	}
	e.seg, e.off, e.size = seg, off, size
	if isLive(e.status) {
		seg.live++
		seg.liveBytes += int64(size)
	}
	seg.entries = append(seg.entries, e)
	if e.scope != "" {
		if hold := e.captured + int64(j.o.KeyRetention); hold > seg.keyHold {
			seg.keyHold = hold
		}
	}
}

// setStatus moves e between the pending lists, the dead letters and the
// resolved states, keeping every count in step.
func (j *Journal) setStatus(e *entry, s Status) {
	old := e.status
	if old == s {
		return
	}
	switch old {
	case StatusPending:
		e.pool.remove(e)
		j.backlogN.Add(-1)
	case StatusDead:
		delete(j.dead, e)
		j.deadN.Add(-1)
	}
	switch s {
	case StatusPending:
		e.pool.insert(e)
		j.backlogN.Add(1)
		e.pool.signal()
	case StatusDead:
		j.dead[e] = struct{}{}
		j.deadN.Add(1)
	case StatusDiscarded:
		if e.scope != "" && j.keys[e.scope] == e {
			delete(j.keys, e.scope)
		}
	}
	if e.seg != nil {
		switch {
		case isLive(old) && !isLive(s):
			e.seg.live--
			e.seg.liveBytes -= int64(e.size)
		case !isLive(old) && isLive(s):
			e.seg.live++
			e.seg.liveBytes += int64(e.size)
		}
	}
	e.status = s
}
