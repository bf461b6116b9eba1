package cache

import (
	"bytes"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/internal/httpwire"
)

// serveUnsafe forwards a method the cache does not answer and applies
// RFC 9111 §4.4 invalidation after a non-error response to an unsafe one.
func (c *Cache) serveUnsafe(ctx *fasthttp.RequestCtx, p *Policy, up Upstream) Result {
	sc := getScratch()
	defer putScratch(sc)
	sc.key = appendKey(sc.key[:0], ctx)
	if err := up.Fetch(&ctx.Request, &ctx.Response); err != nil {
		c.onError(ctx, err)
		sc.cs = appendStatus(sc.cs[:0], csForward, fwdMethod, 0, 0, "error")
		ctx.Response.Header.AddBytesKV(strCacheStatus, sc.cs)
		c.count(p, int64(ctx.ID()), Bypass)
		return Bypass
	}
	status := ctx.Response.StatusCode()
	if status >= 200 && status < 400 && !safeMethod(ctx.Request.Header.Method()) {
		c.invalidate(ctx, sc)
	}
	sc.cs = appendStatus(sc.cs[:0], csForward, fwdMethod, status, 0, "")
	ctx.Response.Header.AddBytesKV(strCacheStatus, sc.cs)
	c.count(p, int64(ctx.ID()), Bypass)
	return Bypass
}

// safeMethod reports the methods RFC 9110 §9.2.1 defines as safe; any other
// method, including unknown ones, invalidates (RFC 9111 §4.4).
func safeMethod(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	return false
}

// invalidate removes the stored responses for the request's target URI and
// for the URIs in Location and Content-Location when they have the same
// origin (RFC 9111 §4.4).
func (c *Cache) invalidate(ctx *fasthttp.RequestCtx, sc *scratch) {
	c.invalidateKey(sc.key)
	scheme := "http"
	if ctx.IsTLS() {
		scheme = "https"
	}
	host := ctx.Request.Header.Host()
	reqURI := ctx.Request.Header.RequestURI()
	var targets [4][]byte
	n := 0
	for k, v := range ctx.Response.Header.All() {
		if (httpwire.EqualFold(k, "location") || httpwire.EqualFold(k, "content-location")) && n < len(targets) {
			targets[n] = append([]byte(nil), v...)
			n++
		}
	}
	for _, t := range targets[:n] {
		path, ok := sameOriginPath(scheme, host, reqURI, httpwire.TrimOWS(t))
		if !ok {
			continue
		}
		sc.fkey = appendKeyParts(sc.fkey[:0], scheme, host, path)
		c.invalidateKey(sc.fkey)
	}
}

func (c *Cache) invalidateKey(key []byte) {
	h := c.hash(key)
	s := c.shardOf(h)
	s.mu.Lock()
	c.bumpKey(h) // a fetch in flight for the key must not store its answer
	c.removeChainLocked(s, key)
	s.mu.Unlock()
}

// sameOriginPath resolves a Location or Content-Location reference against
// the request and returns its path and query when it has the request's
// origin.
func sameOriginPath(scheme string, host, reqURI, ref []byte) ([]byte, bool) {
	if len(ref) == 0 {
		return nil, false
	}
	if i := bytes.Index(ref, []byte("://")); i > 0 && bytes.IndexByte(ref[:i], '/') < 0 {
		if !httpwire.EqualFold(ref[:i], scheme) {
			return nil, false
		}
		rest := ref[i+3:]
		j := bytes.IndexByte(rest, '/')
		auth, path := rest, []byte("/")
		if j >= 0 {
			auth, path = rest[:j], rest[j:]
		}
		return path, httpwire.EqualFoldBytes(auth, host)
	}
	if bytes.HasPrefix(ref, []byte("//")) {
		rest := ref[2:]
		j := bytes.IndexByte(rest, '/')
		auth, path := rest, []byte("/")
		if j >= 0 {
			auth, path = rest[:j], rest[j:]
		}
		return path, httpwire.EqualFoldBytes(auth, host)
	}
	if ref[0] == '/' {
		return ref, true
	}
	// Relative reference: merge with the directory of the request path
	// (RFC 3986 §5.2.3); dot segments are left alone.
	base := reqURI
	if q := bytes.IndexByte(base, '?'); q >= 0 {
		base = base[:q]
	}
	dir := base[:bytes.LastIndexByte(base, '/')+1]
	out := make([]byte, 0, len(dir)+len(ref))
	out = append(out, dir...)
	return append(out, ref...), true
}
