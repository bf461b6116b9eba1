package limits

import "github.com/floodgate/floodgate/internal/field"

// CheckProxyProtocol is the rule of proxy_protocol, which conf checks the file
// with and the proxy's listener lives by: PROXY headers are believed only from
// trusted_proxies, so with none trusted every header would be refused and the
// setting would do nothing but refuse connections. trusted is the number of
// trusted_proxies entries.
func CheckProxyProtocol(on bool, trusted int) []field.Problem {
	if on && trusted == 0 {
		return []field.Problem{field.Errorf("proxy_protocol", "requires trusted_proxies: PROXY headers are accepted only from the load balancers listed there")}
	}
	return nil
}
