// Package admin owns floodgate's admin API: JSON over HTTP on a listener of its
// own, never the public one. It lists pools and backends with their live state,
// registers, changes, drains and removes backends, sets a pool's degraded-mode
// override, operates the order capture journal (dead letters, replay), reloads
// the config, and serves /metrics and /healthz. docs/admin-api.md describes
// every endpoint and docs/openapi.yaml is kept equal to the router by a test.
//
// It also serves the status page (ui.go, ui/): HTML, CSS and JavaScript
// embedded with go:embed, polling GET /api/v1/status, which status.go builds
// from the view of the generation in service and the statistics of the degraded-mode monitor,
// the capture journal, the proxy's routes and the cache. Rates are the
// differences between readings of counters the request path keeps anyway,
// taken by the sampler (sampler.go) once a second off the request path: the
// page adds no state and no work to the request path.
//
// Requests are decoded strictly (unknown fields and trailing data are errors),
// bodies are capped, and every error is {"error": "..."} with 400, 401, 403,
// 404, 405 or 409 (500 only for failures of floodgate itself, such as a state
// file that cannot be written). A change either applies whole or not at all,
// and the answer comes only once it is in service. With a token, every
// endpoint except /healthz and the page's login and static files needs
// "Authorization: Bearer TOKEN" or the page's session cookie, both compared
// in constant time; the token is never logged. Browser requests from another
// origin are refused, and so, without a token, are Host names that are not
// loopback (DNS rebinding).
//
// The API runs on net/http: it is off the request path, and net/http's
// strictness and timeouts are what an operator's tool expects.
//
// admin imports registry, generation and health, degrade and degrade/capture,
// and proxy and proxy/cache, for the types it shows and the statistics it
// reads; it must not import conf or cmd: cmd/floodgate wires it to the
// registry and its generations (generation.Manager), the
// reloader, the monitor, the journal, the proxy and the metrics handler.
package admin
