package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// On-disk format, version 1. Every integer is little-endian.
//
// A journal is a directory of segment files named seg-NNNNNNNN.log, numbered
// from 1 without gaps except where old segments were deleted. A segment starts
// with a 32-byte header:
//
//	[0:8]   magic "FGCAPSEG"
//	[8:10]  format version (1)
//	[10:12] zero
//	[12:16] CRC32C (Castagnoli) of bytes [0:12] and [16:32]
//	[16:24] segment number, equal to the number in the file name
//	[24:32] prevEnd: how many bytes of segment number-1 are valid, or 0 when
//	        the previous segment ended cleanly or does not exist
//
// prevEnd is how a write or fsync failure is made safe: the failed segment is
// abandoned at its last durable offset and the next segment records that
// offset, so recovery drops whatever the failed write may have left behind it
// instead of replaying orders whose client was told 503.
//
// Frames follow the header back to back:
//
//	[0:4]   payload length N (1 ≤ N ≤ maxPayload)
//	[4:8]   CRC32C of bytes [0:4] then [8:16+N] (everything but itself)
//	[8]     frame type (frameCapture ... frameCarry)
//	[9]     payload version (1)
//	[10:12] zero
//	[12:16] offset in this segment of the first frame of the group commit
//	        (batch) this frame was written in
//	[16:]   payload
//
// The batch offset is what tells a torn tail from corruption: only the last
// batch of the last segment can be torn, because a batch is written only after
// the previous one was fsynced. A damaged frame followed by an intact frame
// that starts a later batch (its batch offset is its own offset) therefore
// lies in data that was fsynced and acknowledged, and recovery refuses to drop
// it.
//
// Payloads are built from uvarints, varints and byte strings (a uvarint length
// followed by the bytes):
//
//	capture:   seq, id, time (unix ns, varint), pool, route, method, target,
//	           client, idempotency key, header, body
//	delivered, retried, discarded: id, time
//	dead:      id, time, attempts, reason
//	carry:     state (1 pending, 2 dead), attempts, dead time, reason, then a
//	           capture payload; a live record copied forward so that the old
//	           segment holding it can be deleted (see compaction in segment.go)
const (
	segMagic        = "FGCAPSEG"
	formatVersion   = 1
	payloadVersion  = 1
	segHeaderSize   = 32
	frameHeaderSize = 16
	// maxPayload bounds a frame whatever MaxRecordBytes says, so that recovery
	// can reject an implausible length without trusting the options of the
	// process that wrote it.
	maxPayload = 1 << 28
	// maxSegmentBytes keeps batch offsets within the 32 bits of the frame
	// header with room for the batch that crosses the limit.
	maxSegmentBytes = 1 << 30
)

// Frame types. The values are part of the format: never renumber them.
const (
	frameCapture   byte = 1
	frameDelivered byte = 2
	frameDead      byte = 3
	frameRetried   byte = 4
	frameDiscarded byte = 5
	frameCarry     byte = 6
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segName returns the file name of segment n.
func segName(n uint64) string {
	return fmt.Sprintf("seg-%08d.log", n)
}

// parseSegName returns the number of a segment file name, or false when the
// name is not one.
func parseSegName(name string) (uint64, bool) {
	s, ok := strings.CutPrefix(name, "seg-")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, ".log")
	if !ok || s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, false
	}
	return n, true
}

// segHeader is the decoded segment header.
type segHeader struct {
	num     uint64
	prevEnd uint64
}

func (h segHeader) encode() []byte {
	b := make([]byte, segHeaderSize)
	copy(b, segMagic)
	binary.LittleEndian.PutUint16(b[8:], formatVersion)
	binary.LittleEndian.PutUint64(b[16:], h.num)
	binary.LittleEndian.PutUint64(b[24:], h.prevEnd)
	binary.LittleEndian.PutUint32(b[12:], headerCRC(b))
	return b
}

func headerCRC(b []byte) uint32 {
	c := crc32.Update(0, castagnoli, b[0:12])
	return crc32.Update(c, castagnoli, b[16:segHeaderSize])
}

var errBadHeader = errors.New("bad segment header")

func decodeSegHeader(b []byte) (segHeader, error) {
	if len(b) < segHeaderSize {
		return segHeader{}, fmt.Errorf("%w: %d bytes", errBadHeader, len(b))
	}
	if string(b[:8]) != segMagic {
		return segHeader{}, fmt.Errorf("%w: magic %q", errBadHeader, b[:8])
	}
	if binary.LittleEndian.Uint32(b[12:]) != headerCRC(b) {
		return segHeader{}, fmt.Errorf("%w: checksum mismatch", errBadHeader)
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != formatVersion {
		return segHeader{}, fmt.Errorf("%w: format version %d, this floodgate reads %d", errUnsupported, v, formatVersion)
	}
	return segHeader{
		num:     binary.LittleEndian.Uint64(b[16:]),
		prevEnd: binary.LittleEndian.Uint64(b[24:]),
	}, nil
}

var errUnsupported = errors.New("unsupported journal format")

// frameStatus is the verdict of checkFrame.
type frameStatus int

const (
	frameOK          frameStatus = iota
	frameBad                     // torn or corrupt
	frameUnsupported             // intact but from a newer format
)

// checkFrame verifies the frame starting at b[p:] and returns its total size.
// It never trusts a length before checking it against what is left.
func checkFrame(b []byte, p int) (int, frameStatus) {
	if len(b)-p < frameHeaderSize {
		return 0, frameBad
	}
	h := b[p : p+frameHeaderSize]
	n := int(binary.LittleEndian.Uint32(h))
	if n == 0 || n > maxPayload || n > len(b)-p-frameHeaderSize {
		return 0, frameBad
	}
	if h[10] != 0 || h[11] != 0 {
		return 0, frameBad
	}
	total := frameHeaderSize + n
	if frameCRC(b[p:p+total]) != binary.LittleEndian.Uint32(h[4:]) {
		return 0, frameBad
	}
	bs := binary.LittleEndian.Uint32(h[12:])
	if int64(bs) > int64(p) || bs < segHeaderSize {
		return 0, frameBad
	}
	if h[9] != payloadVersion || h[8] < frameCapture || h[8] > frameCarry {
		return total, frameUnsupported
	}
	return total, frameOK
}

// frameCRC computes the checksum of a complete frame, skipping its CRC field.
func frameCRC(f []byte) uint32 {
	c := crc32.Update(0, castagnoli, f[0:4])
	return crc32.Update(c, castagnoli, f[8:])
}

func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

// beginFrame appends a frame header for a payload of n bytes; the CRC and the
// batch offset are filled in by sealFrame when the batch is written, because
// only then is the file offset known.
func beginFrame(b []byte, typ byte, n int) []byte {
	var h [frameHeaderSize]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(n))
	h[8] = typ
	h[9] = payloadVersion
	return append(b, h[:]...)
}

// sealFrame sets the batch offset and the CRC of the frame f.
func sealFrame(f []byte, batchStart int64) {
	binary.LittleEndian.PutUint32(f[12:], uint32(batchStart))
	binary.LittleEndian.PutUint32(f[4:], frameCRC(f))
}

// Payload encoding helpers.

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func varintLen(v int64) int {
	u := uint64(v) << 1
	if v < 0 {
		u = ^u
	}
	return uvarintLen(u)
}

func strLen(n int) int { return uvarintLen(uint64(n)) + n }

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// capturePayloadLen is the encoded size of a capture payload.
func capturePayloadLen(r *Record, seq uint64, idLen int, t int64) int {
	return uvarintLen(seq) + strLen(idLen) + varintLen(t) +
		strLen(len(r.Pool)) + strLen(len(r.Route)) + strLen(len(r.Method)) +
		strLen(len(r.Target)) + strLen(len(r.Client)) + strLen(len(r.IdemKey)) +
		strLen(len(r.Header)) + strLen(len(r.Body))
}

func appendCapture(b []byte, r *Record, seq uint64, id string, t int64) []byte {
	b = binary.AppendUvarint(b, seq)
	b = appendStr(b, id)
	b = binary.AppendVarint(b, t)
	b = appendStr(b, r.Pool)
	b = appendStr(b, r.Route)
	b = appendStr(b, r.Method)
	b = appendStr(b, r.Target)
	b = appendStr(b, r.Client)
	b = appendStr(b, r.IdemKey)
	b = appendBytes(b, r.Header)
	return appendBytes(b, r.Body)
}

// decoder reads a payload; the first error sticks and later reads return zero
// values, so callers check err once.
type decoder struct {
	b   []byte
	err error
}

var errPayload = errors.New("malformed payload")

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errPayload
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 { return readVarint(d, binary.Uvarint) }

func (d *decoder) varint() int64 { return readVarint(d, binary.Varint) }

// readVarint reads one number with read (binary.Uvarint or binary.Varint).
func readVarint[T uint64 | int64](d *decoder, read func([]byte) (T, int)) T {
	v, n := read(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte1() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// bytes returns a slice aliasing the payload.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}

func (d *decoder) str() string { return string(d.bytes()) }

// finish reports an error when bytes are left over: a payload is exactly its
// fields, so trailing bytes mean a writer this version does not understand.
func (d *decoder) finish() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = errPayload
	}
	return d.err
}

// decodeCapture decodes a capture payload. Header and Body alias p; the
// strings are copies.
func decodeCapture(p []byte) (seq uint64, r *Record, err error) {
	d := decoder{b: p}
	seq = d.uvarint()
	r = &Record{}
	r.ID = d.str()
	t := d.varint()
	r.Pool = d.str()
	r.Route = d.str()
	r.Method = d.str()
	r.Target = d.str()
	r.Client = d.str()
	r.IdemKey = d.str()
	r.Header = d.bytes()
	r.Body = d.bytes()
	if err := d.finish(); err != nil {
		return 0, nil, err
	}
	r.Time = unixNano(t)
	if r.ID == "" || r.Pool == "" {
		return 0, nil, errPayload
	}
	return seq, r, nil
}

// outcome is a decoded delivered, dead, retried or discarded payload.
type outcome struct {
	id       string
	at       int64
	attempts int
	reason   string
}

func outcomeLen(typ byte, o *outcome) int {
	n := strLen(len(o.id)) + varintLen(o.at)
	if typ == frameDead {
		n += uvarintLen(uint64(o.attempts)) + strLen(len(o.reason))
	}
	return n
}

func appendOutcome(b []byte, typ byte, o *outcome) []byte {
	b = appendStr(b, o.id)
	b = binary.AppendVarint(b, o.at)
	if typ == frameDead {
		b = binary.AppendUvarint(b, uint64(o.attempts))
		b = appendStr(b, o.reason)
	}
	return b
}

func decodeOutcome(typ byte, p []byte) (outcome, error) {
	d := decoder{b: p}
	var o outcome
	o.id = d.str()
	o.at = d.varint()
	if typ == frameDead {
		o.attempts = int(d.uvarint())
		o.reason = d.str()
	}
	if err := d.finish(); err != nil {
		return outcome{}, err
	}
	if o.id == "" {
		return outcome{}, errPayload
	}
	return o, nil
}

// carry states.
const (
	carryPending byte = 1
	carryDead    byte = 2
)

// carryPrefixLen is the size of the state written before the capture payload
// of a carry frame.
func carryPrefixLen(o *outcome) int {
	return 1 + uvarintLen(uint64(o.attempts)) + varintLen(o.at) + strLen(len(o.reason))
}

func appendCarryPrefix(b []byte, state byte, o *outcome) []byte {
	b = append(b, state)
	b = binary.AppendUvarint(b, uint64(o.attempts))
	b = binary.AppendVarint(b, o.at)
	return appendStr(b, o.reason)
}

// decodeCarry splits a carry payload into its state and its capture payload.
func decodeCarry(p []byte) (state byte, o outcome, capture []byte, err error) {
	d := decoder{b: p}
	state = d.byte1()
	o.attempts = int(d.uvarint())
	o.at = d.varint()
	o.reason = d.str()
	if d.err != nil || (state != carryPending && state != carryDead) {
		return 0, outcome{}, nil, errPayload
	}
	return state, o, d.b, nil
}

// capturePayload returns the capture payload held by a capture or carry frame.
func capturePayload(typ byte, p []byte) ([]byte, error) {
	if typ == frameCapture {
		return p, nil
	}
	if typ == frameCarry {
		_, _, c, err := decodeCarry(p)
		return c, err
	}
	return nil, errPayload
}
