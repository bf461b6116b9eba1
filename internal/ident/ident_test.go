package ident

import (
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	for _, s := range []string{"a", "api", "API_v2.eu-west", "-", ".", "..", "_", strings.Repeat("x", MaxLen)} {
		if !Valid(s) {
			t.Errorf("Valid(%q) = false", s)
		}
	}
	for _, s := range []string{"", strings.Repeat("x", MaxLen+1), "a b", "a/b", "a:b", "é", "a\x00", "a\n", "a*", "ä"[:1]} {
		if Valid(s) {
			t.Errorf("Valid(%q) = true", s)
		}
	}
}
