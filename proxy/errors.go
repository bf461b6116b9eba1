package proxy

import (
	"errors"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/balancer"
	"github.com/floodgate/floodgate/degrade/capture"
)

// Errors of the request path: whose they are (the client's or the backend's, a
// reset, a close before any response), and the one place where they become HTTP
// statuses, fasthttp's parse errors and the order journal's refusals included.
// The cache's failed fetches come here too: the proxy gives the cache CacheError
// as its ErrorHandler. (The cache's own fallback, for a cache used without the
// proxy as in its tests, is cache.Options.ErrorHandler's nil default.) What is
// not an error keeps its status where it is decided: the configured shed and
// static answers of degraded mode, the cache's RFC 9111 504s (only-if-cached,
// must-revalidate while disconnected), the 413 of an Expect: 100-continue whose
// declared length is over the limit.

// Sentinel errors of the request path.
var (
	ErrNoRoute          = errors.New("proxy: no route")
	ErrMethodNotAllowed = errors.New("proxy: method not allowed on this route")
	ErrBodyTooLarge     = errors.New("proxy: request body too large")
	ErrClientBody       = errors.New("proxy: client request body could not be read")
	ErrClientTimeout    = errors.New("proxy: client too slow sending the request body")
	ErrForbidden        = errors.New("proxy: client address not allowed on this route")
	ErrRateLimited      = errors.New("proxy: rate limit exceeded")
	ErrNotRecorded      = errors.New("proxy: order not recorded")
)

// statusOf maps an error from forwarding to the status the client gets and a short
// reason for the body.
func statusOf(err error) (int, string) {
	switch {
	case errors.Is(err, ErrNoRoute):
		return fasthttp.StatusNotFound, "no route for this request"
	case errors.Is(err, ErrForbidden):
		return fasthttp.StatusForbidden, "forbidden"
	case errors.Is(err, ErrRateLimited):
		return fasthttp.StatusTooManyRequests, "too many requests"
	case errors.Is(err, ErrMethodNotAllowed):
		return fasthttp.StatusMethodNotAllowed, "method not allowed"
	case errors.Is(err, ErrBodyTooLarge), errors.Is(err, fasthttp.ErrBodyTooLarge):
		return fasthttp.StatusRequestEntityTooLarge, "request body too large"
	case errors.Is(err, ErrClientTimeout):
		return fasthttp.StatusRequestTimeout, "request body not received in time"
	case errors.Is(err, ErrClientBody):
		return fasthttp.StatusBadRequest, "malformed request body"
	case errors.Is(err, capture.ErrKeyConflict):
		// Confirming this order under a key used for another would never
		// deliver it (draft-ietf-httpapi-idempotency-key-header).
		return fasthttp.StatusUnprocessableEntity, "Idempotency-Key already used for a different request"
	case errors.Is(err, ErrNotRecorded):
		return fasthttp.StatusServiceUnavailable, "the order could not be recorded, please retry"
	case errors.Is(err, balancer.ErrNoHealthyBackend):
		return fasthttp.StatusServiceUnavailable, "no healthy backend"
	case errors.Is(err, balancer.ErrSaturated): // queue full, queue timeout, or a predicted wait too long
		return fasthttp.StatusServiceUnavailable, "all backends busy"
	case isTimeout(err):
		return fasthttp.StatusGatewayTimeout, "backend timed out"
	case isDialError(err):
		return fasthttp.StatusBadGateway, "backend unreachable"
	default:
		return fasthttp.StatusBadGateway, "bad response from backend"
	}
}

// clientBodyError is a failure to read the client's request body while it was
// being forwarded (writeRequest): a connection cut short, a malformed chunk or
// trailer, a stall, a body over the limit. It is the client's fault, never the
// backend's. It has no Unwrap on purpose: the backend connection's failure
// handling reads a reset or EOF on a reused connection as the keep-alive race,
// and must not take the client's reset for the backend's.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "proxy: client request body: " + e.err.Error() }

func isTimeout(err error) bool {
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && !isDialError(err)
}

// retryAfterSeconds is sent with 503 answers caused by saturation, so that clients
// and crawlers come back later instead of retrying at once.
const retryAfterSeconds = 5

// writeError answers the client with a short plain-text body that names the route,
// so an operator reading a client's report knows where to look.
func writeError(ctx *fasthttp.RequestCtx, routeName string, err error) {
	status, reason := statusOf(err)
	closeConn := ctx.Response.ConnectionClose() // a caller's SetConnectionClose survives the Reset
	ctx.Response.Reset()
	if closeConn {
		ctx.Response.SetConnectionClose()
	}
	ctx.Response.SetStatusCode(status)
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	if status == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	}
	r := &ctx.Response
	r.AppendBodyString(strconv.Itoa(status))
	r.AppendBodyString(" ")
	r.AppendBodyString(fasthttp.StatusMessage(status))
	if routeName != "" {
		r.AppendBodyString(": route ")
		r.AppendBodyString(routeName)
	}
	r.AppendBodyString(": ")
	r.AppendBodyString(reason)
	r.AppendBodyString("\n")
}

// parseError answers requests that fasthttp itself could not parse: 400 (or 413 for
// an oversized body, 414 for an overlong request line, 431 for oversized headers)
// and the connection is closed, since the stream can no longer be trusted. A head
// with bare LF line endings fails its read (errBareLF) and gets its 400 here.
func (s *Server) parseError(ctx *fasthttp.RequestCtx, err error) {
	defer s.recoverRequest(ctx)
	status := fasthttp.StatusBadRequest
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		status = fasthttp.StatusRequestEntityTooLarge
	case errors.As(err, &small):
		status = fasthttp.StatusRequestHeaderFieldsTooLarge
		if c := clientConn(ctx); c != nil && c.head.lineOpen() {
			status = fasthttp.StatusRequestURITooLong // the request line alone is over the limit
		}
	case isTimeout(err):
		status = fasthttp.StatusRequestTimeout
	}
	ctx.Response.Reset()
	ctx.SetStatusCode(status)
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(fasthttp.StatusMessage(status) + "\n")
	ctx.SetConnectionClose()
	// Counted and logged like any refused request.
	s.unrouted.record(status, 0)
	if s.opts.AccessLog != nil {
		var info reqInfo
		s.logAccess(ctx, nil, &info, time.Now(), 0)
	}
}

// badRequest answers a request that failed validation and closes the connection.
func badRequest(ctx *fasthttp.RequestCtx) {
	ctx.Response.Reset()
	ctx.SetStatusCode(fasthttp.StatusBadRequest)
	ctx.Response.Header.SetContentType("text/plain; charset=utf-8")
	ctx.Response.SetBodyString("400 Bad Request\n")
	ctx.SetConnectionClose()
}

// isClosedBeforeResponse reports whether the backend closed the connection before
// sending any byte of a response.
func isClosedBeforeResponse(err error) bool {
	return errors.Is(err, errClosedBeforeResponse)
}

// clientError returns the client-side error that err stands for, or nil when the
// failure was the backend's. Reads from the client's connection fail with a
// *net.OpError that carries the client's address: the same net.Addr value that the
// connection reports, so the comparison costs nothing.
func clientError(err error, client net.Addr, chunked bool) error {
	var bc fasthttp.ErrBrokenChunk
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge), errors.Is(err, errBodyLimit):
		return ErrBodyTooLarge
	case errors.As(err, &bc):
		return ErrClientBody
	}
	var cb *clientBodyError
	if errors.As(err, &cb) {
		switch {
		case errors.Is(cb.err, fasthttp.ErrBodyTooLarge), errors.Is(cb.err, errBodyLimit):
			return ErrBodyTooLarge
		case isTimeout(cb.err):
			return ErrClientTimeout
		}
		return ErrClientBody
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		if oe.Op == "read" && oe.Addr != nil && client != nil &&
			(oe.Addr == client || oe.Addr.String() == client.String()) {
			if oe.Timeout() {
				return ErrClientTimeout
			}
			return ErrClientBody
		}
		return nil
	}
	// fasthttp reports a malformed chunk size or chunk terminator in the client's
	// body with plain errors; anything else that is not about the backend's
	// connection or response, while a chunked body was being relayed, is one.
	if chunked && !isDialError(err) && !isTimeout(err) && !isClosedBeforeResponse(err) &&
		!strings.Contains(err.Error(), "response") {
		return ErrClientBody
	}
	return nil
}

// isReset reports a connection reset or broken pipe.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
