package admin

import (
	"context"
	"strings"
	"testing"

	"github.com/floodgate/floodgate/internal/panics"
)

type panicReloader struct{}

func (panicReloader) Reload(context.Context) (ReloadResult, error) { panic("reloader bug") }

// TestPanicInAHandlerIsContained: a panicking admin handler answers 500, is
// counted (floodgate_panics_total) and logged with its stack, and the API
// keeps answering.
func TestPanicInAHandlerIsContained(t *testing.T) {
	panics.Allow(t)
	a := newAPI(t, "")
	a.srv.opts.Reloader = panicReloader{} // before any request reads it
	before := panics.Total()
	a.expect("POST", "/api/v1/reload", "", 500)
	if panics.Total()-before != 1 {
		t.Fatalf("panics counted: %d, want 1", panics.Total()-before)
	}
	if log := a.log.String(); !strings.Contains(log, "panic contained: admin POST /api/v1/reload") || !strings.Contains(log, "reloader bug") {
		t.Fatalf("panic not logged:\n%s", log)
	}
	a.expect("GET", "/api/v1/pools", "", 200)
}
