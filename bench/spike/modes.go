package main

import (
	"sync"
	"time"
)

// A proxy with a degraded mode (floodgate) exports it on /metrics as the gauge
// floodgate_degraded{pool}; the run polls it through the load and the replay wait,
// so that the report can say when the proxy entered and left degraded mode, how
// many times, and how long after the spike it was back to normal while the steady
// traffic of the recovery went on.

// modePollEvery is how often the gauge is read: fine enough against a hold of
// tens of seconds and windows of 2 s.
const modePollEvery = 500 * time.Millisecond

// modeSample is one reading of the gauge.
type modeSample struct {
	at       time.Duration // since the start of the load
	degraded bool          // some pool was degraded
}

// degradedGauge reads floodgate_degraded from a Prometheus text exposition: whether
// any pool is degraded, and whether the gauge was there at all.
func degradedGauge(text string) (degraded, found bool) {
	eachSample(text, "floodgate_degraded", func(_ string, v float64) {
		found = true
		degraded = degraded || v > 0
	})
	return degraded, found
}

// modePoller reads the gauge every modePollEvery until stopped.
type modePoller struct {
	start   time.Time
	mu      sync.Mutex
	samples []modeSample
	found   bool
	lastErr error
	stop    chan struct{}
	done    chan struct{}
}

// startModePoller polls get (which returns the exposition text) from now on;
// times are counted from start.
func startModePoller(start time.Time, get func() (string, error)) *modePoller {
	p := &modePoller{start: start, stop: make(chan struct{}), done: make(chan struct{})}
	go tick(modePollEvery, p.stop, p.done, func() {
		text, err := get()
		at := time.Since(start)
		p.mu.Lock()
		defer p.mu.Unlock()
		if err != nil {
			p.lastErr = err
		} else if d, ok := degradedGauge(text); ok {
			p.found = true
			p.samples = append(p.samples, modeSample{at: at, degraded: d})
		}
	})
	return p
}

// finish stops the poller and returns its samples, and a note when there are none.
func (p *modePoller) finish() ([]modeSample, string) {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.found:
		return p.samples, ""
	case p.lastErr != nil:
		return nil, "unavailable: " + p.lastErr.Error()
	default:
		return nil, "not exported by this proxy"
	}
}

// Modes is what the polled gauge says about one run.
type Modes struct {
	Samples int `json:"samples"`
	Entries int `json:"entries"` // normal -> degraded
	Exits   int `json:"exits"`   // degraded -> normal
	// FirstEntryS and LastExitS are in seconds since the start of the load; -1 when
	// it did not happen.
	FirstEntryS float64 `json:"first_entry_s"`
	LastExitS   float64 `json:"last_exit_s"`
	// ExitAfterPeakS is LastExitS less the end of the plateau; ExitAfterSteadyS less
	// the start of the steady traffic of the recovery (the end of the fall). -1
	// when the proxy was still degraded at the end, or never left.
	ExitAfterPeakS   float64 `json:"exit_after_peak_s"`
	ExitAfterSteadyS float64 `json:"exit_after_steady_s"`
	DegradedAtEnd    bool    `json:"degraded_at_end"`
	// DegradedS is the time spent degraded, in seconds.
	DegradedS float64 `json:"degraded_s"`
}

// analyzeModes turns the samples into Modes for profile p. The proxy is taken to
// be normal before the first sample.
func analyzeModes(samples []modeSample, p Profile) *Modes {
	m := &Modes{Samples: len(samples), FirstEntryS: -1, LastExitS: -1, ExitAfterPeakS: -1, ExitAfterSteadyS: -1}
	prev, since := false, time.Duration(0)
	for _, s := range samples {
		switch {
		case s.degraded && !prev:
			m.Entries++
			if m.FirstEntryS < 0 {
				m.FirstEntryS = s.at.Seconds()
			}
			since = s.at
		case !s.degraded && prev:
			m.Exits++
			m.LastExitS = s.at.Seconds()
			m.DegradedS += (s.at - since).Seconds()
		}
		prev = s.degraded
	}
	if prev && len(samples) > 0 {
		m.DegradedAtEnd = true
		m.DegradedS += (samples[len(samples)-1].at - since).Seconds()
	}
	if m.LastExitS >= 0 && !m.DegradedAtEnd {
		_, end := p.Plateau()
		steady, _ := p.Recovery()
		m.ExitAfterPeakS = round1(m.LastExitS - end.Seconds())
		m.ExitAfterSteadyS = round1(m.LastExitS - steady.Seconds())
	}
	m.FirstEntryS, m.LastExitS, m.DegradedS = round1(m.FirstEntryS), round1(m.LastExitS), round1(m.DegradedS)
	return m
}

func round1(x float64) float64 {
	if x < 0 {
		return x
	}
	return float64(int64(x*10+0.5)) / 10
}
