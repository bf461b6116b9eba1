package httpwire

import (
	"net/url"
	"strings"
)

// IsOriginForm reports whether s is a request target in origin form ("/path"
// with an optional "?query"), as Go's HTTP client will send it: it starts
// with "/" and net/url parses it (no malformed percent-encoding, no control
// characters). Health check paths go through it both in the config file
// (package conf) and at start (package health), so that `floodgate -check`
// refuses a path a start refuses.
func IsOriginForm(s string) bool {
	if !strings.HasPrefix(s, "/") {
		return false
	}
	_, err := url.ParseRequestURI(s)
	return err == nil
}
