package capture

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// benchRecord is a checkout of 1 KiB, as the proxy would capture it.
func benchRecord() *Record {
	return &Record{
		Pool:   "shop",
		Route:  "checkout",
		Method: "POST",
		Target: "/checkout/confirm?cart=8c1f0e",
		Header: []byte("Host: shop.example\r\nContent-Type: application/json\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\n"),
		Body:   make([]byte, 1024),
		Client: "203.0.113.9:50122",
	}
}

// BenchmarkAppendParallel measures confirmed (fsynced) appends of 1 KiB
// orders on this machine's disk; t.TempDir is on the same file system as
// the rest of /tmp. fsyncs/op below 1 is group commit at work.
func BenchmarkAppendParallel(b *testing.B) {
	for _, par := range []int{1, 32} { // × GOMAXPROCS goroutines
		b.Run(fmt.Sprintf("goroutines=%dxGOMAXPROCS", par), func(b *testing.B) {
			j, err := Open(Options{Dir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer j.Close()
			b.ReportAllocs()
			b.SetParallelism(par)
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				r := benchRecord()
				for pb.Next() {
					if _, _, err := j.Append(r); err != nil {
						b.Error(err)
						return
					}
				}
			})
			el := time.Since(start)
			s := j.Stats()
			b.ReportMetric(float64(s.Fsyncs)/float64(b.N), "fsyncs/op")
			b.ReportMetric(float64(b.N)/el.Seconds(), "orders/s")
		})
	}
}

// TestAppendThroughput64 runs 64 concurrent appenders for 3 s, as many
// checkouts arriving at once during a spike, and reports confirmed orders per
// second and Append latency. Goal (issue 8): at least 2,000 confirmed orders/s
// with p99 under 50 ms; asserted without the race detector, which slows
// everything several times.
func TestAppendThroughput64(t *testing.T) {
	if testing.Short() {
		t.Skip("3 s load test skipped in -short")
	}
	j, err := Open(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	const appenders = 64
	const dur = 3 * time.Second
	lat := make([][]time.Duration, appenders)
	var wg sync.WaitGroup
	deadline := time.Now().Add(dur)
	start := time.Now()
	for g := 0; g < appenders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := benchRecord()
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if _, _, err := j.Append(r); err != nil {
					t.Error(err)
					return
				}
				lat[g] = append(lat[g], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	all := slices.Concat(lat...)
	slices.Sort(all)
	q := func(p float64) time.Duration { return all[int(p*float64(len(all)-1))] }
	s := j.Stats()
	rate := float64(len(all)) / el.Seconds()
	t.Logf("64 appenders, 1 KiB bodies, %v: %d confirmed orders = %.0f/s; Append latency p50 %v p99 %v max %v; %d fsyncs = %.3f per order (%.1f orders per fsync); race detector %v",
		el.Round(time.Millisecond), len(all), rate, q(0.50), q(0.99), all[len(all)-1],
		s.Fsyncs, float64(s.Fsyncs)/float64(len(all)), float64(len(all))/float64(s.Fsyncs), raceEnabled)
	if !raceEnabled && (rate < 2000 || q(0.99) > 50*time.Millisecond) {
		t.Fatalf("below the goal: %.0f orders/s, p99 %v", rate, q(0.99))
	}
}

// BenchmarkReplaySlowBackend measures replay throughput of one pool to a
// backend that takes 30 ms per order (the spike benchmark's checkout), with
// no rate bound, one record at a time and 8 at once. One op is one record
// delivered (sent, answered 2xx, marked delivered durably); fsyncs/op below 1
// means concurrent MarkDelivered calls share group commits.
func BenchmarkReplaySlowBackend(b *testing.B) {
	const latency = 30 * time.Millisecond
	for _, conc := range []int{1, 8} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			h := newHarness(b, nil)
			var wg sync.WaitGroup
			for g := 0; g < 8; g++ { // parallel appends: setup only
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := benchRecord()
					for i := g; i < b.N; i += 8 {
						if _, _, err := h.J.Append(r); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			send := func(ctx context.Context, _ *Record) (int, error) {
				select {
				case <-time.After(latency):
					return 200, nil
				case <-ctx.Done():
					return 0, ctx.Err()
				}
			}
			fsyncs := h.J.Stats().Fsyncs
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			stop := h.J.StartReplay(context.Background(), send, ReplayOptions{Rate: rate.Inf, Concurrency: conc})
			h.waitFor("backlog delivered", h.delivered(uint64(b.N)))
			el := time.Since(start)
			b.StopTimer()
			stop()
			b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
			b.ReportMetric(float64(h.J.Stats().Fsyncs-fsyncs)/float64(b.N), "fsyncs/op")
		})
	}
}
