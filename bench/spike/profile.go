package main

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Request classes, in the order of every per-class array.
const (
	clsStatic = iota
	clsProduct
	clsSearch
	clsCheckout
	clsBackoffice
	numClasses
)

// classNames name the classes in flags and reports: static assets (/img/), cacheable
// pages (/product/), uncacheable search, orders (POST /checkout) and the back office.
var classNames = [numClasses]string{"static", "page", "search", "order", "backoffice"}

// classItems is how many distinct URLs each class draws from (orders: every order
// is new).
var classItems = [numClasses]uint64{300, 5000, 1000, 0, 50}

// defaultMix is the share of each class in the offered load, in percent.
const defaultMix = "static=40,page=35,search=15,order=5,backoffice=5"

// defaultService is the origin's service time per class: an order is ten times
// dearer than a page view.
const defaultService = "static=2ms,page=6ms,search=20ms,order=60ms,backoffice=10ms"

// defaultRetryShare is the share of orders whose client sends the same order again,
// with the same Idempotency-Key, retryAfter after the first attempt (a double
// submit, or a retry after a slow answer): the origin's deduplication must absorb it.
const (
	defaultRetryShare = 0.03
	retryAfter        = 1500 * time.Millisecond
)

func classIndex(name string) (int, bool) {
	for i, n := range classNames {
		if n == name {
			return i, true
		}
	}
	return 0, false
}

// parseClassList parses "name=value,name=value" where every name is a class; parse
// converts one value. Classes not named keep their entry in into.
func parseClassList[T any](s string, into *[numClasses]T, parse func(string) (T, error)) error {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return fmt.Errorf("%q: want class=value", kv)
		}
		i, ok := classIndex(k)
		if !ok {
			return fmt.Errorf("%q: unknown class (want one of %s)", k, strings.Join(classNames[:], ", "))
		}
		x, err := parse(v)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		into[i] = x
	}
	return nil
}

// Mix is the share of each class in the offered load; the weights need not sum to 1.
type Mix [numClasses]float64

func parseMix(s string) (Mix, error) {
	var m Mix
	err := parseClassList(s, (*[numClasses]float64)(&m), func(v string) (float64, error) {
		f, err := strconv.ParseFloat(v, 64)
		if err == nil && f < 0 {
			err = fmt.Errorf("negative share %v", f)
		}
		return f, err
	})
	if err != nil {
		return m, err
	}
	if m.total() <= 0 {
		return m, fmt.Errorf("mix %q: shares sum to zero", s)
	}
	return m, nil
}

func (m Mix) total() float64 {
	t := 0.0
	for _, w := range m {
		t += w
	}
	return t
}

// Share returns class c's fraction of the load.
func (m Mix) Share(c int) float64 { return m[c] / m.total() }

// pick maps u in [0,1) to a class by cumulative share.
func (m Mix) pick(u float64) int {
	x := u * m.total()
	for c, w := range m {
		if x < w {
			return c
		}
		x -= w
	}
	return numClasses - 1
}

// Profile is the offered request rate over time, piecewise linear: Base for Lead,
// a ramp to Peak over Rise, Peak for Hold, a ramp back to Base over Fall, then Base
// for Tail, the recovery: steady traffic during which a proxy should leave its
// degraded mode and replay what it captured.
type Profile struct {
	Base, Peak                   float64 // requests per second
	Lead, Rise, Hold, Fall, Tail time.Duration
}

// tvProfile is the TV-broadcast spike (sessions x18 within minutes, held, then
// falling back to steady traffic for the recovery) scaled to this machine.
func tvProfile() Profile {
	return Profile{Base: 300, Peak: 5400, Lead: 10 * time.Second, Rise: 20 * time.Second,
		Hold: 60 * time.Second, Fall: 20 * time.Second, Tail: 150 * time.Second}
}

// Recovery returns when the steady traffic after the spike starts and ends.
func (p Profile) Recovery() (from, to time.Duration) {
	return p.Lead + p.Rise + p.Hold + p.Fall, p.Duration()
}

// Scaled returns p with every duration multiplied by timeScale and every rate by
// rateScale.
func (p Profile) Scaled(timeScale, rateScale float64) Profile {
	d := func(x time.Duration) time.Duration { return time.Duration(float64(x) * timeScale) }
	return Profile{Base: p.Base * rateScale, Peak: p.Peak * rateScale,
		Lead: d(p.Lead), Rise: d(p.Rise), Hold: d(p.Hold), Fall: d(p.Fall), Tail: d(p.Tail)}
}

// Duration is the length of the whole profile.
func (p Profile) Duration() time.Duration { return p.Lead + p.Rise + p.Hold + p.Fall + p.Tail }

// Plateau returns when the peak rate starts and ends.
func (p Profile) Plateau() (from, to time.Duration) {
	return p.Lead + p.Rise, p.Lead + p.Rise + p.Hold
}

// Rate is the offered rate at t, in requests per second; 0 outside the profile.
func (p Profile) Rate(t time.Duration) float64 {
	from, to := p.Plateau()
	switch {
	case t < 0 || t >= p.Duration():
		return 0
	case t < p.Lead:
		return p.Base
	case t < from:
		return p.Base + (p.Peak-p.Base)*frac(t-p.Lead, p.Rise)
	case t < to:
		return p.Peak
	case t < to+p.Fall:
		return p.Peak - (p.Peak-p.Base)*frac(t-to, p.Fall)
	default:
		return p.Base
	}
}

func frac(a, b time.Duration) float64 {
	if b <= 0 {
		return 1
	}
	return float64(a) / float64(b)
}

// Expected is the number of requests the profile offers in [0, t): the integral of
// Rate.
func (p Profile) Expected(t time.Duration) float64 {
	// Integrate the piecewise-linear rate exactly with the trapezoid rule on each
	// piece, cut at t.
	knots := []time.Duration{0, p.Lead, p.Lead + p.Rise, p.Lead + p.Rise + p.Hold,
		p.Lead + p.Rise + p.Hold + p.Fall, p.Duration()}
	rateAt := func(i int) float64 { // value at knot i from the right of the piece before it
		switch i {
		case 0, 1, 4, 5:
			return p.Base
		default:
			return p.Peak
		}
	}
	sum := 0.0
	for i := 0; i+1 < len(knots); i++ {
		a, b := knots[i], knots[i+1]
		if t <= a || b <= a {
			continue
		}
		ra, rb := rateAt(i), rateAt(i+1)
		if t < b { // cut the piece at t
			rb = ra + (rb-ra)*frac(t-a, b-a)
			b = t
		}
		sum += (ra + rb) / 2 * (b - a).Seconds()
	}
	return sum
}

// Arrival is one scheduled request.
type Arrival struct {
	At    time.Duration // since the start of the run
	Class uint8
	Retry bool   // an order sent again by its client, same order id and key
	Item  uint32 // which URL of the class; for an order, the order's number
}

// Schedule draws the arrivals of p: a Poisson process whose rate follows the profile
// (by thinning a process at the top rate), each with a class from mix and an item
// from a Zipf distribution over the class's URLs; orders are numbered, and a share
// retryShare of them is sent again retryAfter later (within the profile). The same
// seed gives the same schedule.
func (p Profile) Schedule(mix Mix, seed uint64, retryShare float64) []Arrival {
	rng := rand.New(rand.NewPCG(seed, 0x5b1ce))
	top := max(p.Peak, p.Base)
	if top <= 0 {
		return nil
	}
	var zipf [numClasses]*rand.Zipf
	for c, n := range classItems {
		if n > 1 {
			zipf[c] = rand.NewZipf(rng, 1.1, 1, n-1)
		}
	}
	out := make([]Arrival, 0, int(p.Expected(p.Duration())*1.02)+16)
	end := p.Duration().Seconds()
	var orders uint32
	var retries []Arrival
	for t := rng.ExpFloat64() / top; t < end; t += rng.ExpFloat64() / top {
		at := time.Duration(t * float64(time.Second))
		if rng.Float64()*top >= p.Rate(at) {
			continue
		}
		c := mix.pick(rng.Float64())
		var item uint32
		if zipf[c] != nil {
			item = uint32(zipf[c].Uint64())
		}
		if c == clsCheckout {
			item = orders
			orders++
			if rng.Float64() < retryShare && at+retryAfter < p.Duration() {
				retries = append(retries, Arrival{At: at + retryAfter, Class: clsCheckout, Retry: true, Item: item})
			}
		}
		out = append(out, Arrival{At: at, Class: uint8(c), Item: item})
	}
	if len(retries) > 0 {
		out = append(out, retries...)
		slices.SortStableFunc(out, func(a, b Arrival) int { return cmp.Compare(a.At, b.At) })
	}
	return out
}
