package balancer

import (
	"testing"
	"time"
)

func hundred() []int {
	w := make([]int, 100)
	for i := range w {
		w[i] = 1 + (i*37)%100 // varied weights, GCD 1: a ring of ~5000 slots
	}
	return w
}

func BenchmarkPick(b *testing.B) {
	cases := []struct {
		name    string
		weights []int
		down    []int // indices of backends to mark down
	}{
		{"3backends", []int{3, 2, 1}, nil},
		{"100backends", hundred(), nil},
		{"3backends_one_down", []int{3, 2, 1}, []int{1}},
		{"100backends_half_down", hundred(), evens(100)},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			p := weighted(b, bc.weights...)
			for _, i := range bc.down {
				p.Backends()[i].State.SetProbeUp(false)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := p.Pick(); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

func evens(n int) []int {
	var out []int
	for i := 0; i < n; i += 2 {
		out = append(out, i)
	}
	return out
}

// BenchmarkPickSlowStart measures the cost while every backend ramps up, the
// worst case for slow start (each pick reads the clock and passes over ~half
// the slots).
func BenchmarkPickSlowStart(b *testing.B) {
	sp := specs(3, 2, 1)
	p := mustPool(b, PoolOptions{Backends: sp, SlowStart: time.Hour})
	for _, s := range sp {
		s.State.SetProbeUp(false)
		s.State.SetProbeUp(true)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, _ = p.Pick()
		}
	})
}

func BenchmarkAcquireRelease(b *testing.B) {
	cases := []struct {
		name  string
		limit int64
	}{
		{"unlimited", 0},
		{"limit_1M", 1 << 20},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			p := mustPool(b, PoolOptions{Backends: specs(3, 2, 1), MaxConnsPerBackend: bc.limit})
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					be, err := p.Acquire(nil)
					if err != nil {
						b.Fatal(err)
					}
					be.Release()
				}
			})
		})
	}
}

// BenchmarkAcquireReleaseQueued runs with more goroutines than slots, so most
// Acquires go through the queue and most Releases hand off: the saturated
// steady state of a traffic spike.
func BenchmarkAcquireReleaseQueued(b *testing.B) {
	p := mustPool(b, PoolOptions{
		Backends:           specs(1, 1),
		MaxConnsPerBackend: 1,
		QueueMax:           1 << 16,
		QueueTimeout:       time.Minute,
	})
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			be, err := p.Acquire(nil)
			if err != nil {
				b.Fatal(err)
			}
			be.Release()
		}
	})
}

func BenchmarkReport(b *testing.B) {
	sp := specs(1)
	mustPool(b, PoolOptions{Backends: sp, MaxFails: 5, EjectFor: time.Second})
	s := sp[0].State
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.Report(true)
		}
	})
}

func BenchmarkBuildRing(b *testing.B) {
	for _, bc := range []struct {
		name    string
		weights []int
	}{
		{"100backends", hundred()},
		{"1000backends", func() []int {
			w := make([]int, 1000)
			for i := range w {
				w[i] = 1 + (i*37)%MaxWeight
			}
			return w
		}()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buildRing(bc.weights)
			}
		})
	}
}
