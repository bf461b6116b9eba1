package balancer

import (
	"fmt"
	"strings"
)

// Sentinel errors. Callers test them with errors.Is: every error a Pool returns
// wraps one of them, prefixed with "balancer: pool NAME: ". The wrapped values are
// built once per Pool in NewPool, so returning them allocates nothing, even on the
// fast path.
var (
	// ErrNoHealthyBackend means no backend is eligible: every backend with a
	// weight above zero is probe-down or ejected (or is the one Acquire was told to
	// skip), or the pool has none.
	ErrNoHealthyBackend error = &sentinel{msg: "balancer: no healthy backend"}

	// ErrSaturated means every eligible backend is at its connection limit and the
	// request could not be queued or waited in vain. ErrQueueFull and
	// ErrQueueTimeout both wrap it, so errors.Is(err, ErrSaturated) catches either.
	ErrSaturated error = &sentinel{msg: "balancer: every backend is at its connection limit"}

	// ErrQueueFull means every eligible backend is at its limit and the pool's wait
	// queue already holds PoolOptions.QueueMax waiters. A pool without a queue
	// (QueueMax 0) returns it at once. It wraps ErrSaturated.
	ErrQueueFull error = &sentinel{msg: "balancer: queue full", parent: ErrSaturated}

	// ErrQueueTimeout means the request waited PoolOptions.QueueTimeout (or its
	// Ticket.MaxWait, if shorter) in the pool's queue without a slot freeing
	// up. It wraps ErrSaturated.
	ErrQueueTimeout error = &sentinel{msg: "balancer: queue timeout", parent: ErrSaturated}

	// ErrWouldWait means no slot is free and the request would wait longer than
	// it may: it may not wait at all (Ticket.MaxWait < 0), or the wait
	// predicted from the queue ahead of it exceeds its deadline. It is returned
	// at once, without queueing. It wraps ErrSaturated.
	ErrWouldWait error = &sentinel{msg: "balancer: would wait too long for a slot", parent: ErrSaturated}
)

// sentinel is an error value with an optional parent, so that the queue errors
// can be told apart and still match ErrSaturated.
type sentinel struct {
	msg    string
	parent error
}

func (e *sentinel) Error() string { return e.msg }
func (e *sentinel) Unwrap() error { return e.parent }

// poolError adds the pool name to a sentinel. It is preformatted in NewPool
// because fmt.Errorf on the request path would allocate on every rejection, which
// is exactly when the proxy is busiest.
type poolError struct {
	msg string
	err error
}

func (e *poolError) Error() string { return e.msg }
func (e *poolError) Unwrap() error { return e.err }

func newPoolError(pool string, err error, detail string) error {
	msg := fmt.Sprintf("balancer: pool %q: %s", pool, strings.TrimPrefix(err.Error(), "balancer: "))
	if detail != "" {
		msg += " (" + detail + ")"
	}
	return &poolError{msg: msg, err: err}
}
