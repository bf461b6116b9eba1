package balancer

import "github.com/floodgate/floodgate/internal/limits"

// Limits on pools. They bound the memory and build time of the ring, which holds
// one uint16 per slot: at most about (maxRing+MaxBackends)*2 bytes (~520 KB) per
// pool generation, and typically a few KB.
const (
	// MaxWeight is the largest backend weight NewPool accepts (the config
	// file's bound too: package internal/limits).
	MaxWeight = limits.MaxWeight
	// MaxBackends is the most backends NewPool accepts in one pool. It keeps ring
	// indices in a uint16 and the linear fallback pass of a pick short.
	MaxBackends = limits.MaxBackends

	// maxRing is the longest ring built. Weights whose sum, after dividing by
	// their GCD, exceeds it (only possible beyond 262 backends) are scaled down
	// proportionally, keeping every non-zero weight at least 1. Each backend's
	// share is then off by a few slots in maxRing: around 0.001% of the traffic.
	maxRing = 1 << 18
	// ringBuildBudget bounds slots*backends, the cost of simulating nginx step by
	// step, to a few milliseconds. Larger pools use an equivalent-share deadline
	// schedule built in O(slots*log(backends)); see deadlineRing.
	ringBuildBudget = 1 << 24
)

// buildRing returns one cycle of the smooth weighted round-robin schedule over
// weights, as indices into weights: Pick walks it with an atomic cursor. Over one
// cycle each backend appears exactly weight/gcd times, so over any len(ring)
// consecutive picks each backend gets exactly its share; and after any t picks
// each backend has had within one pick of t times its share. Zero weights (draining
// backends) get no slot; the ring is empty if every weight is zero.
//
// Weights are divided by their GCD first (60/40 needs a ring of 5, not 100) and
// scaled down if the cycle would exceed maxRing. The schedule is nginx's
// (smoothRing) whenever slots*backends fits ringBuildBudget, which covers every
// pool of up to 128 backends and any pool whose reduced weights are modest; beyond
// that, deadlineRing gives the same counts with equally even spacing.
//
// buildRing must only be given weights in [0, MaxWeight] and at most
// MaxBackends of them.
func buildRing(weights []int) []uint16 {
	w := make([]int64, len(weights))
	var g, total, active int64
	for i, x := range weights {
		if x <= 0 {
			continue
		}
		w[i] = int64(x)
		g = gcd(g, w[i])
		total += w[i]
		active++
	}
	if total == 0 {
		return nil
	}
	total = reduce(w, g)
	if total > maxRing {
		g = 0
		for i, x := range w {
			if x != 0 {
				w[i] = max(1, x*maxRing/total)
				g = gcd(g, w[i])
			}
		}
		total = reduce(w, g)
	}
	if total*active <= ringBuildBudget {
		return smoothRing(w, total)
	}
	return deadlineRing(w, total)
}

// reduce divides every weight by g and returns the new sum.
func reduce(w []int64, g int64) (total int64) {
	for i := range w {
		w[i] /= g
		total += w[i]
	}
	return total
}

// smoothRing simulates ngx_http_upstream_get_peer in nginx's
// ngx_http_upstream_round_robin.c for total steps: every peer's current_weight
// grows by its weight, the peer with the largest current_weight wins (the first
// on a tie, as nginx's strict ">" does), and the winner's current_weight drops by
// the total. After total steps every current_weight is back to zero, so the
// cycle repeats forever: 5/1/1 gives a a b a c a a, a a b a c a a, ...
func smoothRing(w []int64, total int64) []uint16 {
	ring := make([]uint16, total)
	cur := make([]int64, len(w))
	for step := range ring {
		best := -1
		for i, x := range w {
			if x == 0 {
				continue
			}
			cur[i] += x
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= total
		ring[step] = uint16(best)
	}
	return ring
}

// deadlineRing orders all slots by deadline: backend i's k-th slot (k from 0) is
// due at (2k+1)/(2*w[i]) of the cycle, ties going to the lower index. Each
// backend's slots are then spaced total/w[i] apart (plus or minus one), which is
// the evenness nginx's smooth round-robin also achieves, at O(log n) per slot
// (a binary heap) instead of nginx's O(n).
func deadlineRing(w []int64, total int64) []uint16 {
	type entry struct {
		i    int   // backend index
		k, w int64 // next slot number, weight
	}
	// a is due before b: (2a.k+1)/(2a.w) < (2b.k+1)/(2b.w), cross-multiplied.
	less := func(a, b entry) bool {
		l, r := (2*a.k+1)*b.w, (2*b.k+1)*a.w
		return l < r || (l == r && a.i < b.i)
	}
	var h []entry
	for i, x := range w {
		if x != 0 {
			h = append(h, entry{i: i, w: x})
		}
	}
	down := func(j int) {
		for {
			c := 2*j + 1
			if c >= len(h) {
				return
			}
			if c+1 < len(h) && less(h[c+1], h[c]) {
				c++
			}
			if !less(h[c], h[j]) {
				return
			}
			h[j], h[c] = h[c], h[j]
			j = c
		}
	}
	for j := len(h)/2 - 1; j >= 0; j-- {
		down(j)
	}
	ring := make([]uint16, total)
	for step := range ring {
		ring[step] = uint16(h[0].i)
		// Every backend runs out of slots exactly when the cycle ends, so the
		// heap never empties early.
		h[0].k++
		down(0)
	}
	return ring
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
