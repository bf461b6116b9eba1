package admin

import (
	"regexp"
	"testing"
)

// TestDecodeErrorsNameTheField sends badly typed and malformed bodies to every
// endpoint that takes one, over real HTTP: each is a 400 whose message names
// the JSON field and the type it wants, in the API's terms, and never a Go
// type or struct name (updateRequest.weight, of type int, *bool, struct {}).
func TestDecodeErrorsNameTheField(t *testing.T) {
	a := newAPI(t, "")
	a.expect("POST", "/api/v1/pools/shop/backends", `{"address": "10.0.0.5:8080"}`, 201)
	goTypes := regexp.MustCompile(`Go (struct|value)|of type|Request|struct \{|\*bool|\*int|\*string|json: `)
	for _, c := range []struct{ name, method, path, body, want string }{
		{"weight as a string", "PATCH", "/api/v1/pools/shop/backends/10.0.0.5:8080", `{"weight": "2"}`, "invalid JSON body: weight: want an integer, got a string"},
		{"fractional weight", "POST", "/api/v1/pools/shop/backends", `{"address": "10.0.0.7:80", "weight": 1.5}`, "invalid JSON body: weight: want an integer, got 1.5"},
		{"huge weight", "POST", "/api/v1/pools/shop/backends", `{"address": "10.0.0.7:80", "weight": 1e30}`, "invalid JSON body: weight: want an integer, got 1e30"},
		{"address as a number", "POST", "/api/v1/pools/shop/backends", `{"address": 10}`, "invalid JSON body: address: want a string, got a number"},
		{"drain as a string", "PATCH", "/api/v1/pools/shop/backends/10.0.0.5:8080", `{"drain": "yes"}`, "invalid JSON body: drain: want true or false, got a string"},
		{"mode as a list", "PUT", "/api/v1/pools/shop/mode", `{"mode": ["auto"]}`, "invalid JSON body: mode: want a string, got a list"},
		{"paused as a number", "PUT", "/api/v1/pools/shop/replay", `{"paused": 1}`, "invalid JSON body: paused: want true or false, got a number"},
		{"a list for an object", "POST", "/api/v1/pools/shop/backends", `[{"address": "10.0.0.7:80"}]`, "invalid JSON body: want an object, got a list"},
		{"a list where no body is wanted", "POST", "/api/v1/reload", `[]`, "invalid JSON body: want an object, got a list"},
		{"a field where no body is wanted", "POST", "/api/v1/reload", `{"path": "/etc/passwd"}`, `invalid JSON body: unknown field "path"; this endpoint takes no body`},
		{"unknown field", "POST", "/api/v1/pools/shop/backends", `{"address": "10.0.0.7:80", "wieght": 2}`, `invalid JSON body: unknown field "wieght"`},
		{"syntax", "POST", "/api/v1/pools/shop/backends", `{"address": "10.0.0.7:80",}`, "invalid JSON body: invalid character '}' looking for beginning of object key string (at byte 27)"},
		{"truncated", "POST", "/api/v1/pools/shop/backends", `{"address": "10.0.0.7:80"`, "invalid JSON body: it ends early (truncated)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			a.t = t
			code, m, _ := a.do(c.method, c.path, c.body)
			msg, _ := m["error"].(string)
			if code != 400 || msg != c.want {
				t.Errorf("%s %s %s: %d %q, want 400 %q", c.method, c.path, c.body, code, msg, c.want)
			}
			if goTypes.MatchString(msg) {
				t.Errorf("%q names Go types", msg)
			}
		})
	}
}
