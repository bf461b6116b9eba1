package registry

import (
	"github.com/floodgate/floodgate/internal/hostport"
	"github.com/floodgate/floodgate/internal/ident"
)

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

// validName reports whether s is a pool or route name, by the config file's
// rule (package ident).
func validName(s string) bool { return ident.Valid(s) }
