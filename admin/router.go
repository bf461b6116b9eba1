package admin

import (
	"net/http"
	"net/url"
	"strings"
)

// Route is one endpoint of the API: an HTTP method and a path pattern whose
// {name} segments are parameters. Routes returns them; docs/openapi.yaml lists
// exactly these.
type Route struct {
	// Method is an HTTP method, upper-case.
	Method string
	// Pattern is the path, e.g. "/api/v1/pools/{pool}/backends".
	Pattern string
}

// route is an entry of the routing table.
type route struct {
	Route
	public bool // answered without the token
	page   bool // without credentials, answered with the login form
	handle func(s *Server, w http.ResponseWriter, r *http.Request, p params)
}

// params are a matched route's {name} segments, unescaped.
type params map[string]string

// routes is the routing table, a constant. To add an endpoint (the mode, cache
// and captures endpoints of later versions), add a line here, a handler, and its
// entry in docs/openapi.yaml; TestOpenAPIMatchesRouter keeps the two in step.
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
	{Route: Route{http.MethodGet, "/healthz"}, public: true, handle: (*Server).healthz},
	// The status page (ui.go).
	{Route: Route{http.MethodGet, "/"}, page: true, handle: (*Server).page},
	{Route: Route{http.MethodPost, "/login"}, public: true, handle: (*Server).login},
	{Route: Route{http.MethodPost, "/logout"}, public: true, handle: (*Server).logout},
	{Route: Route{http.MethodGet, "/ui/{file}"}, public: true, handle: (*Server).asset},
}

// Routes returns every endpoint of the API, in a stable order.
func Routes() []Route {
	out := make([]Route, len(routes))
	for i, rt := range routes {
		out[i] = rt.Route
	}
	return out
}

// match finds the route for a method and an escaped path. When the path matches
// but the method does not, it returns the methods that would.
func match(method, escapedPath string) (*route, params, []string) {
	segs := strings.Split(strings.TrimPrefix(escapedPath, "/"), "/")
	var allowed []string
	for i := range routes {
		rt := &routes[i]
		p, ok := matchPattern(rt.Pattern, segs)
		if !ok {
			continue
		}
		if rt.Method == method {
			return rt, p, nil
		}
		allowed = append(allowed, rt.Method)
	}
	return nil, nil, allowed
}

// matchPattern matches path segments against a pattern. A parameter matches one
// non-empty segment, percent-decoded (so an IPv6 address may be sent as
// %5B2001%3Adb8%3A%3A1%5D%3A8080).
func matchPattern(pattern string, segs []string) (params, bool) {
	pats := strings.Split(strings.TrimPrefix(pattern, "/"), "/")
	if len(pats) != len(segs) {
		return nil, false
	}
	var p params
	for i, pat := range pats {
		if strings.HasPrefix(pat, "{") && strings.HasSuffix(pat, "}") {
			v, err := url.PathUnescape(segs[i])
			if err != nil || v == "" {
				return nil, false
			}
			if p == nil {
				p = params{}
			}
			p[pat[1:len(pat)-1]] = v
			continue
		}
		if pat != segs[i] {
			return nil, false
		}
	}
	return p, true
}
