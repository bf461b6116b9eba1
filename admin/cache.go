package admin

import (
	"errors"
	"net/http"
	"strings"
)

// CachePurger is the response cache's purge side; *cache.Cache implements it.
type CachePurger interface {
	Purge(host, prefix string) int
	PurgeKey(host, pathAndQuery string) int
}

var errNoCache = errors.New("the response cache is not configured in this floodgate")

// purgeJSON is the answer of DELETE /api/v1/cache.
type purgeJSON struct {
	Purged int    `json:"purged"`
	Host   string `json:"host"`
	Prefix string `json:"prefix,omitempty"`
	Key    string `json:"key,omitempty"`
}

// purgeCache removes stored responses: every one whose path starts with
// ?prefix=, or the one stored for ?key= (path and query, exact), on ?host= or any
// host. Exactly one of prefix and key is required; each must start with "/".
func (s *Server) purgeCache(w http.ResponseWriter, r *http.Request) {
	if !decode(w, r, nil, true) {
		return
	}
	purger, _ := s.opts.Cache.(CachePurger)
	if purger == nil {
		s.writeErr(w, errNoCache)
		return
	}
	q := r.URL.Query()
	for k := range q {
		if k != "prefix" && k != "key" && k != "host" {
			writeError(w, http.StatusBadRequest, "unknown query parameter "+k+": want prefix, key or host")
			return
		}
	}
	prefix, key, host := q.Get("prefix"), q.Get("key"), strings.ToLower(q.Get("host"))
	if (prefix == "") == (key == "") {
		writeError(w, http.StatusBadRequest, "give exactly one of prefix=/path or key=/path?query")
		return
	}
	if p := prefix + key; !strings.HasPrefix(p, "/") {
		writeError(w, http.StatusBadRequest, "prefix and key start with /")
		return
	}
	out := purgeJSON{Host: host, Prefix: prefix, Key: key}
	if prefix != "" {
		out.Purged = purger.Purge(host, prefix)
	} else {
		out.Purged = purger.PurgeKey(host, key)
	}
	s.log.Info("admin: cache purged", "host", host, "prefix", prefix, "key", key, "entries", out.Purged)
	writeJSON(w, http.StatusOK, out)
}
