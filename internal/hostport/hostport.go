// Package hostport checks backend addresses and writes them in one canonical
// form. The config file (package conf), the admin API and the state file
// (package registry) all go through Backend, so that `floodgate -check` accepts
// exactly what a start and the API accept, and one backend has one spelling:
// without that, "127.0.0.1:01", "[::ffff:127.0.0.1]:1" and "127.0.0.1:1" were
// three backends with three sets of health checks and connection limits.
//
// It imports only the standard library, so that conf and the runtime packages
// can both use it (docs/STYLE item 1).
package hostport

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// MaxLen bounds a backend address: a DNS name (253 bytes) plus a port.
const MaxLen = 260

// Backend returns the canonical form of a backend address "host:port", or an
// error saying what is wrong with it (without repeating the address's field
// name, which the caller knows). The canonical form has:
//
//   - the port in decimal without leading zeros, 1-65535;
//   - an IP address in its shortest standard form (IPv6 in brackets, lower
//     case, zeros compressed), an IPv4-mapped IPv6 address as IPv4;
//   - a host name in lower case.
//
// It refuses what cannot name one backend: no host, port 0, the unspecified
// addresses 0.0.0.0 and :: (they mean "every interface" to a listener; dialled,
// they reach whatever listens on the proxy's own machine), IPv6 zones, and
// names that are not DNS names (a dotted number that is no valid IPv4 address,
// such as 127.0.0.01, would be looked up in DNS). Pure; safe for concurrent use.
func Backend(addr string) (string, error) {
	if addr == "" {
		return "", errors.New("required, e.g. 10.0.0.1:8080")
	}
	if len(addr) > MaxLen {
		return "", fmt.Errorf("longer than %d bytes", MaxLen)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("must be host:port, e.g. 10.0.0.1:8080, got %q", addr)
	}
	p, err := Port(port)
	if err != nil {
		return "", err
	}
	if p == 0 {
		return "", fmt.Errorf("port 0 is not a backend's port: want 1-65535, got %q", addr)
	}
	if host == "" {
		return "", fmt.Errorf("needs a host, e.g. 10.0.0.1:8080, got %q", addr)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return "", fmt.Errorf("IPv6 zones are not supported in backend addresses, got %q", addr)
		}
		ip = ip.Unmap()
		if ip.IsUnspecified() {
			return "", fmt.Errorf("%s is the unspecified address, not a backend: name the backend's own address, e.g. 127.0.0.1:%d, got %q", ip, p, addr)
		}
		return netip.AddrPortFrom(ip, p).String(), nil
	}
	if !IsHostname(host) {
		return "", fmt.Errorf("invalid host %q", host)
	}
	if looksNumeric(host) {
		return "", fmt.Errorf("invalid IPv4 address %q", host)
	}
	return net.JoinHostPort(strings.ToLower(host), strconv.Itoa(int(p))), nil
}

// Port parses a port: decimal digits only (no sign, no spaces), 0-65535.
// Leading zeros are accepted; the value is what counts.
func Port(s string) (uint16, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("port must be a number between 1 and 65535, got %q", s)
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("port must be a number between 1 and 65535, got %q", s)
	}
	return uint16(n), nil
}

// IsHostname accepts DNS names: labels of letters in either case, digits,
// hyphens (not first or last) and underscores (service names use them), an
// optional trailing dot, at most 253 bytes.
func IsHostname(h string) bool {
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

// looksNumeric reports whether a name's last label is all digits: no DNS name
// ends that way (RFC 3696 §2), so it is a mistyped IP address.
func looksNumeric(h string) bool {
	h = strings.TrimSuffix(h, ".")
	last := h[strings.LastIndexByte(h, '.')+1:]
	return strings.TrimLeft(last, "0123456789") == ""
}
