package capture

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Journal. The zero value of every field but Dir takes the
// default written beside it; out-of-range values make Open fail rather than
// fall back silently.
type Options struct {
	// Dir holds the segment files; created (0700) if missing. Required.
	Dir string
	// SegmentBytes is the size at which the active segment is sealed and a new
	// one started; default 64 MiB, from 1 KiB to 1 GiB. Smaller segments are
	// deleted sooner once delivered; larger ones mean fewer files.
	SegmentBytes int64
	// MaxRecordBytes bounds the encoded size of a record (body, header lines
	// and the other fields); default 1 MiB, at most 64 MiB. Larger records get
	// ErrTooLarge.
	MaxRecordBytes int
	// KeyRetention is how long, at least, an idempotency key is remembered
	// after its record was captured, even once delivered: a client that
	// resubmits within it gets the first capture id. Default 24h. Segments
	// holding a key younger than this are kept.
	KeyRetention time.Duration
	// Logger receives recovery decisions and I/O errors; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// fs replaces the file system in tests (fault injection).
	fs fileSystem
	// committed, when set by a test, receives a token (without blocking)
	// after every batch and every sweep, so that tests wait for events
	// instead of sleeping.
	committed chan struct{}
}

const (
	defaultSegmentBytes   = 64 << 20
	defaultMaxRecordBytes = 1 << 20
	defaultKeyRetention   = 24 * time.Hour
	minSegmentBytes       = 1 << 10
	maxRecordBytesLimit   = 64 << 20
	// sweepInterval is how often the committer looks for segments whose key
	// retention ran out; deletions after deliveries happen at once.
	sweepInterval = time.Second
	// compactChunk bounds the bytes carried forward per sweep, so that one
	// compaction never makes one giant batch that delays captures.
	compactChunk = 4 << 20
	// spareBufMax: batch buffers larger than this are not kept for reuse.
	spareBufMax = 8 << 20
)

// Journal is the durable order capture log. All methods are safe for
// concurrent use. Appends and state changes (MarkDelivered, MarkDead, Retry,
// Discard) are queued into the open batch and written by one committer
// goroutine with one write and one fsync per batch (group commit): each call
// returns only once its batch is on disk. A Journal must be closed with Close.
type Journal struct {
	o     Options
	fs    fileSystem
	log   *slog.Logger
	now   func() time.Time
	nonce uint32
	lockf *os.File
	m     *metrics

	kick    chan struct{} // wakes the committer; capacity 1
	quit    chan struct{} // closed by Close
	done    chan struct{} // closed when the committer has exited
	readers sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	backlogN atomic.Int64 // pending records, for the gauge
	deadN    atomic.Int64 // dead letters, for the gauge

	mu           sync.Mutex
	closing      bool // Close has begun: no new replay
	closed       bool // no more appends or state changes
	open         *batch
	spare        [][]byte
	nextSeq      uint64
	lastMs       uint64
	byID         map[string]*entry
	keys         map[string]*entry // idempotency scope → committed record
	inflightKeys map[string]*batch // idempotency scope → batch still being written
	pools        map[string]*pool
	dead         map[*entry]struct{}
	segs         []*segment // oldest first; the last one is active
	active       *segment   // written only by the committer
	undeleted    []string   // segment files whose removal failed; retried before any other deletion
	appended     uint64
	delivered    uint64
	fsyncs       uint64
	replay       *replayer
}

// entry is the in-memory state of one captured record; the record itself stays
// on disk and is read back when needed, so a large backlog costs memory in
// proportion to its count, not its bodies.
type entry struct {
	id       string
	seq      uint64
	pool     *pool
	route    string
	scope    string // idempotency scope, "" without key
	fp       uint64 // request fingerprint, with a key only
	captured int64  // unix ns

	seg  *segment // where the current capture or carry frame is
	off  int64
	size int

	status   Status
	attempts int
	reason   string
	deadAt   int64

	op       *batch // a state change queued and not yet written
	carrying bool   // a carry frame is queued

	prev, next *entry // the pool's pending list, in capture order

	// replay bookkeeping, under Journal.mu
	retryAt  int64 // unix ns before which the record is not resent
	sentOK   bool  // a backend answered 2xx but MarkDelivered failed
	inflight bool  // a replay send (and its outcome) is in progress
}

func isLive(s Status) bool { return s == StatusPending || s == StatusDead }

// pool holds one pool's pending records in capture (sequence) order and its
// replay controls.
type pool struct {
	name       string
	head, tail *entry
	n          int
	paused     bool
	notify     chan struct{} // capacity 1: new pending record, resume
}

func (p *pool) signal() {
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// insert keeps the list sorted by sequence. New captures have the highest
// sequence, so the walk from the tail stops at once; only a retried dead
// letter walks further.
func (p *pool) insert(e *entry) {
	at := p.tail
	for at != nil && at.seq > e.seq {
		at = at.prev
	}
	e.prev = at
	if at == nil {
		e.next = p.head
		p.head = e
	} else {
		e.next = at.next
		at.next = e
	}
	if e.next == nil {
		p.tail = e
	} else {
		e.next.prev = e
	}
	p.n++
}

func (p *pool) remove(e *entry) {
	if e.prev == nil {
		p.head = e.next
	} else {
		e.prev.next = e.next
	}
	if e.next == nil {
		p.tail = e.prev
	} else {
		e.next.prev = e.prev
	}
	e.prev, e.next = nil, nil
	p.n--
}

// batch is one group commit: the encoded frames and what to do in memory once
// they are durable.
type batch struct {
	buf  []byte
	ops  []op
	done chan struct{} // closed once written (or failed); err is then final
	err  error
}

type op struct {
	kind byte
	off  int // frame offset in buf
	size int // frame size
	e    *entry
	out  outcome
}

// Stats is a snapshot of the journal's state, owned by the caller.
type Stats struct {
	// Backlog is the number of pending records per pool (pools with none are
	// left out); Pending is their sum.
	Backlog map[string]int
	Pending int
	// DeadLetters is the number of dead letters awaiting Retry or Discard.
	DeadLetters int
	// Appended and Delivered count records captured and marked delivered
	// since Open; Fsyncs counts batch fsyncs since Open (Appended/Fsyncs is the
	// group commit factor).
	Appended, Delivered, Fsyncs uint64
	// Bytes is the size of the segment files; Segments their number.
	Bytes    int64
	Segments int
}

// Open opens or creates the journal in o.Dir and recovers its state: it scans
// every segment in order, verifies each frame's length and CRC, truncates a
// torn tail of the last segment (logging file and offset), and refuses to open
// (with a *CorruptError) when damage lies anywhere else. It takes an exclusive
// lock on the directory until Close.
func Open(o Options) (*Journal, error) {
	if err := o.normalize(); err != nil {
		return nil, err
	}
	_, statErr := os.Stat(o.Dir)
	if err := o.fs.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	if os.IsNotExist(statErr) {
		// A new directory's own entry must be durable too, or a power cut
		// could take the whole journal with it.
		if err := o.fs.SyncDir(filepath.Dir(filepath.Clean(o.Dir))); err != nil {
			return nil, fmt.Errorf("capture: %w", err)
		}
	}
	lockf, err := lockDir(o.Dir)
	if err != nil {
		return nil, err
	}
	j := &Journal{
		o:            o,
		fs:           o.fs,
		log:          o.Logger,
		now:          o.Now,
		lockf:        lockf,
		kick:         make(chan struct{}, 1),
		quit:         make(chan struct{}),
		done:         make(chan struct{}),
		nextSeq:      1,
		byID:         make(map[string]*entry),
		keys:         make(map[string]*entry),
		inflightKeys: make(map[string]*batch),
		pools:        make(map[string]*pool),
		dead:         make(map[*entry]struct{}),
	}
	var nb [4]byte
	if _, err := rand.Read(nb[:]); err != nil {
		lockf.Close()
		return nil, fmt.Errorf("capture: nonce: %w", err)
	}
	j.nonce = binary.LittleEndian.Uint32(nb[:]) & (1<<20 - 1)
	j.m = newMetrics(j)
	j.open = j.newBatchLocked()
	fail := func(err error) (*Journal, error) {
		for _, s := range j.segs {
			s.f.Close()
		}
		lockf.Close()
		return nil, err
	}
	if err := j.recover(); err != nil {
		return fail(err)
	}
	if j.active == nil {
		// Create the first segment now, so that an unusable directory fails
		// Open instead of the first order.
		if _, err := j.rotate(); err != nil {
			return fail(err)
		}
	}
	go j.run()
	return j, nil
}

func (o *Options) normalize() error {
	if o.Dir == "" {
		return fmt.Errorf("%w: Dir is required", ErrInvalidOptions)
	}
	switch {
	case o.SegmentBytes == 0:
		o.SegmentBytes = defaultSegmentBytes
	case o.SegmentBytes < minSegmentBytes || o.SegmentBytes > maxSegmentBytes:
		return fmt.Errorf("%w: SegmentBytes %d not in [%d, %d]", ErrInvalidOptions, o.SegmentBytes, minSegmentBytes, maxSegmentBytes)
	}
	switch {
	case o.MaxRecordBytes == 0:
		o.MaxRecordBytes = defaultMaxRecordBytes
	case o.MaxRecordBytes < 0 || o.MaxRecordBytes > maxRecordBytesLimit:
		return fmt.Errorf("%w: MaxRecordBytes %d not in [1, %d]", ErrInvalidOptions, o.MaxRecordBytes, maxRecordBytesLimit)
	}
	switch {
	case o.KeyRetention == 0:
		o.KeyRetention = defaultKeyRetention
	case o.KeyRetention < 0:
		return fmt.Errorf("%w: KeyRetention %v is negative", ErrInvalidOptions, o.KeyRetention)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.fs == nil {
		o.fs = osFS{}
	}
	return nil
}

func (j *Journal) newBatchLocked() *batch {
	b := &batch{done: make(chan struct{})}
	if n := len(j.spare); n > 0 {
		b.buf = j.spare[n-1]
		j.spare = j.spare[:n-1]
	}
	return b
}

// wake tells the committer there is work; it never blocks.
func (j *Journal) wake() {
	select {
	case j.kick <- struct{}{}:
	default:
	}
}

func (j *Journal) poolLocked(name string) *pool {
	p := j.pools[name]
	if p == nil {
		p = &pool{name: name, notify: make(chan struct{}, 1)}
		j.pools[name] = p
		if j.replay != nil {
			j.replay.spawnLocked(p)
		}
	}
	return p
}

// Append captures r durably. It returns once the record is fsynced together
// with whatever other appends and state changes shared its batch; only then may
// the proxy answer 202. On success it also sets r.ID (and r.Time when zero).
//
// When r.IdemKey is set and the same route already holds a record with that key
// (captured within KeyRetention, or still undelivered, and not discarded),
// Append writes nothing and returns the first record's id with dup true; if the
// first request differed in method, target or body it returns ErrKeyConflict
// instead. A concurrent Append with the same key waits for the first one's
// outcome.
//
// Any write or fsync error is returned (the proxy answers 503) and the record is
// never reported as pending, now or after a restart, except in one window
// documented in docs/order-capture.md (a crash between the failure and the
// creation of the next segment). After such an error the segment is abandoned
// at its last durable offset and the next batch starts a new segment, so a
// transient fault (disk full, then space freed) heals without a restart.
//
// Append is safe for concurrent use and does not retain r.
func (j *Journal) Append(r *Record) (id string, dup bool, err error) {
	if r == nil || r.Pool == "" {
		return "", false, fmt.Errorf("%w: record without pool", ErrInvalidOptions)
	}
	var scope string
	var fp uint64
	if r.IdemKey != "" {
		scope = keyScope(r.Route, r.IdemKey)
		fp = fingerprint(r.Method, r.Target, r.Body)
	}
	now := j.now()
	t := r.Time
	if t.IsZero() {
		t = now
	}
	tn := t.UnixNano()
	// The bound uses the largest sequence number so that whether a record
	// fits never depends on when it arrives.
	if n := capturePayloadLen(r, math.MaxUint64, idLen, tn); n > j.o.MaxRecordBytes {
		j.m.appendErrors.Inc()
		return "", false, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, j.o.MaxRecordBytes)
	}

	j.mu.Lock()
	for {
		if j.closed {
			j.mu.Unlock()
			return "", false, ErrClosed
		}
		if scope == "" {
			break
		}
		if e := j.keys[scope]; e != nil {
			first, same := e.id, e.fp == fp
			j.mu.Unlock()
			if !same {
				return "", false, fmt.Errorf("%w: key %q first used by %s", ErrKeyConflict, r.IdemKey, first)
			}
			r.ID = first
			return first, true, nil
		}
		b := j.inflightKeys[scope]
		if b == nil {
			break
		}
		// The first request with this key is being written: its outcome
		// decides whether this one is a duplicate or must be captured.
		j.mu.Unlock()
		<-b.done
		j.mu.Lock()
	}
	seq := j.nextSeq
	j.nextSeq++
	ms := uint64(now.UnixMilli())
	if ms < j.lastMs {
		ms = j.lastMs // ids stay sorted when the clock steps back
	}
	j.lastMs = ms
	id = makeID(ms, j.nonce, seq)
	e := &entry{
		id:       id,
		seq:      seq,
		pool:     j.poolLocked(r.Pool),
		route:    r.Route,
		scope:    scope,
		fp:       fp,
		captured: tn,
	}
	b := j.open
	off := len(b.buf)
	b.buf = beginFrame(b.buf, frameCapture, capturePayloadLen(r, seq, idLen, tn))
	b.buf = appendCapture(b.buf, r, seq, id, tn)
	b.ops = append(b.ops, op{kind: frameCapture, off: off, size: len(b.buf) - off, e: e})
	if scope != "" {
		j.inflightKeys[scope] = b
	}
	j.mu.Unlock()
	j.wake()

	<-b.done
	if b.err != nil {
		j.m.appendErrors.Inc()
		return "", false, b.err
	}
	r.ID = id
	if r.Time.IsZero() {
		r.Time = t
	}
	return id, false, nil
}

// MarkDelivered records durably that a backend accepted record id (2xx). It is
// a no-op for a record already delivered and ErrState for a dead letter or a
// discarded record. Safe for concurrent use.
func (j *Journal) MarkDelivered(id string) error {
	return j.change(id, frameDelivered, "")
}

// MarkDead moves pending record id to the dead letters durably, with reason.
// Safe for concurrent use.
func (j *Journal) MarkDead(id, reason string) error {
	return j.change(id, frameDead, reason)
}

// Retry puts dead letter id back in its pool's backlog, at its place in
// capture order, durably; its attempts start again from zero. Safe for
// concurrent use.
func (j *Journal) Retry(id string) error {
	return j.change(id, frameRetried, "")
}

// Discard drops dead letter id durably: it is never replayed, its idempotency
// key is forgotten (a resubmission is captured anew), and its segment may be
// deleted. Discarding a discarded record is a no-op. Safe for concurrent use.
func (j *Journal) Discard(id string) error {
	return j.change(id, frameDiscarded, "")
}

// change queues a state-change frame for id and waits until it is durable.
func (j *Journal) change(id string, typ byte, reason string) error {
	j.mu.Lock()
	for {
		if j.closed {
			j.mu.Unlock()
			return ErrClosed
		}
		e := j.byID[id]
		if e == nil {
			j.mu.Unlock()
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		if e.op != nil {
			// One change per record at a time, so that the state a change
			// was validated against is the state it applies to.
			b := e.op
			j.mu.Unlock()
			<-b.done
			j.mu.Lock()
			continue
		}
		var ok bool
		switch typ {
		case frameDelivered:
			if e.status == StatusDelivered {
				j.mu.Unlock()
				return nil
			}
			ok = e.status == StatusPending
		case frameDead:
			ok = e.status == StatusPending
		case frameRetried:
			ok = e.status == StatusDead
		case frameDiscarded:
			if e.status == StatusDiscarded {
				j.mu.Unlock()
				return nil
			}
			ok = e.status == StatusDead
		}
		if !ok {
			st := e.status
			j.mu.Unlock()
			return fmt.Errorf("%w: %s is %s", ErrState, id, st)
		}
		o := outcome{id: id, at: j.now().UnixNano(), attempts: e.attempts, reason: reason}
		b := j.open
		off := len(b.buf)
		b.buf = beginFrame(b.buf, typ, outcomeLen(typ, &o))
		b.buf = appendOutcome(b.buf, typ, &o)
		b.ops = append(b.ops, op{kind: typ, off: off, size: len(b.buf) - off, e: e, out: o})
		e.op = b
		j.mu.Unlock()
		j.wake()
		<-b.done
		return b.err
	}
}

// Close stops replay (cancelling sends in flight, whose records stay pending,
// and waiting for its goroutines), writes what was queued,
// closes the files and releases the directory lock.
// Appends and state changes after Close return ErrClosed. Close is idempotent.
func (j *Journal) Close() error {
	j.closeOnce.Do(func() { j.closeErr = j.close() })
	return j.closeErr
}

func (j *Journal) close() error {
	// Replay stops first, while state changes are still accepted, so that a
	// send that succeeded is marked delivered instead of being sent again
	// after the restart.
	j.mu.Lock()
	j.closing = true
	rep := j.replay
	j.mu.Unlock()
	if rep != nil {
		rep.stop()
	}
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	close(j.quit)
	<-j.done
	j.readers.Wait()
	var err error
	for _, s := range j.segs {
		if cerr := s.f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("capture: close %s: %w", s.path, cerr)
		}
	}
	j.lockf.Close()
	return err
}
