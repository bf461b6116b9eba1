package admin

import "net/http"

// Route is one endpoint of the API: an HTTP method and a path pattern whose
// {name} segments are parameters. Routes returns them; docs/openapi.yaml lists
// exactly these.
type Route struct {
	// Method is an HTTP method, upper-case.
	Method string
	// Pattern is the path, e.g. "/api/v1/pools/{pool}/backends".
	Pattern string
}

// access is what a route asks of a request before it is answered.
type access uint8

const (
	// private needs the token or the status page's session.
	private access = iota
	// public is answered without credentials: the login form and its assets.
	public
	// page answers the login form when credentials are missing.
	page
	// probe is answered before any check at all: /healthz.
	probe
)

// route is an entry of the routing table.
type route struct {
	Route
	access access
	handle func(s *Server, w http.ResponseWriter, r *http.Request)
}

// routes is the routing table, a constant; New registers it on an
// http.ServeMux, which matches methods and {name} segments (percent-decoded:
// an IPv6 backend may be sent as %5B2001%3Adb8%3A%3A1%5D%3A8080) and tells a
// 404 from a 405. To add an endpoint, add a line here, a handler, and its entry
// in docs/openapi.yaml; TestOpenAPIMatchesRouter keeps the two in step.
var routes = []route{
	{Route: Route{http.MethodGet, "/api/v1/pools"}, handle: (*Server).listPools},
	{Route: Route{http.MethodPost, "/api/v1/pools/{pool}/backends"}, handle: (*Server).registerBackend},
	{Route: Route{http.MethodPatch, "/api/v1/pools/{pool}/backends/{address}"}, handle: (*Server).updateBackend},
	{Route: Route{http.MethodDelete, "/api/v1/pools/{pool}/backends/{address}"}, handle: (*Server).removeBackend},
	{Route: Route{http.MethodGet, "/api/v1/pools/{pool}/mode"}, handle: (*Server).getMode},
	{Route: Route{http.MethodPut, "/api/v1/pools/{pool}/mode"}, handle: (*Server).setMode},
	{Route: Route{http.MethodGet, "/api/v1/pools/{pool}/captures"}, handle: (*Server).listPending},
	{Route: Route{http.MethodGet, "/api/v1/pools/{pool}/replay"}, handle: (*Server).getReplay},
	{Route: Route{http.MethodPut, "/api/v1/pools/{pool}/replay"}, handle: (*Server).setReplay},
	{Route: Route{http.MethodGet, "/api/v1/captures"}, handle: (*Server).listCaptures},
	{Route: Route{http.MethodGet, "/api/v1/captures/{id}"}, handle: (*Server).getCapture},
	{Route: Route{http.MethodDelete, "/api/v1/captures/{id}"}, handle: (*Server).discardCapture},
	{Route: Route{http.MethodPost, "/api/v1/captures/{id}/retry"}, handle: (*Server).retryCapture},
	{Route: Route{http.MethodGet, "/api/v1/status"}, handle: (*Server).status},
	{Route: Route{http.MethodDelete, "/api/v1/cache"}, handle: (*Server).purgeCache},
	{Route: Route{http.MethodPost, "/api/v1/reload"}, handle: (*Server).reload},
	{Route: Route{http.MethodGet, "/metrics"}, handle: (*Server).metrics},
	{Route: Route{http.MethodGet, "/healthz"}, access: probe, handle: (*Server).healthz},
	// The status page (ui.go).
	{Route: Route{http.MethodGet, "/"}, access: page, handle: (*Server).page},
	{Route: Route{http.MethodPost, "/login"}, access: public, handle: (*Server).login},
	{Route: Route{http.MethodPost, "/logout"}, access: public, handle: (*Server).logout},
	{Route: Route{http.MethodGet, "/ui/{file}"}, access: public, handle: (*Server).asset},
}

// Routes returns every endpoint of the API, in a stable order.
func Routes() []Route {
	out := make([]Route, len(routes))
	for i, rt := range routes {
		out[i] = rt.Route
	}
	return out
}

// newMux registers the routing table on a ServeMux and returns it with each
// ServeMux pattern's access.
func (s *Server) newMux() (*http.ServeMux, map[string]access) {
	mux := http.NewServeMux()
	acc := make(map[string]access, len(routes))
	for _, rt := range routes {
		path := rt.Pattern
		if path == "/" {
			path = "/{$}" // "/" alone would match every path
		}
		pattern := rt.Method + " " + path
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { rt.handle(s, w, r) })
		acc[pattern] = rt.access
	}
	return mux, acc
}

// muxError turns the answers ServeMux gives by itself, a plain-text 404 or 405
// (with its Allow header), into the API's JSON errors. Other answers, the
// redirect to a cleaned path, pass through.
type muxError struct {
	http.ResponseWriter
	r       *http.Request
	written bool
}

func (m *muxError) WriteHeader(code int) {
	switch code {
	case http.StatusNotFound:
		writeError(m.ResponseWriter, code, "no such endpoint: "+m.r.URL.Path)
	case http.StatusMethodNotAllowed:
		allow := m.Header().Get("Allow")
		writeError(m.ResponseWriter, code, "method "+m.r.Method+" not allowed here; allowed: "+allow)
	default:
		m.ResponseWriter.WriteHeader(code)
		return
	}
	m.written = true
}

func (m *muxError) Write(b []byte) (int, error) {
	if m.written { // ServeMux's plain-text body, replaced
		return len(b), nil
	}
	return m.ResponseWriter.Write(b)
}
