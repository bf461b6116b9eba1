package cache

import (
	"bufio"
	"bytes"
	"sync"
)

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
