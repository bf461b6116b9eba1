package capture

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strconv"
	"time"
)

// Record is one captured request. The proxy fills every field but ID; Append
// assigns ID and, when Time is zero, Time. Append copies what it needs and does
// not retain the Record, but it writes r.ID and r.Time, so a Record must not be
// read or appended by another goroutine during Append. Records returned by
// Pending and Get are fresh copies owned by the caller.
type Record struct {
	// ID is assigned by Append: 21 characters of [0-9a-v] (base32hex), unique
	// per journal and across floodgate instances, and sorting in capture order
	// within one journal. The replayer sends it as Floodgate-Capture-Id, and as
	// Idempotency-Key when the client sent no key of its own.
	ID string
	// Pool is the pool the record is replayed to; required.
	Pool string
	// Route is the route that captured it; it also scopes IdemKey.
	Route string
	// Method and Target are the request line; Target is path?query as
	// received.
	Method, Target string
	// Header holds the end-to-end header lines as received,
	// "Name: value\r\n..." (no hop-by-hop headers).
	Header []byte
	// Body is the request body.
	Body []byte
	// Client is the client address.
	Client string
	// Time is when the request was received.
	Time time.Time
	// IdemKey is the client's Idempotency-Key (or the configured header), ""
	// if none.
	IdemKey string
}

// Status is the state of a captured record; the zero value is not a state.
type Status int

// Record states. A record is pending until a backend answers 2xx (Delivered)
// or it is dead-lettered (Dead); a dead letter goes back to Pending with Retry
// or ends Discarded.
const (
	StatusPending Status = iota + 1
	StatusDelivered
	StatusDead
	StatusDiscarded
)

// String returns the lowercase name of the status.
func (s Status) String() string {
	switch s {
	case StatusPending:
		return "pending"
	case StatusDelivered:
		return "delivered"
	case StatusDead:
		return "dead"
	case StatusDiscarded:
		return "discarded"
	}
	return "unknown"
}

// DeadLetter describes a record that replay gave up on. It is a snapshot
// value, owned by the caller.
type DeadLetter struct {
	ID, Pool, Route string
	// Reason says why, e.g. "backend answered 422" or "backend answered 503
	// after 8 attempts".
	Reason string
	// Attempts is how many times the record was sent before it was
	// dead-lettered.
	Attempts int
	// Time is when it was dead-lettered; Captured when it was captured.
	Time, Captured time.Time
}

// Errors returned by the journal; test with errors.Is.
var (
	// ErrTooLarge: the encoded record exceeds Options.MaxRecordBytes. The
	// proxy answers 413.
	ErrTooLarge = errors.New("capture: record too large")
	// ErrKeyConflict: the idempotency key was already used, within its route,
	// for a request with a different method, target or body. The proxy
	// answers 422, as draft-ietf-httpapi-idempotency-key-header advises,
	// rather than confirm an order it would not deliver.
	ErrKeyConflict = errors.New("capture: idempotency key reused for a different request")
	// ErrClosed: the journal was closed.
	ErrClosed = errors.New("capture: journal closed")
	// ErrNotFound: no record with that id (it never existed, or it was
	// resolved and its segment deleted).
	ErrNotFound = errors.New("capture: no such record")
	// ErrState: the record is not in a state that allows the operation, e.g.
	// Retry of a record that is not a dead letter.
	ErrState = errors.New("capture: record not in the required state")
	// ErrCorrupt: recovery found damaged data that is not a torn tail. The
	// error is a *CorruptError naming the file and offset.
	ErrCorrupt = errors.New("capture: journal corrupt")
	// ErrInvalidOptions: unusable Options or Record.
	ErrInvalidOptions = errors.New("capture: invalid options")
	// ErrLocked: another process holds the journal directory.
	ErrLocked = errors.New("capture: journal directory in use by another process")
)

// CorruptError reports damaged journal data that recovery refuses to drop:
// File and Offset locate the first damaged byte range. errors.Is(err,
// ErrCorrupt) holds.
type CorruptError struct {
	File   string
	Offset int64
	Reason string
}

// Error names the file, the offset and what is wrong.
func (e *CorruptError) Error() string {
	return "capture: journal corrupt: " + e.File + " at offset " + strconv.FormatInt(e.Offset, 10) + ": " + e.Reason
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// IDs: 9 base32hex digits of Unix milliseconds (45 bits, until year 3084), 4 of
// a random per-Open nonce (20 bits: two floodgate instances capturing in the
// same millisecond with the same sequence number still differ), 8 of the
// journal's sequence number (40 bits). base32hex keeps ASCII order equal to
// numeric order, and Open makes the millisecond part of new ids greater than
// any recovered one, so ids sort in capture order within a journal.
const (
	idAlphabet = "0123456789abcdefghijklmnopqrstuv"
	idLen      = 21
)

func makeID(ms uint64, nonce uint32, seq uint64) string {
	var b [idLen]byte
	putBase32(b[0:9], ms)
	putBase32(b[9:13], uint64(nonce))
	putBase32(b[13:21], seq)
	return string(b[:])
}

func putBase32(b []byte, v uint64) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = idAlphabet[v&31]
		v >>= 5
	}
}

// idMillis returns the millisecond part of an id, 0 if it is not one of ours.
func idMillis(id string) uint64 {
	if len(id) != idLen {
		return 0
	}
	var v uint64
	for i := 0; i < 9; i++ {
		c := id[i]
		switch {
		case c >= '0' && c <= '9':
			v = v<<5 | uint64(c-'0')
		case c >= 'a' && c <= 'v':
			v = v<<5 | uint64(c-'a'+10)
		default:
			return 0
		}
	}
	return v
}

// fingerprint identifies the request an idempotency key was first used for.
// SHA-256 rather than a CRC because a client may choose both the key and the
// body: it must not be able to make a different request look like the first.
func fingerprint(method, target string, body []byte) uint64 {
	h := sha256.New()
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(method)))
	h.Write(n[:])
	h.Write([]byte(method))
	binary.LittleEndian.PutUint64(n[:], uint64(len(target)))
	h.Write(n[:])
	h.Write([]byte(target))
	h.Write(body)
	var sum [sha256.Size]byte
	return binary.LittleEndian.Uint64(h.Sum(sum[:0]))
}

// keyScope is the idempotency index key: keys are scoped by route, as a
// resource's keys are in the IETF draft, so that two routes (or two shops
// behind one floodgate) cannot collide on a client's "1".
func keyScope(route, key string) string { return route + "\x00" + key }

func unixNano(t int64) time.Time { return time.Unix(0, t).UTC() }
