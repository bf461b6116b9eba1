package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// This machine is shared: another benchmark running beside a spike run changes its
// figures. The run therefore measures how busy each CPU was and how much of that it
// can attribute to the generator, the origin and the proxy; spike quiet waits for
// the machine to be idle before a run.

// cpuTimes is one CPU's counters from /proc/stat, in clock ticks.
type cpuTimes struct{ busy, total uint64 }

// readCPUTimes returns the per-CPU counters of /proc/stat, "cpu" (all) first.
func readCPUTimes() (map[string]cpuTimes, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]cpuTimes{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 || !strings.HasPrefix(fs[0], "cpu") {
			continue
		}
		var t cpuTimes
		for i, s := range fs[1:] {
			if i >= 8 { // guest time is already in user
				break
			}
			v, _ := strconv.ParseUint(s, 10, 64)
			t.total += v
			if i != 3 && i != 4 { // idle, iowait
				t.busy += v
			}
		}
		out[fs[0]] = t
	}
	return out, sc.Err()
}

// busyPct is the busy share of each CPU between two readings, "cpu" being the
// machine's average.
func busyPct(a, b map[string]cpuTimes) map[string]float64 {
	out := map[string]float64{}
	for k, tb := range b {
		ta, ok := a[k]
		if !ok || tb.total <= ta.total {
			continue
		}
		out[k] = 100 * float64(tb.busy-ta.busy) / float64(tb.total-ta.total)
	}
	return out
}

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const clockTicks = 100 // USER_HZ on Linux

// procTreeCPU is the user+system CPU time of pid and its direct children (nginx's
// workers), from /proc.
func procTreeCPU(pid int) (time.Duration, error) {
	ticks := func(p string) (uint64, int, error) { // utime+stime, ppid
		b, err := os.ReadFile(filepath.Join("/proc", p, "stat"))
		if err != nil {
			return 0, 0, err
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')') // the command may contain spaces
		if i < 0 {
			return 0, 0, fmt.Errorf("/proc/%s/stat: unexpected format", p)
		}
		f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
		if len(f) < 13 {
			return 0, 0, fmt.Errorf("/proc/%s/stat: unexpected format", p)
		}
		ppid, _ := strconv.Atoi(f[1])
		u, _ := strconv.ParseUint(f[11], 10, 64)
		s2, _ := strconv.ParseUint(f[12], 10, 64)
		return u + s2, ppid, nil
	}
	total, _, err := ticks(strconv.Itoa(pid))
	if err != nil {
		return 0, err
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		if t, ppid, err := ticks(e.Name()); err == nil && ppid == pid {
			total += t
		}
	}
	return time.Duration(total) * time.Second / clockTicks, nil
}

// Machine is how busy the machine was during the load, in percent of one CPU.
type Machine struct {
	CPUBusyPct   map[string]float64 `json:"cpu_busy_pct"` // per CPU; "cpu" is the average
	GeneratorPct float64            `json:"generator_pct"`
	OriginPct    float64            `json:"origin_pct"`
	ProxyPct     float64            `json:"proxy_pct,omitempty"` // when -proxy-pid is given
	// OtherPct is CPU time used by nobody above (other processes, and softirq time
	// the kernel does not charge to a process), in percent of one CPU.
	OtherPct float64 `json:"other_pct"`
	// PeakOtherPct is the same over the worst 5 s of the load.
	PeakOtherPct float64 `json:"peak_other_pct"`
}

// reading is one sample of the CPU counters of the machine and of the run's
// processes.
type reading struct {
	at                  time.Time
	cpus                map[string]cpuTimes
	self, origin, proxy time.Duration
	haveProxy           bool
}

// machineProbe samples the CPU counters every second during a load and turns them
// into a Machine at its end.
type machineProbe struct {
	proxyPID  int
	originCPU func() (time.Duration, error)
	mu        sync.Mutex
	readings  []reading
	stop      chan struct{}
	done      chan struct{}
}

func (p *machineProbe) take() (reading, error) {
	r := reading{at: time.Now(), self: selfCPU()}
	var err error
	if r.cpus, err = readCPUTimes(); err != nil {
		return r, err
	}
	if r.origin, err = p.originCPU(); err != nil {
		return r, err
	}
	if p.proxyPID > 0 {
		if r.proxy, err = procTreeCPU(p.proxyPID); err == nil {
			r.haveProxy = true
		}
	}
	return r, nil
}

func startMachineProbe(proxyPID int, originCPU func() (time.Duration, error)) *machineProbe {
	p := &machineProbe{proxyPID: proxyPID, originCPU: originCPU, stop: make(chan struct{}), done: make(chan struct{})}
	go tick(time.Second, p.stop, p.done, func() {
		if r, err := p.take(); err == nil {
			p.mu.Lock()
			p.readings = append(p.readings, r)
			p.mu.Unlock()
		}
	})
	return p
}

// between is the machine's use between two readings.
func between(a, b reading) *Machine {
	el := b.at.Sub(a.at).Seconds()
	m := &Machine{CPUBusyPct: busyPct(a.cpus, b.cpus),
		GeneratorPct: 100 * (b.self - a.self).Seconds() / el,
		OriginPct:    100 * (b.origin - a.origin).Seconds() / el}
	if a.haveProxy && b.haveProxy {
		m.ProxyPct = 100 * (b.proxy - a.proxy).Seconds() / el
	}
	ncpu := float64(len(m.CPUBusyPct) - 1)
	m.OtherPct = max(0, m.CPUBusyPct["cpu"]*ncpu-m.GeneratorPct-m.OriginPct-m.ProxyPct)
	return m
}

// peakWindow is how long a burst of interference must last to count: a few seconds
// of someone else's benchmark change the plateau's figures while hardly moving the
// run's average.
const peakWindow = 5

func (p *machineProbe) finish() *Machine {
	if last, err := p.take(); err == nil {
		p.mu.Lock()
		p.readings = append(p.readings, last)
		p.mu.Unlock()
	}
	close(p.stop)
	<-p.done
	rs := p.readings
	if len(rs) < 2 {
		return nil
	}
	m := between(rs[0], rs[len(rs)-1])
	for i := 0; i+peakWindow < len(rs); i++ {
		m.PeakOtherPct = max(m.PeakOtherPct, between(rs[i], rs[i+peakWindow]).OtherPct)
	}
	return m
}

func (m *Machine) String() string {
	var b strings.Builder
	for i := 0; ; i++ {
		v, ok := m.CPUBusyPct["cpu"+strconv.Itoa(i)]
		if !ok {
			break
		}
		fmt.Fprintf(&b, "cpu%d busy %.0f%%, ", i, v)
	}
	fmt.Fprintf(&b, "of which generator %.0f%%, origin %.0f%%", m.GeneratorPct, m.OriginPct)
	if m.ProxyPct > 0 {
		fmt.Fprintf(&b, ", proxy %.0f%%", m.ProxyPct)
	}
	fmt.Fprintf(&b, ", unattributed %.0f%% (of one CPU; %.0f%% over the worst %ds)", m.OtherPct, m.PeakOtherPct, peakWindow)
	return b.String()
}

// cmdQuiet waits until the machine has been nearly idle for a few seconds, so that a
// run does not share the CPUs with someone else's benchmark.
func cmdQuiet(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("spike quiet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	maxWait := fs.Duration("max-wait", 10*time.Minute, "give up waiting after this long (and go on, with a warning)")
	threshold := fs.Float64("busy", 10, "idle enough: average CPU busy percentage at most this")
	window := fs.Duration("window", 10*time.Second, "measured over this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	start := time.Now()
	said := false
	for {
		a, err := readCPUTimes()
		if err != nil {
			return err
		}
		time.Sleep(*window)
		b, err := readCPUTimes()
		if err != nil {
			return err
		}
		busy := busyPct(a, b)["cpu"]
		if busy <= *threshold {
			if said {
				fmt.Fprintf(stderr, "machine idle after %.0fs\n", time.Since(start).Seconds())
			}
			return nil
		}
		if time.Since(start) >= *maxWait {
			fmt.Fprintf(stderr, "WARNING: the machine is still %.0f%% busy after %s; running anyway, figures may be disturbed\n", busy, *maxWait)
			return nil
		}
		if !said {
			fmt.Fprintf(stderr, "machine %.0f%% busy (another benchmark?): waiting up to %s for it to be idle...\n", busy, *maxWait)
			said = true
		}
	}
}

// cmdDisturbed prints the CPU time used by something else during a run's load (in
// percent of one CPU) and fails when it is enough to disturb the figures, so that
// spike.sh can retry the run.
func cmdDisturbed(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: spike disturbed FILE.json")
	}
	rs, err := readReports(args)
	if err != nil {
		return err
	}
	r := rs[0]
	if r.Machine == nil {
		fmt.Fprintln(stdout, "0")
		return nil
	}
	fmt.Fprintf(stdout, "%.0f\n", r.Machine.OtherPct)
	if disturbed(r) {
		return errDisturbed
	}
	return nil
}

var errDisturbed = errors.New("disturbed")
