package cache

import "github.com/floodgate/floodgate/internal/httpwire"

// appendHost appends the canonical form of a request's authority for the
// primary key, so that every spelling of one origin shares its stored
// responses and a purge finds them however it names the host: lower case, a
// trailing dot of a DNS name dropped ("localhost." is "localhost"), the
// port's leading zeros dropped and the scheme's default port dropped
// ("LOCALHOST:080" is "localhost" for http), and an IPv6 literal in its
// RFC 5952 form ("[::FFFF:7f00:1]" is "[::ffff:127.0.0.1]"). It does not
// allocate.
func appendHost(dst []byte, scheme string, host []byte) []byte {
	name, port := host, []byte(nil)
	if i := lastColonOutsideBrackets(host); i >= 0 {
		name, port = host[:i], host[i+1:]
	}
	dst = httpwire.AppendHostName(dst, name)
	if port == nil {
		return dst
	}
	digits := true
	for _, c := range port {
		if c < '0' || c > '9' {
			digits = false
			break
		}
	}
	if !digits {
		// Not a port: keep it as sent, so it cannot collide with a real one.
		dst = append(dst, ':')
		return httpwire.AppendLower(dst, port)
	}
	for len(port) > 1 && port[0] == '0' {
		port = port[1:]
	}
	if len(port) == 0 || (scheme == "http" && string(port) == "80") || (scheme == "https" && string(port) == "443") {
		return dst
	}
	dst = append(dst, ':')
	return append(dst, port...)
}

// lastColonOutsideBrackets returns the index of the colon before a port, or -1.
func lastColonOutsideBrackets(h []byte) int {
	for i := len(h) - 1; i >= 0; i-- {
		switch h[i] {
		case ':':
			return i
		case ']':
			return -1
		}
	}
	return -1
}
