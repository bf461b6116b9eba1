package capture

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
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
