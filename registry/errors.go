package registry

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error a Registry method returns for a bad request wraps
// exactly one of them, so the admin API maps errors to statuses with errors.Is in
// one place.
var (
	// ErrInvalid means the request itself is wrong: an address that is not
	// host:port, a weight out of range.
	ErrInvalid = errors.New("invalid")
	// ErrNotFound means the pool or backend does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means the request is valid but clashes with the current
	// state: deleting a backend the config file owns, changing one that is
	// being removed, a pool that is full.
	ErrConflict = errors.New("conflict")
	// ErrClosed means the registry's watcher has stopped (the process is
	// shutting down), so no change can be applied any more.
	ErrClosed = errors.New("registry: closed")
)

// kindError carries a sentinel kind and a message that does not repeat it.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }

// Unwrap returns the sentinel kind.
func (e *kindError) Unwrap() error { return e.kind }

func invalidf(format string, args ...any) error {
	return &kindError{ErrInvalid, fmt.Sprintf(format, args...)}
}

func notFoundf(format string, args ...any) error {
	return &kindError{ErrNotFound, fmt.Sprintf(format, args...)}
}

func conflictf(format string, args ...any) error {
	return &kindError{ErrConflict, fmt.Sprintf(format, args...)}
}
