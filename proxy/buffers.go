package proxy

import (
	"bufio"
	"io"
	"sync"
	"sync/atomic"
)

// Buffers belong to requests in flight, not to connections (issue 16): a
// connection takes its buffers from these pools for the part of a request that
// needs them and gives them back before it waits for the peer. A backend
// connection on the idle stack holds none; a keep-alive client connection
// waiting for its next request holds only fasthttp's reader, which fasthttp
// keeps for the connection's life under StreamRequestBody (its writer goes
// back to its pool after each response: ReduceMemoryUsage). The pools count
// the bytes out of them, and conn counts fasthttp's reader and writer, into
// one figure: Server.BufferBytes, floodgate_connection_buffer_bytes.

// bufCounter is the count of bytes out of a Server's pools, padded to a cache
// line of its own: it is added to a few times per request.
type bufCounter struct {
	_ [64]byte
	n atomic.Int64
	_ [56]byte
}

// bufPool is a sync.Pool of byte slices of one size that counts what is out.
type bufPool struct {
	pool sync.Pool
	size int
	out  *bufCounter
}

func newBufPool(size int, out *bufCounter) *bufPool {
	p := &bufPool{size: size, out: out}
	p.pool.New = func() any { b := make([]byte, size); return &b }
	return p
}

func (p *bufPool) get() *[]byte {
	p.out.n.Add(int64(p.size))
	return p.pool.Get().(*[]byte)
}

func (p *bufPool) put(b *[]byte) {
	p.out.n.Add(-int64(p.size))
	p.pool.Put(b)
}

// rwPool pools the bufio readers and writers of backend connections, taken
// for each exchange (upstream.go).
type rwPool struct {
	readers, writers sync.Pool
	size             int
	out              *bufCounter
}

func newRWPool(size int, out *bufCounter) *rwPool {
	p := &rwPool{size: size, out: out}
	p.readers.New = func() any { return bufio.NewReaderSize(nil, size) }
	p.writers.New = func() any { return bufio.NewWriterSize(nil, size) }
	return p
}

func (p *rwPool) reader(r io.Reader) *bufio.Reader {
	p.out.n.Add(int64(p.size))
	br := p.readers.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

func (p *rwPool) putReader(br *bufio.Reader) {
	br.Reset(nil)
	p.readers.Put(br)
	p.out.n.Add(-int64(p.size))
}

func (p *rwPool) writer(w io.Writer) *bufio.Writer {
	p.out.n.Add(int64(p.size))
	bw := p.writers.Get().(*bufio.Writer)
	bw.Reset(w)
	return bw
}

func (p *rwPool) putWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	p.writers.Put(bw)
	p.out.n.Add(-int64(p.size))
}

// clientWriteBuf is the size of fasthttp's response writer
// (fasthttp.Server.WriteBufferSize in New, 32 << 10).
const clientWriteBuf = 32 << 10

// BufferBytes returns the bytes of buffers held by client and backend
// connections now: fasthttp's request readers (one per client connection
// that has sent a request: fasthttp keeps it under StreamRequestBody) and
// response writers (while a response is written), the chunks that catch the
// first bytes of a connection (holder.readAhead), held writes (hold.go) and
// the readers and writers of backend exchanges. Safe for concurrent use.
func (s *Server) BufferBytes() int64 {
	return s.bufs.n.Load()
}
