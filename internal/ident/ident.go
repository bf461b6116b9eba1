// Package ident holds the rule for pool and route names: 1 to MaxLen
// characters from A-Z a-z 0-9 _ . -. The config file (package conf) and the
// registry (the admin API and the state file) both call Valid, so that
// `floodgate -check` accepts exactly the names a start and the API accept.
//
// It imports nothing, so that conf and the runtime packages can both use it.
package ident

// MaxLen bounds a pool or route name.
const MaxLen = 64

// Valid reports whether s is a pool or route name: 1 to MaxLen characters
// from A-Z a-z 0-9 _ . -.
func Valid(s string) bool {
	if s == "" || len(s) > MaxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !IsChar(s[i]) {
			return false
		}
	}
	return true
}

// IsChar reports whether c may appear in a pool or route name.
func IsChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
}
