package httpwire

import "testing"

func TestHostNames(t *testing.T) {
	for in, want := range map[string]string{
		"Shop.Example": "shop.example", "shop.example.": "shop.example", "a..": "a", ".": ".",
		"[::FFFF:7f00:1]": "[::ffff:127.0.0.1]", "[2001:DB8::1]": "[2001:db8::1]", "[1.2.3.4]": "[1.2.3.4]", "[zz]": "[zz]",
	} {
		if got := string(AppendHostName(nil, []byte(in))); got != want {
			t.Errorf("AppendHostName(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"a.example:8080": "a.example", "a.example": "a.example", "[::1]:80": "[::1]", "[::1]": "[::1]", "a:b": "a:b", "": "",
	} {
		if got := string(HostOnly([]byte(in))); got != want {
			t.Errorf("HostOnly(%q) = %q, want %q", in, got, want)
		}
	}
	var buf [64]byte
	name := []byte("[2001:DB8::1]")
	if n := testing.AllocsPerRun(100, func() { AppendHostName(buf[:0], name) }); n != 0 {
		t.Errorf("AppendHostName allocates %v", n)
	}
}
