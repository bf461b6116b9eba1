package httpwire

import "net/netip"

// X-Forwarded-For elements. The proxy walks the list from the right and decides
// which hops it trusts; this file only reads one element as an address, without
// allocating (netip.ParseAddr allocates for IPv6 zones and takes a string).

// ParseHop parses an X-Forwarded-For element: an IPv4 or IPv6 address, an IPv6
// address in brackets, either with a port ("192.0.2.1:4711", "[2001:db8::1]:80"),
// as proxies variously write them. IPv4-mapped IPv6 addresses are unmapped. It
// allocates nothing.
func ParseHop(b []byte) (netip.Addr, bool) {
	if len(b) > 0 && b[0] == '[' {
		i := 1
		for i < len(b) && b[i] != ']' {
			i++
		}
		if i == len(b) || (i+1 < len(b) && !validPort(b[i+1:])) {
			return netip.Addr{}, false
		}
		return parseIPv6(b[1:i])
	}
	colons, last := 0, -1
	for i, c := range b {
		if c == ':' {
			colons++
			last = i
		}
	}
	switch colons {
	case 0:
		return parseIPv4(b)
	case 1:
		if !validPort(b[last:]) {
			return netip.Addr{}, false
		}
		return parseIPv4(b[:last])
	}
	return parseIPv6(b)
}

// validPort reports whether p is ":" followed by 1 to 5 digits.
func validPort(p []byte) bool {
	if len(p) < 2 || len(p) > 6 || p[0] != ':' {
		return false
	}
	for _, c := range p[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func parseIPv4(b []byte) (netip.Addr, bool) {
	var a [4]byte
	n, digits, v := 0, 0, 0
	for i := 0; i <= len(b); i++ {
		if i == len(b) || b[i] == '.' {
			if digits == 0 || n == 4 {
				return netip.Addr{}, false
			}
			a[n] = byte(v)
			n, digits, v = n+1, 0, 0
			continue
		}
		c := b[i]
		if c < '0' || c > '9' || (digits == 1 && v == 0) { // no leading zeros, as netip
			return netip.Addr{}, false
		}
		v = v*10 + int(c-'0')
		if digits++; v > 255 {
			return netip.Addr{}, false
		}
	}
	if n != 4 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(a), true
}

// parseIPv6 parses an IPv6 address without zone, with an optional IPv4 tail.
func parseIPv6(b []byte) (netip.Addr, bool) {
	var a [16]byte
	n, ellipsis := 0, -1 // bytes written; where "::" was
	if len(b) >= 2 && b[0] == ':' && b[1] == ':' {
		ellipsis, b = 0, b[2:]
		if len(b) == 0 {
			return netip.AddrFrom16(a).Unmap(), true
		}
	}
	for len(b) > 0 {
		i, v := 0, 0
		for i < len(b) && i < 5 && IsHex(b[i]) {
			v = v<<4 | int(Unhex(b[i]))
			i++
		}
		if i == 0 || i > 4 {
			return netip.Addr{}, false
		}
		if i < len(b) && b[i] == '.' {
			// An IPv4 tail takes the last four bytes.
			if n > 12 {
				return netip.Addr{}, false
			}
			v4, ok := parseIPv4(b)
			if !ok {
				return netip.Addr{}, false
			}
			a4 := v4.As4()
			copy(a[n:], a4[:])
			n += 4
			b = nil
			break
		}
		if n == 16 {
			return netip.Addr{}, false
		}
		a[n], a[n+1] = byte(v>>8), byte(v)
		n += 2
		b = b[i:]
		if len(b) == 0 {
			break
		}
		if b[0] != ':' || len(b) == 1 {
			return netip.Addr{}, false
		}
		b = b[1:]
		if b[0] == ':' {
			if ellipsis >= 0 {
				return netip.Addr{}, false
			}
			ellipsis = n
			b = b[1:]
			if len(b) == 0 {
				break
			}
		}
	}
	if ellipsis >= 0 {
		if n == 16 {
			return netip.Addr{}, false
		}
		gap := 16 - n
		copy(a[ellipsis+gap:], a[ellipsis:n])
		for i := ellipsis; i < ellipsis+gap; i++ {
			a[i] = 0
		}
	} else if n != 16 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16(a).Unmap(), true
}
