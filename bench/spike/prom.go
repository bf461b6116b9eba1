package main

import (
	"strconv"
	"strings"
	"time"
)

// eachSample calls fn with every sample of the metric name in a Prometheus text
// exposition: the whole line (for its labels) and the value. Lines of other
// metrics, and lines whose value does not parse, are skipped.
func eachSample(text, name string, fn func(line string, v float64)) {
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, name) || (len(l) > len(name) && l[len(name)] != '{' && l[len(name)] != ' ') {
			continue
		}
		// NAME{LABELS} VALUE [TIMESTAMP]
		rest := l[len(name):]
		if strings.HasPrefix(rest, "{") {
			j := strings.LastIndexByte(rest, '}')
			if j < 0 {
				continue
			}
			rest = rest[j+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		fn(l, v)
	}
}

// tick runs fn now and then every interval until stop is closed, and closes done
// when it has returned. Run it in a goroutine of its own.
func tick(every time.Duration, stop <-chan struct{}, done chan<- struct{}, fn func()) {
	defer close(done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		fn()
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}
