package balancer

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// names renders ring indices as letters: 0 -> a, 1 -> b, ...
func names(ring []uint16) string {
	var sb strings.Builder
	for _, i := range ring {
		sb.WriteByte(byte('a' + i))
	}
	return sb.String()
}

// nginxSequence is a literal transcription of ngx_http_upstream_get_peer's
// selection loop (current_weight += effective_weight; best = max, first on ties;
// best -= total), with no GCD reduction, for steps picks.
func nginxSequence(weights []int, steps int) []uint16 {
	cur := make([]int, len(weights))
	out := make([]uint16, 0, steps)
	for range steps {
		best, total := -1, 0
		for i, w := range weights {
			if w == 0 {
				continue
			}
			cur[i] += w
			total += w
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		if best < 0 {
			return out
		}
		cur[best] -= total
		out = append(out, uint16(best))
	}
	return out
}

func TestBuildRing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		weights []int
		want    string
	}{
		{"nginx 5/1/1", []int{5, 1, 1}, "aabacaa"},
		{"3/2/1", []int{3, 2, 1}, "abacba"},
		{"60/40 reduced by gcd 20", []int{60, 40}, "ababa"},
		{"equal weights reduce to 1", []int{7, 7, 7}, "abc"},
		{"one backend", []int{1000}, "a"},
		{"zero weight gets no slot", []int{0, 2, 1}, "bcb"},
		{"all zero", []int{0, 0}, ""},
		{"none", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := names(buildRing(tt.weights)); got != tt.want {
				t.Errorf("buildRing(%v) = %q, want %q", tt.weights, got, tt.want)
			}
		})
	}
}

// TestBuildRingMatchesNginx checks, for random weights, that cycling the ring
// reproduces nginx's unreduced sequence step for step, and that any window of
// len(ring) consecutive picks holds each backend exactly weight/gcd times.
func TestBuildRingMatchesNginx(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		weights := make([]int, 1+rng.IntN(8))
		for i := range weights {
			weights[i] = rng.IntN(60)
			if trial%3 == 0 {
				weights[i] *= 10 // common factors, so the GCD reduction matters
			}
		}
		ring := buildRing(weights)
		sum, g := 0, int64(0)
		for _, w := range weights {
			sum += w
			g = gcd(g, int64(w))
		}
		if sum == 0 {
			if len(ring) != 0 {
				t.Fatalf("weights %v: ring %v, want empty", weights, ring)
			}
			continue
		}
		if len(ring) != sum/int(g) {
			t.Fatalf("weights %v: ring length %d, want %d", weights, len(ring), sum/int(g))
		}
		checkSmooth(t, ring, len(weights))
		ref := nginxSequence(weights, 2*sum)
		for i, want := range ref {
			if got := ring[i%len(ring)]; got != want {
				t.Fatalf("weights %v: pick %d = %d, nginx picks %d", weights, i, got, want)
			}
		}
		for start := range ring {
			counts := make([]int, len(weights))
			for k := range ring {
				counts[ring[(start+k)%len(ring)]]++
			}
			for i, w := range weights {
				if counts[i] != w/int(g) {
					t.Fatalf("weights %v: window at %d gives %d picks to %d, want %d", weights, start, counts[i], i, w/int(g))
				}
			}
		}
	}
}

// TestBuildRingLargePools covers pools too big for the nginx simulation: the
// deadline schedule without scaling (300 backends, counts exact) and with it
// (MaxBackends at random weights). The ring stays within maxRing plus one slot
// per backend, every weighted backend keeps a slot, shares stay within 0.01% of
// the weights, and each backend's slots are evenly spaced.
func TestBuildRingLargePools(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{300, MaxBackends} {
		weights := make([]int, n)
		sum := 0
		for i := 1; i < n; i++ { // weights[0] = 0: draining
			weights[i] = 1 + rng.IntN(MaxWeight)
			sum += weights[i]
		}
		ring := buildRing(weights)
		if len(ring) > maxRing+n {
			t.Fatalf("%d backends: ring length %d, want <= %d", n, len(ring), maxRing+n)
		}
		exact := sum <= maxRing // the random weights have GCD 1
		counts := make([]int, n)
		for _, i := range ring {
			counts[i]++
		}
		if counts[0] != 0 {
			t.Fatalf("%d backends: zero-weight backend got %d slots", n, counts[0])
		}
		for i := 1; i < n; i++ {
			if counts[i] == 0 {
				t.Fatalf("%d backends: backend %d (weight %d) has no slot", n, i, weights[i])
			}
			if exact && counts[i] != weights[i] {
				t.Fatalf("%d backends: backend %d has %d slots, want %d", n, i, counts[i], weights[i])
			}
			share, want := float64(counts[i])/float64(len(ring)), float64(weights[i])/float64(sum)
			if d := share - want; d > 1e-4 || d < -1e-4 {
				t.Fatalf("%d backends: backend %d has share %.6f, want %.6f", n, i, share, want)
			}
		}
		checkSmooth(t, ring, n)
	}
}

// checkSmooth asserts that after any number of picks t, every backend has had
// within one pick of t times its share of the ring: the property that makes a
// schedule "smooth". Between a backend's slots its deviation only drifts
// linearly, so checking it just before and just after each of its slots covers
// every t.
func checkSmooth(t *testing.T, ring []uint16, n int) {
	t.Helper()
	counts := make([]int, n)
	for _, i := range ring {
		counts[i]++
	}
	seen := make([]int, n)
	for pos, i := range ring {
		share := float64(counts[i]) / float64(len(ring))
		before := float64(seen[i]) - float64(pos)*share
		seen[i]++
		after := float64(seen[i]) - float64(pos+1)*share
		if before <= -1 || after >= 1 {
			t.Fatalf("backend %d after %d picks: %d picks, want %.2f +- 1", i, pos, seen[i]-1, float64(pos)*share)
		}
	}
}

func TestDeadlineRingSmallWeights(t *testing.T) {
	t.Parallel()
	// The deadline schedule for 5/1/1: a at 0.1 0.3 0.5 0.7 0.9, b and c at 0.5
	// (after a's 0.5, lower index first).
	if got := names(deadlineRing([]int64{5, 1, 1}, 7)); got != "aaabcaa" {
		t.Errorf("deadlineRing(5/1/1) = %q, want %q", got, "aaabcaa")
	}
	if got := names(deadlineRing([]int64{0, 3, 2}, 5)); got != "bcbcb" {
		t.Errorf("deadlineRing(0/3/2) = %q, want %q", got, "bcbcb")
	}
}
