package proxy

import (
	"github.com/valyala/fasthttp"
)

// Capture connects the proxy to the order capture journal (package
// degrade/capture). Not built yet.
type Capture struct{}

func (c *Capture) capture(s *Server, ctx *fasthttp.RequestCtx, rt *route, info *reqInfo) bool {
	return false
}
