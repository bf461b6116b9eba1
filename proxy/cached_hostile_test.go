package proxy

import (
	"bufio"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/floodgate/floodgate/balancer"
	"github.com/floodgate/floodgate/proxy/cache"
)

// Hostile-client and hostile-backend tests of the response cache, through a
// real proxy on loopback.

// roundTrip sends one raw request on a new connection and reads one response
// (no body for HEAD).
func roundTrip(t *testing.T, addr, raw string) *fasthttp.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(raw)); err != nil {
		t.Fatal(err)
	}
	resp := new(fasthttp.Response)
	resp.SkipBody = strings.HasPrefix(raw, "HEAD ")
	if err := resp.Read(bufio.NewReader(c)); err != nil {
		t.Fatalf("%q: read: %v", raw, err)
	}
	return resp
}

// awaitHit polls GET raw until the answer is a plain fresh hit, and returns it.
func awaitHit(t *testing.T, addr, raw string) *fasthttp.Response {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp := roundTrip(t, addr, raw)
		cs := string(resp.Header.Peek("Cache-Status"))
		if strings.HasPrefix(cs, "floodgate; hit") && !strings.Contains(cs, "detail=") {
			return resp
		}
		if time.Now().After(deadline) {
			t.Fatalf("no fresh hit within 5s; last Cache-Status %q", cs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCachedHeadStaleDoesNotStoreEmptyBody: a HEAD request on a stale entry
// with stale-while-revalidate started the background refresh with the
// client's request head, method HEAD included. The backend answered the HEAD
// without a body and the refresh stored that answer as the GET response: every
// GET then got a 200 with an empty body, for the new max-age.
func TestCachedHeadStaleDoesNotStoreEmptyBody(t *testing.T) {
	var n atomic.Int64
	px, be, pool := cachedProxyPolicy(t, cache.PolicyOptions{MaxObjectBytes: 1 << 20},
		func(head string, _ []byte) string {
			cc := "max-age=60"
			if n.Add(1) == 1 {
				cc = "max-age=0, stale-while-revalidate=60"
			}
			r := "HTTP/1.1 200 OK\r\nCache-Control: " + cc + "\r\nContent-Length: 5\r\n\r\n"
			if strings.HasPrefix(head, "HEAD ") {
				return r
			}
			return r + "hello"
		})
	const get = "GET /h HTTP/1.1\r\nHost: x\r\n\r\n"
	if r := roundTrip(t, px.addr, get); string(r.Body()) != "hello" {
		t.Fatalf("first GET: %q", r.Body())
	}
	r := roundTrip(t, px.addr, "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n")
	if cs := string(r.Header.Peek("Cache-Status")); !strings.Contains(cs, "stale-while-revalidate") {
		t.Fatalf("HEAD: want a stale hit, Cache-Status %q", cs)
	}
	r = awaitHit(t, px.addr, get)
	awaitIdle(t, pool)
	if string(r.Body()) != "hello" || r.Header.ContentLength() != 5 {
		t.Fatalf("GET after the refresh: Content-Length %d, body %q; want the 5-byte body (backend saw %q)",
			r.Header.ContentLength(), r.Body(), be.requests())
	}
}

// TestCachedHostSpellingsRouteAlike: the cache keys a host in its canonical
// form ("A.Example." is "a.example"), but routing compared the Host as sent, so
// "Host: a.example." missed the route for a.example and took the catch-all
// route to another pool; that pool's answer was stored under a.example's key
// and served to a.example's clients (and the route's access list was skipped).
// Routing and the cache key must agree on which spellings name one host.
func TestCachedHostSpellingsRouteAlike(t *testing.T) {
	c, err := cache.New(cache.Options{MaxBytes: 1 << 20, ErrorHandler: CacheError, Forwarded: CacheForwarded})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	reply := func(who string) func(string, []byte) string {
		return func(string, []byte) string {
			return "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: " + strconv.Itoa(len(who)) + "\r\n\r\n" + who
		}
	}
	site, other := newRawBackend(t, reply("site")), newRawBackend(t, reply("other"))
	px := newTestProxy(t, Options{Cache: c}, PoolSpec{}, site.addr())
	q, err := balancer.NewPool(balancer.PoolOptions{Name: "q", State: balancer.NewPoolState("q"),
		Backends: []balancer.BackendSpec{{Address: other.addr(), Weight: 1, State: balancer.NewBackendState("q/" + other.addr())}}})
	if err != nil {
		t.Fatal(err)
	}
	po := &cache.PolicyOptions{MaxObjectBytes: 1 << 20}
	snap, err := px.s.Build(Spec{Gen: 2, Pools: []PoolSpec{{Pool: px.s.Current().Pool("p")}, {Pool: q}},
		Routes: []RouteSpec{
			{Name: "site", Host: "a.example", PathPrefix: "/", Pool: "p", Cache: po},
			{Name: "wild", Host: "*.b.example", PathPrefix: "/", Pool: "p", Cache: po},
			{Name: "rest", PathPrefix: "/", Pool: "q", Cache: po},
		}})
	if err != nil {
		t.Fatal(err)
	}
	px.s.Swap(snap)
	for i, h := range []string{"a.example.", "A.EXAMPLE.:80", "a.example..", "x.b.example.", "X.B.Example..:0080"} {
		path := "/k" + strconv.Itoa(i)
		r := roundTrip(t, px.addr, "GET "+path+" HTTP/1.1\r\nHost: "+h+"\r\n\r\n")
		if r.StatusCode() != 400 && string(r.Body()) != "site" { // refusing the spelling is fine too
			t.Errorf("Host %q: routed to the catch-all pool (%q), yet keyed as its canonical host", h, r.Body())
		}
		canon := strings.ToLower(strings.TrimRight(strings.Split(h, ":")[0], "."))
		if r := roundTrip(t, px.addr, "GET "+path+" HTTP/1.1\r\nHost: "+canon+"\r\n\r\n"); string(r.Body()) != "site" {
			t.Errorf("Host %q after %q: got %q (Cache-Status %q): another route's answer",
				canon, h, r.Body(), r.Header.Peek("Cache-Status"))
		}
	}
}

// TestCachedSetCookieNeverReplayed: a cacheable response with Set-Cookie, in
// any spelling of the name, is not stored (or, with cache_set_cookie, stored
// without it): one client's cookie never reaches another.
func TestCachedSetCookieNeverReplayed(t *testing.T) {
	for _, allow := range []bool{false, true} {
		for _, name := range []string{"Set-Cookie", "set-cookie", "SET-COOKIE", "Set-Cookie2"} {
			var n atomic.Int64
			px, _, _ := cachedProxyPolicy(t, cache.PolicyOptions{MaxObjectBytes: 1 << 20, CacheSetCookie: allow},
				func(string, []byte) string {
					sid := "sid=secret" + strconv.FormatInt(n.Add(1), 10)
					return "HTTP/1.1 200 OK\r\nCache-Control: public, max-age=600\r\n" + name + ": " + sid + "\r\nContent-Length: 2\r\n\r\nok"
				})
			roundTrip(t, px.addr, "GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
			r := roundTrip(t, px.addr, "GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
			raw := r.Header.String()
			if strings.Contains(raw, "secret1") {
				t.Errorf("cache_set_cookie=%v, %s: the second client got the first one's cookie:\n%s", allow, name, raw)
			}
		}
	}
}

// TestCachedVaryPrivateFields: a backend answering with its view of the
// client's Cookie or Authorization and "Vary: Cookie, Authorization" is stored per
// value: no client gets a variant made for another's cookie or credentials,
// whatever the spelling, order or splitting of the fields.
func TestCachedVaryPrivateFields(t *testing.T) {
	px, _, _ := cachedProxyPolicy(t, cache.PolicyOptions{MaxObjectBytes: 1 << 20},
		func(head string, _ []byte) string {
			var seen []string
			for _, l := range strings.Split(head, "\r\n")[1:] {
				if k, v, ok := strings.Cut(l, ":"); ok && (strings.EqualFold(k, "cookie") || strings.EqualFold(k, "authorization")) {
					seen = append(seen, strings.ToLower(k)+"="+strings.TrimSpace(v))
				}
			}
			body := strings.Join(seen, "|")
			return "HTTP/1.1 200 OK\r\nCache-Control: public, max-age=600\r\nVary: Cookie, Authorization\r\nContent-Length: " +
				strconv.Itoa(len(body)) + "\r\n\r\n" + body
		})
	clients := [][]string{
		{"Cookie: sid=alice"},
		{"Cookie: sid=bob"},
		{"cookie: sid=alice; x=1"},
		{"Cookie: sid=alice", "Cookie: x=1"},
		{"Authorization: Bearer alice"},
		{"Authorization: Bearer bob"},
		{"Cookie: sid=alice", "Authorization: Bearer bob"},
		{},
	}
	first := map[int]string{}
	for round := range 2 {
		for i, hs := range clients {
			raw := "GET /v HTTP/1.1\r\nHost: x\r\n"
			for _, h := range hs {
				raw += h + "\r\n"
			}
			r := roundTrip(t, px.addr, raw+"\r\n")
			body := string(r.Body())
			if round == 0 {
				first[i] = body
				continue
			}
			if body != first[i] {
				t.Errorf("client %q: got %q (Cache-Status %q), its own answer was %q", hs, body, r.Header.Peek("Cache-Status"), first[i])
			}
		}
	}
	for i := range clients {
		for j := range i {
			if first[i] == first[j] && !(strings.Contains(first[i], "x=1") && strings.Contains(first[j], "x=1")) {
				t.Errorf("clients %q and %q got one variant %q", clients[i], clients[j], first[i])
			}
		}
	}
}

// TestCachedRefreshOfHugeBodyCutShort: the background refresh of a
// stale-while-revalidate entry gets a body over max_object_bytes that the
// backend cuts short (no last chunk, then close): the slot comes back, the
// stored response stays and is whole, and later requests are answered.
func TestCachedRefreshOfHugeBodyCutShort(t *testing.T) {
	var n atomic.Int64
	big := strings.Repeat("b", 100<<10)
	px, be, pool := cachedProxyPolicy(t, cache.PolicyOptions{MaxObjectBytes: 64 << 10},
		func(head string, _ []byte) string {
			if n.Add(1) == 1 {
				return "HTTP/1.1 200 OK\r\nCache-Control: max-age=0, stale-while-revalidate=60\r\nContent-Length: 5\r\n\r\nsmall"
			}
			// 100 KiB of chunked body and no last chunk: the body ends
			// only when the backend closes the connection (be.close below).
			return "HTTP/1.1 200 OK\r\nCache-Control: max-age=0, stale-while-revalidate=60\r\nTransfer-Encoding: chunked\r\n\r\n" +
				strconv.FormatInt(int64(len(big)), 16) + "\r\n" + big + "\r\n"
		})
	const get = "GET /cut HTTP/1.1\r\nHost: x\r\n\r\n"
	roundTrip(t, px.addr, get)
	for i := range 5 {
		r := roundTrip(t, px.addr, get)
		if string(r.Body()) != "small" {
			t.Fatalf("request %d: %d %q (Cache-Status %q)", i, r.StatusCode(), r.Body(), r.Header.Peek("Cache-Status"))
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(be.requests()) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no background refresh reached the backend")
		}
		time.Sleep(5 * time.Millisecond)
	}
	be.close() // cuts the unfinished chunked body of any refresh still reading
	awaitIdle(t, pool)
}

// TestCachedConnectionOverflowNoPoisoning: a request the cache edits (here:
// the client's If-None-Match is taken off) is written from fasthttp's parsed
// header, which dropped only the first eight fields its Connection lines name.
// A ninth reached the backend, while the Vary key, built from the request as
// forwarded, counted it absent: the variant made for the attacker's header was
// stored as the one for clients without it.
func TestCachedConnectionOverflowNoPoisoning(t *testing.T) {
	px, be, _ := cachedProxyPolicy(t, cache.PolicyOptions{MaxObjectBytes: 1 << 20},
		func(head string, _ []byte) string {
			v := "plain"
			for _, l := range strings.Split(head, "\r\n") {
				if k, val, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, "x-variant") {
					v = strings.TrimSpace(val)
				}
			}
			return "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nVary: X-Variant\r\nETag: \"e\"\r\nContent-Length: " +
				strconv.Itoa(len(v)) + "\r\n\r\n" + v
		})
	attack := "GET /p HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"zzz\"\r\n" +
		"Connection: a1, a2, a3, a4, a5, a6, a7, a8, X-Variant\r\nX-Variant: evil\r\n\r\n"
	if r := roundTrip(t, px.addr, attack); string(r.Body()) == "evil" {
		t.Errorf("the attacker's request forwarded X-Variant, which its Connection names: %q", be.requests())
	}
	if r := roundTrip(t, px.addr, "GET /p HTTP/1.1\r\nHost: x\r\n\r\n"); string(r.Body()) != "plain" {
		t.Fatalf("a plain client got %q (Cache-Status %q): the attacker's variant", r.Body(), r.Header.Peek("Cache-Status"))
	}
}

// TestResponseConnectionOverflow: the same on the way back, without the cache:
// the backend's Connection lines naming more than eight fields let the ninth
// through to the client, though it is hop-by-hop (RFC 9110 §7.6.1).
func TestResponseConnectionOverflow(t *testing.T) {
	be := newRawBackend(t, func(string, []byte) string {
		return "HTTP/1.1 200 OK\r\nConnection: a1, a2, a3, a4, a5, a6, a7, a8, X-Hop\r\nX-Hop: secret\r\nContent-Length: 2\r\n\r\nok"
	})
	px := newTestProxy(t, Options{}, PoolSpec{}, be.addr())
	r := roundTrip(t, px.addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if v := r.Header.Peek("X-Hop"); len(v) > 0 {
		t.Fatalf("X-Hop %q reached the client though Connection names it", v)
	}
}

// TestCachedVaryDuplicateLinesNoPoisoning: a Vary key read a field the way
// fasthttp parses it, where the last of several User-Agent or Content-Type
// lines wins, while the backend received every line and (like most) read the
// first. A request with "User-Agent: evil" then "User-Agent: <a common agent>"
// stored the answer made for "evil" as the variant of the common agent. Vary
// keys read the lines as forwarded: all of them, in order.
func TestCachedVaryDuplicateLinesNoPoisoning(t *testing.T) {
	for _, name := range []string{"User-Agent", "Content-Type", "Cookie", "Accept-Language"} {
		t.Run(name, func(t *testing.T) {
			px, _, _ := cachedProxyPolicy(t, cache.PolicyOptions{MaxObjectBytes: 1 << 20},
				func(head string, _ []byte) string {
					v := "none"
					for _, l := range strings.Split(head, "\r\n")[1:] {
						if k, val, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, name) {
							v = strings.TrimSpace(val) // the first line wins
							break
						}
					}
					return "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nVary: " + name + "\r\nContent-Length: " +
						strconv.Itoa(len(v)) + "\r\n\r\n" + v
				})
			roundTrip(t, px.addr, "GET /u HTTP/1.1\r\nHost: x\r\n"+name+": evil\r\n"+name+": common\r\n\r\n")
			r := roundTrip(t, px.addr, "GET /u HTTP/1.1\r\nHost: x\r\n"+name+": common\r\n\r\n")
			if string(r.Body()) != "common" {
				t.Fatalf("%s: common: got %q (Cache-Status %q), the variant made for another value", name, r.Body(), r.Header.Peek("Cache-Status"))
			}
		})
	}
}
