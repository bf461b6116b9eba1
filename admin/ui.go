package admin

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// The status page: plain HTML, CSS and JavaScript embedded in the binary, no
// build step and no external asset. GET / serves it (or, without
// credentials, a login form); it polls GET /api/v1/status once a second and
// calls the API's own endpoints for its controls.
//
// Authentication is the API's: a bearer token, or a session cookie the login
// form sets after checking the token once. The cookie holds no token: its
// value is an expiry and an HMAC of it keyed by a hash of the token, so it
// proves that its holder knew the token, for sessionLifetime, without being
// usable as the token anywhere else. It is HttpOnly (scripts cannot read it)
// and SameSite=Strict. The token never appears in a URL: the form posts it in
// the body.

//go:embed ui
var uiFS embed.FS

// pageTemplates are the HTML pages, parsed once.
var pageTemplates = template.Must(template.ParseFS(uiFS, "ui/index.html", "ui/login.html"))

const (
	// sessionCookie is the status page's session cookie.
	sessionCookie = "floodgate_session"
	// sessionLifetime is how long a login lasts.
	sessionLifetime = 12 * time.Hour
	// pageHeader must accompany a change (any method but GET and HEAD)
	// authenticated by the session cookie. A form on another site cannot set
	// it, and a script on another origin cannot send it without a CORS
	// preflight this server never grants: the cookie alone cannot be used to
	// change anything from elsewhere, even from a site that shares the
	// cookie's registrable domain (SameSite does not separate ports).
	pageHeader = "X-Floodgate-Page"
	// contentSecurityPolicy keeps the page to its own assets and endpoints.
	contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

// authKind says how a request proved it may use the API.
type authKind int

const (
	authNone authKind = iota
	authBearer
	authCookie
	authOpen // no token configured
)

// authenticate checks the bearer token, then the session cookie, in
// constant time.
func (s *Server) authenticate(r *http.Request) authKind {
	if !s.auth {
		return authOpen
	}
	if s.authorized(r) {
		return authBearer
	}
	if c, err := r.Cookie(sessionCookie); err == nil && s.validSession(c.Value, s.now()) {
		return authCookie
	}
	return authNone
}

// sessionValue is the cookie value for a session that ends at expiry (Unix
// seconds).
func (s *Server) sessionValue(expiry int64) string {
	mac := hmac.New(sha256.New, s.sessionKey[:])
	mac.Write([]byte("floodgate admin session v1|" + strconv.FormatInt(expiry, 10)))
	return "v1." + strconv.FormatInt(expiry, 10) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (s *Server) validSession(v string, now time.Time) bool {
	ver, rest, ok := strings.Cut(v, ".")
	if !ok || ver != "v1" {
		return false
	}
	exp, _, ok := strings.Cut(rest, ".")
	if !ok {
		return false
	}
	expiry, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || expiry <= now.Unix() || expiry > now.Add(sessionLifetime+time.Minute).Unix() {
		return false
	}
	return hmac.Equal([]byte(v), []byte(s.sessionValue(expiry)))
}

// unsafeMethod reports whether a method may change something.
func unsafeMethod(m string) bool { return m != http.MethodGet && m != http.MethodHead }

// crossOrigin reports whether a browser sent r from a page of another origin:
// its Origin header names another host (or is "null"), or its Sec-Fetch-Site
// says so. Clients that are not browsers send neither header.
func crossOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
			return true
		}
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return true
	}
	return false
}

// loopbackHost reports whether the Host header names a loopback address or
// localhost. Without a token the API listens on loopback only; a browser
// sending another name there was pointed at it by DNS (DNS rebinding), so the
// page it runs is not the operator's.
func loopbackHost(host string) bool {
	if host == "" {
		return true // HTTP/1.0 without Host: not a browser
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// setPageHeaders are the headers of every HTML page.
func setPageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
}

func renderPage(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := pageTemplates.ExecuteTemplate(&buf, name, data); err != nil { // only a bug
		writeError(w, http.StatusInternalServerError, "rendering the page failed")
		return
	}
	setPageHeaders(w)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// pageData is what the status page's template needs.
type pageData struct {
	// Auth is true when a token is configured: the page offers to log out.
	Auth bool
}

// loginData is what the login form's template needs.
type loginData struct {
	Error string
}

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	renderPage(w, http.StatusOK, "index.html", pageData{Auth: s.auth})
}

// loginPage answers a page request that lacks credentials.
func (s *Server) loginPage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="floodgate"`)
	renderPage(w, status, "login.html", loginData{Error: msg})
}

// login checks a token posted by the login form and sets the session cookie.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if !s.auth {
		seeOther(w) // nothing to log in to
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		writeError(w, http.StatusBadRequest, "the login form posts application/x-www-form-urlencoded")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "invalid form")
		return
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(r.PostForm.Get("token"))))
	if !hmac.Equal(got[:], s.tokenHash[:]) {
		s.loginPage(w, http.StatusUnauthorized, "That token is not the one in admin.token_file.")
		return
	}
	expiry := s.now().Add(sessionLifetime)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: s.sessionValue(expiry.Unix()), Path: "/",
		MaxAge: int(sessionLifetime / time.Second), HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
	s.log.Info("admin: status page login", "remote", r.RemoteAddr)
	seeOther(w)
}

// seeOther sends the browser back to the page. The location is relative (to
// /login or /logout), so that it stays right behind a reverse proxy that
// mounts the admin API under a path; http.Redirect would make it absolute.
func seeOther(w http.ResponseWriter) {
	w.Header().Set("Location", "./")
	w.WriteHeader(http.StatusSeeOther)
}

// logout clears the session cookie.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	seeOther(w)
}

// assetTypes are the static files under ui/ that GET /ui/{file} serves.
var assetTypes = map[string]string{
	".css": "text/css; charset=utf-8",
	".js":  "text/javascript; charset=utf-8",
	".svg": "image/svg+xml",
}

func (s *Server) asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	ct, ok := assetTypes[path.Ext(name)]
	data, err := uiFS.ReadFile("ui/" + name)
	if !ok || err != nil || strings.Contains(name, "/") {
		writeError(w, http.StatusNotFound, "no such file: "+name)
		return
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(data)
}
