package proxy

import (
	"errors"
	"net"
	"os"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/balancer"
)

// This file is the one place where errors become HTTP statuses.

// Sentinel errors of the request path.
var (
	ErrNoRoute          = errors.New("proxy: no route")
	ErrMethodNotAllowed = errors.New("proxy: method not allowed on this route")
	ErrBodyTooLarge     = errors.New("proxy: request body too large")
	ErrClientBody       = errors.New("proxy: client request body could not be read")
	ErrClientTimeout    = errors.New("proxy: client too slow sending the request body")
	ErrForbidden        = errors.New("proxy: client address not allowed on this route")
	ErrRateLimited      = errors.New("proxy: rate limit exceeded")
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
	case errors.Is(err, balancer.ErrNoHealthyBackend):
		return fasthttp.StatusServiceUnavailable, "no healthy backend"
	case errors.Is(err, balancer.ErrQueueFull), errors.Is(err, balancer.ErrQueueTimeout):
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
