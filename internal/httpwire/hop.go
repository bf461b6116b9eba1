package httpwire

// Hop-by-hop fields (RFC 9110 §7.6.1) are meaningful for one connection only
// and are removed in both directions, as are the fields that Connection
// names. The list: Connection, Keep-Alive, Proxy-Connection,
// Proxy-Authorization, Proxy-Authenticate, TE, Trailer, Transfer-Encoding,
// Upgrade, and HTTP2-Settings, which belongs to an h2c upgrade (RFC 7540
// §3.2.1) and is connection-specific even when Connection does not name it.

// IsHopByHop reports whether name is a hop-by-hop field, ignoring case.
func IsHopByHop(name []byte) bool {
	if len(name) < 2 {
		return false
	}
	switch name[0] | 0x20 {
	case 'c':
		return EqualFold(name, "connection")
	case 'h':
		return EqualFold(name, "http2-settings")
	case 'k':
		return EqualFold(name, "keep-alive")
	case 'p':
		return EqualFold(name, "proxy-connection") || EqualFold(name, "proxy-authorization") ||
			EqualFold(name, "proxy-authenticate")
	case 't':
		return EqualFold(name, "te") || EqualFold(name, "trailer") || EqualFold(name, "transfer-encoding")
	case 'u':
		return EqualFold(name, "upgrade")
	}
	return false
}
