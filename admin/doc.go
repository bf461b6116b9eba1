// Package admin owns floodgate's admin API: JSON over HTTP on a listener of its
// own, never the public one. It lists pools and backends with their live state,
// registers, changes, drains and removes backends, reloads the config, and serves
// /metrics and /healthz. docs/admin-api.md describes every endpoint and
// docs/openapi.yaml is kept equal to the router by a test.
//
// Requests are decoded strictly (unknown fields and trailing data are errors),
// bodies are capped, and every error is {"error": "..."} with 400, 401, 404, 405
// or 409 (500 only for failures of floodgate itself, such as a state file that
// cannot be written). A change either applies whole or not at all, and the
// answer comes only once it is in service. With a token, every endpoint except
// /healthz needs "Authorization: Bearer TOKEN", compared in constant time; the
// token is never logged.
//
// The API runs on net/http: it is off the request path, and net/http's
// strictness and timeouts are what an operator's tool expects.
//
// admin imports registry and health for the types it shows; it must not import
// conf, proxy or cmd: cmd/floodgate wires it to the registry, the reloader and
// the metrics handler.
package admin
