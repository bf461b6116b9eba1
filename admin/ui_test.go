package admin

import (
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func send(t *testing.T, method, u, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestStatusPageLogin(t *testing.T) {
	const token = "page-token-0123456789abcdef"
	s := newStack(t, stackOptions{token: token, backends: []string{"10.0.0.1:80"}})

	// Without credentials: the login form, 401, with nothing of the API.
	resp, body := send(t, "GET", s.url+"/", "", nil)
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(body, `<form method="post" action="login"`) || !strings.Contains(body, `type="password"`) || strings.Contains(body, "10.0.0.1") {
		t.Fatalf("login page: %d %s\n%s", resp.StatusCode, resp.Header, body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("CSP %q", csp)
	}
	// The API stays JSON 401.
	if resp, _ := send(t, "GET", s.url+"/api/v1/status", "", nil); resp.StatusCode != 401 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status without token: %d", resp.StatusCode)
	}
	// Assets are public: the login page needs its stylesheet.
	for file, ct := range map[string]string{"style.css": "text/css", "app.js": "text/javascript"} {
		if resp, body := send(t, "GET", s.url+"/ui/"+file, "", nil); resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ct) || len(body) < 100 {
			t.Errorf("%s: %d %s", file, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	for _, p := range []string{"/ui/index.html", "/ui/nope.js", "/ui/..%2fui.go"} {
		if resp, _ := send(t, "GET", s.url+p, "", nil); resp.StatusCode != 404 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}

	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	// A wrong token: the form again, 401, logged without the attempt.
	resp, body = send(t, "POST", s.url+"/login", url.Values{"token": {"guess"}}.Encode(), form)
	if resp.StatusCode != 401 || !strings.Contains(body, "not the one") || resp.Header.Get("Set-Cookie") != "" {
		t.Fatalf("wrong token: %d %s", resp.StatusCode, body)
	}
	// The right one: a session cookie and a redirect to the page.
	resp, _ = send(t, "POST", s.url+"/login", url.Values{"token": {token}}.Encode(), form)
	cookies := resp.Cookies()
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "./" || len(cookies) != 1 {
		t.Fatalf("login: %d %v", resp.StatusCode, resp.Header)
	}
	c := cookies[0]
	if c.Name != sessionCookie || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.MaxAge != 12*3600 || c.Path != "/" ||
		strings.Contains(c.Value, token) || strings.Contains(resp.Header.Get("Set-Cookie"), token) {
		t.Fatalf("cookie %+v", c)
	}
	withCookie := map[string]string{"Cookie": c.Name + "=" + c.Value}
	resp, body = send(t, "GET", s.url+"/", "", withCookie)
	if resp.StatusCode != 200 || !strings.Contains(body, `src="ui/app.js"`) || !strings.Contains(body, `data-auth="token"`) || strings.Contains(body, token) {
		t.Fatalf("page with the session: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := send(t, "GET", s.url+"/api/v1/status", "", withCookie); resp.StatusCode != 200 {
		t.Fatalf("status with the session: %d", resp.StatusCode)
	}

	// Changes with the cookie need the page's header, and the same origin.
	drain := "/api/v1/pools/shop/backends/10.0.0.1:80"
	if resp, _ := send(t, "PATCH", s.url+drain, `{"drain": true}`, withCookie); resp.StatusCode != 403 {
		t.Fatalf("cookie change without the header: %d", resp.StatusCode)
	}
	h := map[string]string{"Cookie": withCookie["Cookie"], pageHeader: "1", "Origin": "http://evil.example"}
	if resp, _ := send(t, "PATCH", s.url+drain, `{"drain": true}`, h); resp.StatusCode != 403 {
		t.Fatalf("cross-origin change: %d", resp.StatusCode)
	}
	h["Origin"] = s.url
	if resp, body := send(t, "PATCH", s.url+drain, `{"drain": true}`, h); resp.StatusCode != 200 || !strings.Contains(body, `"draining"`) {
		t.Fatalf("same-origin change: %d %s", resp.StatusCode, body)
	}
	// The bearer token needs no header; scripts are not browsers.
	s.expect("PATCH", drain, `{"drain": false}`, 200)

	// Forged, tampered and expired sessions are refused.
	exp := s.clock.Now().Add(time.Hour).Unix()
	for name, v := range map[string]string{
		"forged":     "v1.99999999999.AAAA",
		"tampered":   strings.Replace(c.Value, "v1.", "v1.1", 1),
		"no version": strings.TrimPrefix(c.Value, "v1."),
		"too long":   s.srv.sessionValue(s.clock.Now().Add(48 * time.Hour).Unix()),
		"other key":  (&Server{}).sessionValue(exp),
	} {
		if resp, _ := send(t, "GET", s.url+"/api/v1/status", "", map[string]string{"Cookie": sessionCookie + "=" + v}); resp.StatusCode != 401 {
			t.Errorf("%s session: %d", name, resp.StatusCode)
		}
	}
	s.clock.Add(sessionLifetime + time.Second)
	if resp, _ := send(t, "GET", s.url+"/", "", withCookie); resp.StatusCode != 401 {
		t.Fatalf("expired session: %d", resp.StatusCode)
	}

	// Logging out clears the cookie.
	resp, _ = send(t, "POST", s.url+"/logout", "", nil)
	if resp.StatusCode != 303 || len(resp.Cookies()) != 1 || resp.Cookies()[0].MaxAge >= 0 {
		t.Fatalf("logout: %d %v", resp.StatusCode, resp.Header)
	}
	if strings.Contains(s.log.String(), token) {
		t.Fatal("the token appears in the log")
	}
}

// TestOpenAdminRefusesOtherHosts: without a token the API is on loopback;
// a browser that reaches it under another name was sent by DNS rebinding.
func TestOpenAdminRefusesOtherHosts(t *testing.T) {
	s := newStack(t, stackOptions{backends: []string{"10.0.0.1:80"}})
	for host, want := range map[string]int{
		"attacker.example:9090": 403,
		"10.1.2.3:9090":         403,
		"localhost:9090":        200,
		"127.0.0.1:9090":        200,
		"[::1]:9090":            200,
		"app.localhost":         200,
	} {
		if resp, _ := send(t, "GET", s.url+"/api/v1/pools", "", map[string]string{"Host": host}); resp.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, resp.StatusCode, want)
		}
	}
	if resp, _ := send(t, "GET", s.url+"/healthz", "", map[string]string{"Host": "lb.example"}); resp.StatusCode != 200 {
		t.Errorf("healthz: %d", resp.StatusCode)
	}
	// A cross-site page cannot register a backend with a simple POST.
	resp, _ := send(t, "POST", s.url+"/api/v1/pools/shop/backends", `{"address": "10.6.6.6:80"}`,
		map[string]string{"Content-Type": "text/plain", "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
	if resp.StatusCode != 403 || s.reg.View().Backend("shop", "10.6.6.6:80") != nil {
		t.Fatalf("cross-site POST: %d", resp.StatusCode)
	}
	// Without a token the page needs no login.
	if resp, body := send(t, "GET", s.url+"/", "", nil); resp.StatusCode != 200 || !strings.Contains(body, `data-auth="open"`) || strings.Contains(body, "Log out") {
		t.Fatalf("open page: %d", resp.StatusCode)
	}
	if resp, _ := send(t, "POST", s.url+"/login", "", nil); resp.StatusCode != 303 {
		t.Fatalf("login without a token: %d", resp.StatusCode)
	}
}

// TestPageIsSelfContained: the embedded page loads nothing from elsewhere and
// builds its DOM from text only.
func TestPageIsSelfContained(t *testing.T) {
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?https?:`)
	err := fs.WalkDir(uiFS, "ui", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := uiFS.ReadFile(path)
		if err != nil {
			return err
		}
		text := string(data)
		if m := external.FindString(text); m != "" {
			t.Errorf("%s loads an external asset: %q", path, m)
		}
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
			if strings.Contains(text, bad) {
				t.Errorf("%s uses %s", path, bad)
			}
		}
		if strings.Contains(text, "?token=") || strings.Contains(text, "localStorage") {
			t.Errorf("%s keeps or passes the token outside the cookie", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
