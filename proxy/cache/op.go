package cache

import (
	"bufio"
	"bytes"
	"sync"

	"github.com/valyala/fasthttp"
)

// op is one request's way through the cache: what the steps of serving it
// (lookup, decision, forward, store and freshen, respond) share, held in one
// place instead of passed from step to step. An op lives on the stack of the
// call that serves the request (Serve, ServeStale, a background refresh);
// nothing keeps a pointer to it after that call returns, and a background
// refresh started from it copies out what it needs, so an op costs no
// allocation. Its buffers are in sc, which is pooled.
type op struct {
	c   *Cache
	ctx *fasthttp.RequestCtx // the client's request and answer; nil in a background refresh
	p   *Policy
	up  Upstream // the way to the backend; nil where the op never forwards
	sc  *scratch

	rq   reqInfo // the request's facts
	hash uint64  // sc.key's hash
	s    *shard  // sc.key's shard

	// Set by forward: the stored response the fetch is for (nil if none) and
	// why the request went forward.
	e   *entry
	fwd fwdReason

	now      int64 // the clock for decisions, and the request time of a fetch (RFC 9111 §4.2.3)
	respTime int64 // when the backend's answer arrived
}

// begin reads the clock and the request's facts and computes its primary key,
// the key's hash and its shard.
func (o *op) begin() {
	c, sc := o.c, o.sc
	o.now = c.nowNano()
	o.rq.parse(&o.ctx.Request.Header)
	sc.key = appendKey(sc.key[:0], o.ctx)
	o.hash = c.hash(sc.key)
	o.s = c.shardOf(o.hash)
}

// scratch is per-request working memory, pooled so that a hit allocates
// nothing once the buffers have grown.
type scratch struct {
	key   []byte
	vkey  []byte
	vkey2 []byte
	fkey  []byte
	names []byte
	num   []byte
	cs    []byte
	blk   []byte
	fwd   []byte // a forwarded field value (Options.Forwarded)
	date  []byte // a Date added to a response without one
	gen   uint64 // the key's purge generation before the fetch (Cache.genOf)
	kvs   []kv
	kvs2  []kv
	rd    bytes.Reader
	br    *bufio.Reader
	big   *bufio.Reader
}

// Header blocks up to smallBlock bytes are parsed through the pooled 4 KiB
// reader, larger ones (up to maxBlock) through a lazily made one. Responses
// with a larger header section are passed through unstored.
const (
	smallBlock = 4096
	maxBlock   = 64 << 10
)

var scratchPool = sync.Pool{New: func() any {
	s := &scratch{}
	s.br = bufio.NewReaderSize(&s.rd, smallBlock)
	return s
}}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func putScratch(s *scratch) {
	// Drop references to header storage so pooled scratch does not keep
	// evicted entries or released responses reachable.
	clear(s.kvs)
	clear(s.kvs2)
	s.kvs, s.kvs2 = s.kvs[:0], s.kvs2[:0]
	s.rd.Reset(nil)
	scratchPool.Put(s)
}
