// Package httpwire owns the HTTP/1.1 wire rules floodgate applies in both
// directions, as pure functions over bytes: the token, whitespace and
// case-folding helpers (RFC 9110 §5.6), the iteration of a raw header block,
// hop-by-hop fields and Connection tokens (RFC 9110 §7.6.1), the strict
// validation of a request head (RFC 9112 §2-§6), the request target's
// checks and canonical path, the checks of a response head's status line and
// its body framing (RFC 9112 §6.3), the strict chunked decoder (RFC 9112
// §7.1), and the elements of X-Forwarded-For.
//
// The proxy (package proxy) and its cache (package proxy/cache) both use it,
// so that each rule is written once and can be fuzzed on its own. It holds
// no state of either, knows no fasthttp type and imports only the standard
// library (.ci/deps checks this). Nothing here allocates unless its comment
// says so: these functions run on the request path, whose budget is zero
// allocations.
package httpwire
