package registry

import "github.com/floodgate/floodgate/internal/hostport"

// CanonicalAddress returns the one spelling of a backend address that the
// registry stores, compares and dials, or an error wrapping ErrInvalid that
// says what is wrong: the same rules as the config file (package hostport).
// Port without leading zeros, IPv4-mapped IPv6 as IPv4, IPv6 compressed in
// brackets, host names in lower case; the unspecified addresses, port 0 and
// IPv6 zones are refused. Pure; safe for concurrent use.
func CanonicalAddress(addr string) (string, error) {
	c, err := hostport.Backend(addr)
	if err != nil {
		if len(addr) > hostport.MaxLen {
			return "", invalidf("address: %v", err)
		}
		return "", invalidf("address %q: %v", addr, err)
	}
	return c, nil
}

// CheckAddress reports whether addr is a valid backend address (see
// CanonicalAddress).
func CheckAddress(addr string) error {
	_, err := CanonicalAddress(addr)
	return err
}

// validName reports whether s is a pool or route name: 1-64 characters from
// A-Z a-z 0-9 _ . -, as the config file requires.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
