package httpwire

import (
	"net/netip"
	"testing"
)

// TestParseHop compares the hand-written address parser (it allocates nothing)
// with netip.ParseAddr.
func TestParseHop(t *testing.T) {
	for _, s := range []string{"1.2.3.4", "0.0.0.0", "255.255.255.255", "256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1..2.3",
		"::", "::1", "1::", "2001:db8::5", "2001:db8:0:0:0:0:0:5", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::",
		"::1:2:3:4:5:6:7", "1::2::3", ":1::2", "1:::2", "::ffff:1.2.3.4", "64:ff9b::1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "12345::",
		"", "x", "1.2.3.4 ", "::1.2.3.4"} {
		want, werr := netip.ParseAddr(s)
		got, ok := ParseHop([]byte(s))
		if ok != (werr == nil) || (ok && got != want.Unmap()) {
			t.Errorf("ParseHop(%q) = %v %v, netip: %v %v", s, got, ok, want, werr)
		}
	}
	b := []byte("2001:db8::5")
	if n := testing.AllocsPerRun(100, func() { ParseHop(b) }); n != 0 {
		t.Errorf("ParseHop allocates %v", n)
	}
}
