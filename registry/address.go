package registry

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// maxAddressLen bounds a backend address: a DNS name (253) plus a port.
const maxAddressLen = 260

// CheckAddress reports whether addr is a backend address the way the config file
// accepts one: host:port with a required host (an IP, IPv6 in brackets, or a DNS
// name) and a numeric port 1-65535. The error wraps ErrInvalid and says what is
// wrong. It is a pure function, safe for concurrent use.
func CheckAddress(addr string) error {
	if addr == "" {
		return invalidf("address: required, e.g. 10.0.0.1:8080")
	}
	if len(addr) > maxAddressLen {
		return invalidf("address: longer than %d bytes", maxAddressLen)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return invalidf("address %q: must be host:port, e.g. 10.0.0.1:8080", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '+' || port[0] == '-' {
		return invalidf("address %q: port must be a number between 1 and 65535", addr)
	}
	if host == "" {
		return invalidf("address %q: needs a host, e.g. 10.0.0.1:8080", addr)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return invalidf("address %q: IPv6 zones are not supported", addr)
		}
		return nil
	}
	if !isHostname(host) {
		return invalidf("address %q: invalid host %q", addr, host)
	}
	return nil
}

// isHostname accepts DNS names, letters in either case and underscores (service
// names use them), as the config file does.
func isHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
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
