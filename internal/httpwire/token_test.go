package httpwire

import (
	"strings"
	"testing"
)

func TestTokenHelpers(t *testing.T) {
	if got := string(TrimOWS([]byte(" \t a b\t "))); got != "a b" {
		t.Errorf("TrimOWS = %q", got)
	}
	if !EqualFold([]byte("Content-Length"), "content-length") || EqualFold([]byte("content-lengtH"), "Content-length") {
		t.Error("EqualFold compares b folded with a lower-case s")
	}
	if !EqualFoldBytes([]byte("X-A"), []byte("x-a")) || EqualFoldBytes([]byte("x-a"), []byte("x-b")) {
		t.Error("EqualFoldBytes")
	}
	if !EqualFoldDash([]byte("X_Forwarded-FOR"), "x-forwarded-for") || EqualFoldDash([]byte("x-forwarded-fo"), "x-forwarded-for") {
		t.Error("EqualFoldDash")
	}
	for v, want := range map[string]bool{"keep-alive, Upgrade": true, "upgrade": true, " , UPGRADE ,": true, "upgrades": false, "": false} {
		if got := HasToken([]byte(v), "upgrade"); got != want {
			t.Errorf("HasToken(%q) = %v", v, got)
		}
		if got := ListHas([]byte(v), []byte("Upgrade")); got != want {
			t.Errorf("ListHas(%q) = %v", v, got)
		}
	}
	if !HasTokenDash([]byte("close, X_Rate_Key"), "x-rate-key") || HasTokenDash([]byte("x-rate-keys"), "x-rate-key") {
		t.Error("HasTokenDash")
	}
	if ListHas([]byte("a, ,b"), nil) {
		t.Error("ListHas matched an empty element")
	}
	var buf [2][]byte
	toks, over := AppendTokens(buf[:0], []byte(" a ,, b,c"))
	if len(toks) != 2 || string(toks[0]) != "a" || string(toks[1]) != "b" || !over {
		t.Errorf("AppendTokens = %q %v", toks, over)
	}
	if !NamedIn(toks, []byte("B")) || NamedIn(toks, []byte("c")) {
		t.Error("NamedIn")
	}
	for _, c := range []byte("!#$%&'*+-.^_`|~09azAZ") {
		if !IsTokenChar(c) {
			t.Errorf("IsTokenChar(%q) = false", c)
		}
	}
	for _, c := range []byte(" \t\"(),/:;<=>?@[\\]{}\x00\x7f\x80") {
		if IsTokenChar(c) {
			t.Errorf("IsTokenChar(%q) = true", c)
		}
	}
}

func TestIsHopByHop(t *testing.T) {
	for _, n := range []string{"Connection", "keep-alive", "Proxy-Connection", "proxy-authorization", "Proxy-Authenticate",
		"TE", "Trailer", "transfer-encoding", "UPGRADE", "HTTP2-Settings"} {
		if !IsHopByHop([]byte(n)) {
			t.Errorf("IsHopByHop(%q) = false", n)
		}
	}
	for _, n := range []string{"", "t", "Content-Length", "Trailers", "Host", "Proxy-Authentication-Info", "X-Connection"} {
		if IsHopByHop([]byte(n)) {
			t.Errorf("IsHopByHop(%q) = true", n)
		}
	}
}

func TestFields(t *testing.T) {
	raw := []byte("Host: x\r\nConnection: keep-alive, X-A\r\nnocolon\r\nX-A:  1 \r\nx-a: 2\nContent-Length: 012\r\n\r\nBody: no\r\n")
	var got []string
	for it := Fields(raw); ; {
		k, v, ok := it.Next()
		if !ok {
			break
		}
		got = append(got, string(k)+"="+string(v))
	}
	if s := strings.Join(got, "|"); s != "Host=x|Connection=keep-alive, X-A|X-A=1|x-a=2|Content-Length=012" {
		t.Errorf("Fields: %s", s)
	}
	if v := Value(raw, "X-a"); string(v) != "1" {
		t.Errorf("Value = %q", v)
	}
	if Value(raw, "body") != nil || Has(raw, "body") || !Has(raw, "x-a") {
		t.Error("Value or Has read past the end of the block")
	}
	if !ConnectionNames(raw, []byte("x-A")) || ConnectionNames(raw, []byte("Host")) {
		t.Error("ConnectionNames")
	}
	if n, ok := DeclaredLength(raw); !ok || n != 12 {
		t.Errorf("DeclaredLength = %d %v", n, ok)
	}
	for v, ok := range map[string]bool{"0": true, "123456789012345678": true, "1234567890123456789": false, "": false, "+1": false, "1 ": false, "1,1": false} {
		if _, got := ParseContentLength([]byte(v)); got != ok {
			t.Errorf("ParseContentLength(%q) ok = %v", v, got)
		}
	}
}

func TestHelpersZeroAlloc(t *testing.T) {
	raw := []byte("Host: x\r\nConnection: keep-alive, X-A\r\nX-A: 1\r\nContent-Length: 3\r\n\r\n")
	name := []byte("X-A")
	if n := testing.AllocsPerRun(100, func() {
		var buf [8][]byte
		toks, _ := AppendTokens(buf[:0], Value(raw, "connection"))
		_ = NamedIn(toks, name) && ConnectionNames(raw, name) && IsHopByHop(name) && Has(raw, "host")
		_, _ = DeclaredLength(raw)
	}); n != 0 {
		t.Errorf("allocs = %v, want 0", n)
	}
}

func TestIsToken(t *testing.T) {
	for _, s := range []string{"GET", "X-Api-Key", "a", "!#$%&'*+-.^_`|~09azAZ", strings.Repeat("a", 1000)} {
		if !IsToken(s) {
			t.Errorf("IsToken(%q) = false", s)
		}
	}
	for _, s := range []string{"", "a b", "a:b", "a\x00", "é", "a\tb", "(x)", "a/b", "a,b", "\x7f"} {
		if IsToken(s) {
			t.Errorf("IsToken(%q) = true", s)
		}
	}
	for c := 0; c < 256; c++ {
		if IsToken(string([]byte{byte(c)})) != IsTokenChar(byte(c)) {
			t.Errorf("IsToken and IsTokenChar disagree on %#x", c)
		}
	}
}

func TestIsOriginForm(t *testing.T) {
	for _, s := range []string{"/", "/healthz", "/a?b=c", "/a%20b", "/a;b"} {
		if !IsOriginForm(s) {
			t.Errorf("IsOriginForm(%q) = false", s)
		}
	}
	for _, s := range []string{"", "healthz", "http://x/", "/%zz", "/a%", "/a\x00", "/a\nb"} {
		if IsOriginForm(s) {
			t.Errorf("IsOriginForm(%q) = true", s)
		}
	}
}

// sinkBool keeps the compiler from dropping the comparisons benchmarked.
var sinkBool bool

func BenchmarkEqualFold(b *testing.B) {
	k := []byte("X-Forwarded-For")
	b.Run("Bytes", func(b *testing.B) {
		name := []byte("x-forwarded-for")
		for b.Loop() {
			sinkBool = EqualFoldBytes(k, name)
		}
	})
	b.Run("Dash", func(b *testing.B) {
		for b.Loop() {
			sinkBool = EqualFoldDash(k, "x_forwarded_for")
		}
	})
	b.Run("HasTokenDash", func(b *testing.B) {
		v := []byte("keep-alive, X-Forwarded-For")
		for b.Loop() {
			sinkBool = HasTokenDash(v, "x_forwarded_for")
		}
	})
}
