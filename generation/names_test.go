package generation

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/floodgate/floodgate/balancer"
	"github.com/floodgate/floodgate/conf"
	"github.com/floodgate/floodgate/health"
	"github.com/floodgate/floodgate/registry"
)

// TestNamesAgreeWithConf checks that `floodgate -check` (conf.Parse) and the
// registry (a reload through ApplyConfig, and the state file the admin API
// writes) accept and refuse the same pool and route names: one rule,
// internal/ident, behind all of them.
func TestNamesAgreeWithConf(t *testing.T) {
	names := []string{
		"shop", "a", "-", ".", "..", "_", "API_v2.eu-west", "0", "a-", ".hidden",
		strings.Repeat("x", 64), strings.Repeat("x", 65), strings.Repeat("é", 32),
		"", " ", "a b", " a", "a/b", "a:b", "a*", "a@b", "a+b", "a%20b", "a,b",
		"é", "shop\u200b", "a\tb", "a\x00b", "a\x7f", "日本",
	}
	h := newHarness(t, Options{})
	h.init(registry.Config{
		Pools:  []registry.PoolSpec{pool("base", PoolSettings{}, be("10.0.0.1:80", 1))},
		Routes: Routes(route("base", "/", "base")),
	}, registry.State{})
	for _, n := range names {
		q := strconv.Quote(n)
		for _, kind := range []string{"pool", "route"} {
			pn, rn := "shop", "site"
			if kind == "pool" {
				pn = n
			} else {
				rn = n
			}
			yaml := fmt.Sprintf("pools: [{name: %s, backends: [{address: \"10.0.0.1:8080\"}]}]\nroutes: [{name: %s, path_prefix: /, pool: %s}]\n",
				strconv.Quote(pn), strconv.Quote(rn), strconv.Quote(pn))
			_, cerr := conf.Parse("t.yaml", []byte(yaml))
			var es conf.Errors
			if cerr != nil && (!errors.As(cerr, &es) || len(es) == 0 || !strings.HasSuffix(es[0].Field, ".name")) {
				t.Errorf("%s %s: conf refused it first for another reason than the name: %v", kind, q, cerr)
				continue
			}
			_, rerr := h.r.ApplyConfig(h.ctx, registry.Config{
				Pools:  []registry.PoolSpec{pool(pn, PoolSettings{}, be("10.0.0.1:8080", 1))},
				Routes: Routes(route(rn, "/", pn)),
			})
			if rerr != nil && !errors.Is(rerr, registry.ErrInvalid) {
				t.Errorf("%s %s: registry refused it for another reason than the name: %v", kind, q, rerr)
				continue
			}
			if (cerr == nil) != (rerr == nil) {
				t.Errorf("%s %s: conf -check error %v, registry error %v", kind, q, cerr, rerr)
			}
			if kind == "pool" {
				st := fmt.Sprintf(`{"version":%d,"backends":[{"pool":%s,"address":"10.0.0.1:8080","weight":1,"source":"api"}]}`, registry.StateVersion, jsonString(n))
				_, serr := registry.ParseState([]byte(st))
				if (cerr == nil) != (serr == nil) {
					t.Errorf("pool %s: conf -check error %v, state file error %v", q, cerr, serr)
				}
			}
		}
	}
}

// jsonString quotes s for JSON: strconv.Quote's \x escapes are not JSON.
func jsonString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// TestPoolBoundsAgreeWithBalancer checks that `floodgate -check` accepts a
// pool at the balancer's bounds and refuses one past them.
func TestPoolBoundsAgreeWithBalancer(t *testing.T) {
	parse := func(weight, n int) error {
		var b strings.Builder
		b.WriteString("pools:\n  - name: shop\n    backends:\n")
		for i := range n {
			fmt.Fprintf(&b, "      - {address: \"10.%d.%d.%d:80\", weight: %d}\n", i>>16&255, i>>8&255, i&255, weight)
		}
		b.WriteString("routes: [{name: site, path_prefix: /, pool: shop}]\n")
		_, err := conf.Parse("t.yaml", []byte(b.String()))
		return err
	}
	if err := parse(balancer.MaxWeight, 1); err != nil {
		t.Errorf("weight %d refused by conf: %v", balancer.MaxWeight, err)
	}
	if parse(balancer.MaxWeight+1, 1) == nil {
		t.Errorf("weight %d accepted by conf, refused by the balancer", balancer.MaxWeight+1)
	}
	if err := parse(1, balancer.MaxBackends); err != nil {
		t.Errorf("%d backends refused by conf: %v", balancer.MaxBackends, err)
	}
	if parse(1, balancer.MaxBackends+1) == nil {
		t.Errorf("%d backends accepted by conf, refused by the balancer", balancer.MaxBackends+1)
	}
}

// TestHealthPathAgreesWithHealth checks that `floodgate -check` and
// health.Check.Validate (which a start runs) agree on health check paths.
func TestHealthPathAgreesWithHealth(t *testing.T) {
	for _, p := range []string{"/", "/healthz", "/a?b=c", "/a%20b", "/%zz", "/a%", "/a%2", "/ok%41"} {
		yaml := fmt.Sprintf("pools: [{name: shop, health: {type: http, path: %s}, backends: [{address: \"10.0.0.1:80\"}]}]\nroutes: [{name: s, path_prefix: /, pool: shop}]\n", strconv.Quote(p))
		_, cerr := conf.Parse("t.yaml", []byte(yaml))
		herr := health.Check{Type: health.TypeHTTP, Path: p, Interval: time.Second}.Validate()
		if (cerr == nil) != (herr == nil) {
			t.Errorf("path %q: conf -check error %v, health error %v", p, cerr, herr)
		}
	}
}
