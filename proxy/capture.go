package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/degrade/capture"
	"github.com/floodgate/floodgate/internal/httpwire"
)

// CaptureOptions configures order capture: how a request of a route whose
// degraded action is capture is journalled and answered.
type CaptureOptions struct {
	Journal *capture.Journal
	// MaxBody is the largest body captured; a larger one gets 413. 0 = 1 MiB.
	MaxBody int
	// IdemHeader is the client header whose value deduplicates submissions;
	// "" = Idempotency-Key.
	IdemHeader string
	// Body is the 202 answer's body; "{id}" is replaced by the capture id. ""
	// = a small JSON document.
	Body string
	// ContentType of Body; "" = application/json.
	ContentType string
}

// Capture journals requests and answers them 202 Accepted once the record is
// durable, and replays the journal to the pools. Safe for concurrent use.
type Capture struct {
	o                   CaptureOptions
	bodyPre, bodyPost   []byte // Body split around "{id}"
	hasID               bool
	idemHeaderLowerName string
}

// NewCapture checks the options.
func NewCapture(o CaptureOptions) (*Capture, error) {
	if o.Journal == nil {
		return nil, errors.New("proxy: capture without a journal")
	}
	if o.MaxBody <= 0 {
		o.MaxBody = 1 << 20
	}
	if o.IdemHeader == "" {
		o.IdemHeader = "Idempotency-Key"
	}
	if o.Body == "" {
		o.Body = `{"status":"received","capture_id":"{id}"}` + "\n"
		o.ContentType = "application/json"
	}
	if o.ContentType == "" {
		o.ContentType = "application/json"
	}
	c := &Capture{o: o, idemHeaderLowerName: strings.ToLower(o.IdemHeader)}
	pre, post, found := strings.Cut(o.Body, "{id}")
	c.bodyPre, c.bodyPost, c.hasID = []byte(pre), []byte(post), found
	return c, nil
}

// capture journals the request and answers it. It returns false, answering
// nothing, only when the request cannot be captured at all and should be shed.
// The 202 is written only after Journal.Append returned, that is after the record
// was fsynced; any journal error is a 503, never a 202.
func (c *Capture) capture(s *Server, ctx *fasthttp.RequestCtx, rt *route, info *reqInfo) bool {
	req := &ctx.Request
	body, err := readBody(req, c.o.MaxBody)
	if errors.Is(err, ErrBodyTooLarge) {
		ctx.SetConnectionClose()
		writeError(ctx, rt.name, ErrBodyTooLarge)
		return true
	}
	if err != nil {
		ctx.SetConnectionClose()
		if cerr := clientError(err, ctx.RemoteAddr(), false); cerr != nil {
			err = cerr
		} else {
			err = ErrClientBody
		}
		writeError(ctx, rt.name, err)
		return true
	}
	var hdr bytes.Buffer
	bw := bufio.NewWriter(&hdr)
	writeRawHeader(bw, req.Header.RawHeaders())
	bw.Flush()
	var ip [64]byte
	rec := &capture.Record{
		Pool:    rt.pool.name,
		Route:   rt.name,
		Method:  string(req.Header.Method()),
		Target:  string(req.Header.RequestURI()),
		Header:  hdr.Bytes(),
		Body:    body,
		Client:  string(appendAddr(ip[:0], ctx.RemoteAddr())),
		Time:    time.Now(),
		IdemKey: string(httpwire.Value(req.Header.RawHeaders(), c.o.IdemHeader)),
	}
	id, _, err := c.o.Journal.Append(rec)
	switch {
	case errors.Is(err, capture.ErrKeyConflict):
		// The key was used for another order: confirming this one under it
		// would never deliver it (draft-ietf-httpapi-idempotency-key-header).
		writeError(ctx, rt.name, err)
		return true
	case errors.Is(err, capture.ErrTooLarge):
		ctx.SetConnectionClose()
		writeError(ctx, rt.name, ErrBodyTooLarge)
		return true
	}
	if err != nil {
		s.log.Error("capture failed: answering 503", "route", rt.name, "error", err.Error())
		writeError(ctx, rt.name, ErrNotRecorded)
		return true
	}
	c.accepted(ctx, id)
	return true
}

// accepted writes the 202 answer for a capture id.
func (c *Capture) accepted(ctx *fasthttp.RequestCtx, id string) {
	r := &ctx.Response
	r.Reset()
	r.SetStatusCode(fasthttp.StatusAccepted)
	r.Header.Set("Floodgate-Capture-Id", id)
	r.Header.SetContentType(c.o.ContentType)
	r.AppendBody(c.bodyPre)
	if c.hasID {
		r.AppendBodyString(id)
		r.AppendBody(c.bodyPost)
	}
}

// known answers a resubmitted order that is already in the journal, while the
// pool is back to normal: forwarding it would reach the backend twice, once
// live and once replayed (under the same key, which only a deduplicating
// backend recognises). It returns false when the request carries no key the
// journal knows.
func (c *Capture) known(ctx *fasthttp.RequestCtx, rt *route) bool {
	key := httpwire.Value(ctx.Request.Header.RawHeaders(), c.o.IdemHeader)
	if len(key) == 0 {
		return false
	}
	id, _, ok := c.o.Journal.Lookup(rt.name, string(key))
	if !ok {
		return false
	}
	c.accepted(ctx, id)
	return true
}

// readBody reads a request body whole, up to max bytes.
func readBody(req *fasthttp.Request, max int) ([]byte, error) {
	if !req.IsBodyStream() {
		if len(req.Body()) > max {
			return nil, ErrBodyTooLarge
		}
		return append([]byte(nil), req.Body()...), nil
	}
	if cl := req.Header.ContentLength(); cl > max {
		return nil, ErrBodyTooLarge
	}
	b, err := io.ReadAll(io.LimitReader(req.BodyStream(), int64(max)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > max {
		return nil, ErrBodyTooLarge
	}
	return b, nil
}

// Sender returns the replay sender: it rebuilds a captured request and forwards
// it to the record's pool through the current generation, with the route's
// settings when the route still exists. The status is the backend's; an error
// means no backend answered.
//
// The client's Idempotency-Key goes out unchanged when it sent a non-empty one,
// so that a backend deduplicating by the client's key (the meaning the IETF
// draft gives the header) recognises an order that also reached it another way:
// a retry through another floodgate, or directly. Only an order without one gets
// the capture id as its Idempotency-Key. The capture id always travels in
// Floodgate-Capture-Id (a value the client sent there is dropped: it names no
// capture of ours).
func (s *Server) Sender() capture.Sender {
	return func(ctx context.Context, r *capture.Record) (int, error) {
		snap := s.snap.Load()
		if snap == nil {
			return 0, errors.New("proxy: not serving yet")
		}
		rt := snap.routeNamed(r.Route, r.Pool)
		if rt == nil {
			return 0, fmt.Errorf("proxy: pool %q is gone", r.Pool)
		}
		raw := replayHead(r)
		fmt.Fprintf(raw, "Content-Length: %d\r\n\r\n", len(r.Body))
		headLen := raw.Len()
		raw.Write(r.Body)
		req := fasthttp.AcquireRequest()
		defer fasthttp.ReleaseRequest(req)
		req.Header.DisableNormalizing()
		// The reader holds the whole head: a captured order may carry up to
		// MaxHeaderBytes of headers (a long client key, say), more than
		// bufio's default 4 KiB, which fasthttp would refuse to parse.
		if err := req.Read(bufio.NewReaderSize(raw, headLen+1)); err != nil {
			return 0, fmt.Errorf("proxy: captured request %s does not parse: %w", r.ID, err)
		}
		head, err := httpwire.ValidateHeaders(req.Header.RawHeaders(), true)
		if err != nil {
			return 0, fmt.Errorf("proxy: captured request %s: %w", r.ID, err)
		}
		// X-Forwarded-For names the client who placed the order.
		peer := &net.TCPAddr{IP: net.ParseIP(r.Client)}
		o := outbound{fr: framing{RequestHead: head}, peer: peer, copyBuf: make([]byte, 32<<10)}
		var info reqInfo
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(resp)
		if err := s.exchange(peer, rt, req, &o, resp, 1<<20, &info); err != nil {
			return 0, err
		}
		if resp.IsBodyStream() {
			_, _ = io.Copy(io.Discard, resp.BodyStream())
			_ = resp.CloseBodyStream()
		}
		return resp.StatusCode(), nil
	}
}

// replayHead writes the request line and header fields of a captured request,
// without framing: Idempotency-Key as the client sent it, or the capture id
// when it sent none (or only empty ones), and Floodgate-Capture-Id.
func replayHead(r *capture.Record) *bytes.Buffer {
	var raw bytes.Buffer
	raw.WriteString(r.Method + " " + r.Target + " HTTP/1.1\r\n")
	clientKey := false
	for it := httpwire.Fields(r.Header); ; {
		name, value, ok := it.Next()
		if !ok {
			break
		}
		switch {
		case httpwire.EqualFold(name, "floodgate-capture-id"):
			continue
		case httpwire.EqualFold(name, "idempotency-key"):
			if len(bytes.TrimSpace(value)) == 0 {
				continue // an empty key is no key: the capture id replaces it
			}
			clientKey = true
		}
		raw.Write(name)
		raw.WriteString(": ")
		raw.Write(value)
		raw.WriteString("\r\n")
	}
	if !clientKey {
		raw.WriteString("Idempotency-Key: " + r.ID + "\r\n")
	}
	raw.WriteString("Floodgate-Capture-Id: " + r.ID + "\r\n")
	return &raw
}

// PoolReady reports whether replay may send to pool now: the pool exists, is not
// degraded and has nobody queued for a connection slot, so replay yields to live
// traffic. It is capture.ReplayOptions.Ready.
func (s *Server) PoolReady(pool string) bool {
	snap := s.snap.Load()
	if snap == nil {
		return false
	}
	p := snap.pools[pool]
	return p != nil && !p.gate.Degraded() && p.bal.State().QueueDepth() == 0
}
