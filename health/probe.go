package health

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

// probeFunc runs one probe of addr under ctx, whose deadline is the check's
// Timeout. It returns whether the backend passed and a short reason naming what
// happened ("status 200", "connect: connection refused", "timeout after 500ms").
type probeFunc func(ctx context.Context, addr string, chk Check) (ok bool, reason string)

// probeTCP passes when a TCP connection to addr is established in time.
func probeTCP(ctx context.Context, addr string, chk Check) (bool, string) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false, failReason(err, chk.Timeout)
	}
	_ = conn.Close() // nothing was written; a close error says nothing about health
	return true, "connected"
}

// probeHTTP sends one GET over a fresh connection and judges the status.
//
// It speaks HTTP/1.1 directly over a net.Conn (request written by
// http.Request.Write, response parsed by http.ReadResponse) instead of using an
// http.Client. That keeps the prober apart from the proxy's pooled connections,
// bounds dial plus exchange with one connection deadline, and leaves no
// transport goroutines or idle connections behind, so Close is exact. A fresh
// connection per probe also exercises accept() the way a new client would;
// the cost, one handshake per backend per interval, is negligible.
func probeHTTP(ctx context.Context, addr string, chk Check) (bool, string) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false, failReason(err, chk.Timeout)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// Cancellation (Close, Sync removal) must interrupt a blocked read at once,
	// not after the timeout: a deadline in the past fails pending I/O.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+chk.Path, nil)
	if err != nil {
		return false, "request: " + err.Error()
	}
	req.Host = chk.Host // "" means Write uses the URL host, i.e. the address
	req.Header.Set("User-Agent", userAgent)
	req.Close = true // we never reuse the connection: say so, the server can free it at once
	if err := req.Write(conn); err != nil {
		return false, failReason(err, chk.Timeout)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return false, failReason(err, chk.Timeout)
	}
	// Read a bounded prefix so a health page is received the way a client would
	// receive it, then drop the connection. resp.Body.Close is deliberately not
	// called: on a chunked body it drains to the end, which is unbounded; closing
	// the connection (deferred above) releases everything.
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody)); err != nil {
		return false, "read body: " + failReason(err, chk.Timeout)
	}
	reason := "status " + strconv.Itoa(resp.StatusCode)
	if chk.ExpectStatus != 0 {
		return resp.StatusCode == chk.ExpectStatus, reason
	}
	return resp.StatusCode >= 200 && resp.StatusCode < 400, reason
}

// failReason turns a probe error into a short, stable reason for logs and the
// admin API: the operator wants "connect: connection refused", not
// "dial tcp 10.0.0.1:8080: connect: connection refused" with the address again.
func failReason(err error, timeout time.Duration) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout()) {
		return "timeout after " + timeout.String()
	}
	var se *os.SyscallError // "connect: connection refused", "read: connection reset by peer"
	if errors.As(err, &se) {
		return se.Error()
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return "resolve: " + dnsErr.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Op + ": " + oe.Err.Error()
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "connection closed early"
	}
	return fmt.Sprint(err)
}
