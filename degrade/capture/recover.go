package capture

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// recover rebuilds the journal's state from its segments (Open, before the
// committer starts).
//
// Policy, in the order it is applied:
//
//  1. Segment files are taken in number order; a gap in the numbers means a
//     file was lost and Open fails, because deletion is oldest-first and
//     never leaves one.
//  2. A header that does not verify fails Open, except on the last segment
//     when the file is no longer than a header: that is a crash while the
//     segment was being created (nothing was ever acknowledged from it), and
//     the file is removed.
//  3. When segment n+1 records prevEnd for segment n (the journal moved on
//     after a write or fsync error), segment n is cut there: what follows
//     belongs to appends that failed and were answered 503.
//  4. Every frame is verified (length, CRC, batch offset). A damaged frame in
//     any segment but the last fails Open with a *CorruptError: that data was
//     fsynced before a later segment was created, so it is corruption, not a
//     torn write, and dropping what follows would lose confirmed orders.
//  5. In the last segment, a damaged frame starts a torn tail, and the file is
//     truncated there (logged with file and offset), unless an intact frame
//     that starts a later batch follows it: a batch is written only after the
//     previous one was fsynced, so the damage lies in acknowledged data and
//     Open fails instead. Intact frames of the same (last, unacknowledged)
//     batch after the damage are dropped with it. (Were the first frame of
//     every later batch damaged too, the damage would be taken for a torn
//     tail; that needs independent damage in several places at once.)
func (j *Journal) recover() error {
	des, err := j.fs.ReadDir(j.o.Dir)
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	type segFile struct {
		num  uint64
		path string
	}
	var files []segFile
	for _, de := range des {
		if n, ok := parseSegName(de.Name()); ok && de.Type().IsRegular() {
			files = append(files, segFile{n, filepath.Join(j.o.Dir, de.Name())})
		}
	}
	sort.Slice(files, func(a, b int) bool { return files[a].num < files[b].num })

	var hdrs []segHeader
	var sizes []int64
	for i, sf := range files {
		f, err := j.fs.OpenFile(sf.path, os.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("capture: %w", err)
		}
		size, hdr, herr := readHeader(f)
		if herr != nil && !errors.Is(herr, errBadHeader) {
			f.Close()
			return fmt.Errorf("capture: %s: %w", sf.path, herr)
		}
		if herr != nil {
			if i == len(files)-1 && size <= segHeaderSize {
				f.Close()
				j.log.Warn("capture: removing a segment whose creation was interrupted", "file", sf.path, "bytes", size)
				if err := j.fs.Remove(sf.path); err != nil {
					return fmt.Errorf("capture: %w", err)
				}
				if err := j.fs.SyncDir(j.o.Dir); err != nil {
					return fmt.Errorf("capture: %w", err)
				}
				continue
			}
			f.Close()
			return &CorruptError{File: sf.path, Offset: 0, Reason: herr.Error()}
		}
		seg := &segment{num: sf.num, path: sf.path, f: f, size: size}
		j.segs = append(j.segs, seg)
		if hdr.num != sf.num {
			return &CorruptError{File: sf.path, Offset: 16, Reason: fmt.Sprintf("header says segment %d", hdr.num)}
		}
		if n := len(j.segs); n > 1 && j.segs[n-2].num+1 != sf.num {
			return &CorruptError{File: sf.path, Offset: 0, Reason: fmt.Sprintf("segment %s is missing", segName(j.segs[n-2].num+1))}
		}
		hdrs = append(hdrs, hdr)
		sizes = append(sizes, size)
	}

	var rs recState
	var buf []byte
	for i, seg := range j.segs {
		last := i == len(j.segs)-1
		limit := sizes[i]
		if !last {
			if pe := int64(hdrs[i+1].prevEnd); pe != 0 {
				if pe < segHeaderSize || pe > limit {
					return &CorruptError{File: seg.path, Offset: limit, Reason: fmt.Sprintf("the next segment records %d valid bytes here, the file has %d", pe, limit)}
				}
				if pe < limit {
					if err := j.truncate(seg, pe, limit, "dropping the failed appends after the last durable offset of an abandoned segment"); err != nil {
						return err
					}
					limit = pe
				}
			}
		}
		if int64(cap(buf)) < limit {
			buf = make([]byte, limit)
		}
		buf = buf[:limit]
		if _, err := seg.f.ReadAt(buf, 0); err != nil && err != io.EOF {
			return fmt.Errorf("capture: read %s: %w", seg.path, err)
		}
		end, err := j.scan(seg, buf, last, &rs)
		if err != nil {
			return err
		}
		if end < limit {
			if err := j.truncate(seg, end, limit, "truncating a torn tail"); err != nil {
				return err
			}
		}
		seg.size = end
	}
	if n := len(j.segs); n > 0 {
		j.active = j.segs[n-1]
	}
	if rs.maxSeq >= j.nextSeq {
		j.nextSeq = rs.maxSeq + 1
	}
	// New ids get a later millisecond than any recovered one, so that ids
	// keep sorting in capture order across the restart whatever the nonce.
	j.lastMs = rs.maxMs + 1
	// Counters in Stats are "since Open"; recovery is not activity.
	j.delivered = 0
	if len(j.segs) > 0 {
		j.log.Info("capture: journal recovered", "dir", j.o.Dir, "segments", len(j.segs),
			"pending", j.backlogN.Load(), "dead_letters", j.deadN.Load())
	}
	return nil
}

func readHeader(f file) (int64, segHeader, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, segHeader{}, err
	}
	size := st.Size()
	b := make([]byte, segHeaderSize)
	n, err := f.ReadAt(b, 0)
	if err != nil && err != io.EOF {
		return size, segHeader{}, err
	}
	h, err := decodeSegHeader(b[:n])
	return size, h, err
}

func (j *Journal) truncate(seg *segment, at, size int64, why string) error {
	if err := seg.f.Truncate(at); err != nil {
		return fmt.Errorf("capture: truncate %s: %w", seg.path, err)
	}
	if err := seg.f.Sync(); err != nil {
		return fmt.Errorf("capture: fsync %s: %w", seg.path, err)
	}
	j.log.Warn("capture: "+why, "file", seg.path, "offset", at, "dropped_bytes", size-at)
	return nil
}

type recState struct {
	maxSeq uint64
	maxMs  uint64
}

// scan verifies and loads the frames of one segment, b being the whole file
// up to its limit, and returns where its valid data ends.
func (j *Journal) scan(seg *segment, b []byte, last bool, rs *recState) (int64, error) {
	p := segHeaderSize
	for p < len(b) {
		n, st := checkFrame(b, p)
		if st == frameBad {
			break
		}
		if st == frameUnsupported {
			return 0, fmt.Errorf("capture: %s at offset %d: %w: frame type %d, payload version %d", seg.path, p, errUnsupported, b[p+8], b[p+9])
		}
		if err := j.load(seg, int64(p), b[p:p+n], rs); err != nil {
			return 0, &CorruptError{File: seg.path, Offset: int64(p), Reason: err.Error()}
		}
		p += n
	}
	if p == len(b) {
		return int64(p), nil
	}
	if !last {
		return 0, &CorruptError{File: seg.path, Offset: int64(p), Reason: "damaged frame in a sealed segment"}
	}
	// Does a later batch follow the damage? A batch's first frame records
	// its own offset as the batch offset, so only offsets q whose 4 bytes at
	// q+12 read q are candidates, and only those pay for a CRC. The damaged
	// length cannot be trusted to find the next frame, and checking every
	// offset with a CRC over whatever length it claims would be quadratic in
	// the tail, with lengths taken from client-chosen bodies. An intact frame
	// of the same batch (batch offset at or before the damage) is no evidence
	// either way and is dropped with the torn tail.
	for q := p + 1; q+frameHeaderSize <= len(b); q++ {
		if int(le32(b[q+12:])) != q {
			continue
		}
		if _, st := checkFrame(b, q); st != frameBad {
			return 0, &CorruptError{File: seg.path, Offset: int64(p),
				Reason: fmt.Sprintf("damaged frame followed at offset %d by an intact frame of a later commit", q)}
		}
	}
	return int64(p), nil
}

// load applies one verified frame to the state being rebuilt.
func (j *Journal) load(seg *segment, off int64, f []byte, rs *recState) error {
	typ, payload := f[8], f[frameHeaderSize:]
	switch typ {
	case frameCapture, frameCarry:
		state, o, cp := carryPending, outcome{}, payload
		if typ == frameCarry {
			var err error
			if state, o, cp, err = decodeCarry(payload); err != nil {
				return err
			}
		}
		seq, r, err := decodeCapture(cp)
		if err != nil {
			return err
		}
		e := j.byID[r.ID]
		switch {
		case e == nil:
			e = &entry{id: r.ID, seq: seq, pool: j.poolLocked(r.Pool), route: r.Route, captured: r.Time.UnixNano()}
			if r.IdemKey != "" {
				e.scope = keyScope(r.Route, r.IdemKey)
				e.fp = fingerprint(r.Method, r.Target, r.Body)
			}
			j.byID[r.ID] = e
		case typ == frameCapture:
			return fmt.Errorf("record %s captured twice", r.ID)
		}
		j.place(e, seg, off, len(f))
		e.attempts, e.reason, e.deadAt = o.attempts, o.reason, o.at
		if state == carryDead {
			j.setStatus(e, StatusDead)
		} else {
			j.setStatus(e, StatusPending)
		}
		if e.scope != "" {
			j.keys[e.scope] = e
		}
		rs.maxSeq = max(rs.maxSeq, seq)
		rs.maxMs = max(rs.maxMs, idMillis(r.ID))
	default:
		o, err := decodeOutcome(typ, payload)
		if err != nil {
			return err
		}
		// An unknown id is a record whose segment was deleted once it was
		// resolved; the frame has nothing left to change.
		if e := j.byID[o.id]; e != nil {
			j.applyOutcome(e, typ, &o)
		}
	}
	return nil
}
