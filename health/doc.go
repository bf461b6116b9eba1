// Package health owns active health checking: one prober goroutine per backend that
// probes over HTTP or TCP on a jittered interval and reports up/down transitions,
// after rise/fall thresholds, to a consumer-declared sink.
//
// health must not import proxy, conf or cmd; it reports through small interfaces.
package health
