// Package field holds the shape of a rule's answer: one problem with one
// setting, named by its key in the config file. The runtime packages that own
// a rule (degrade's trigger, health's check) return them, and conf reports
// each at its key's line, so that the file and the runtime share one rule and
// one wording. Standard library only.
package field

import (
	"fmt"
	"strconv"
	"time"
)

// Problem is one invalid setting. Key is its key relative to the section the
// rule checks ("timeout", "exit.p95_latency").
type Problem struct {
	Key, Msg string
}

// Error returns "key: message".
func (p Problem) Error() string { return p.Key + ": " + p.Msg }

// Errorf returns a Problem with key and the formatted message.
func Errorf(key, format string, args ...any) Problem {
	return Problem{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// Duration writes whole hours and minutes as the config file would ("1h",
// "1m"), other durations as time.Duration does.
func Duration(v time.Duration) string {
	switch {
	case v >= time.Hour && v%time.Hour == 0:
		return strconv.FormatInt(int64(v/time.Hour), 10) + "h"
	case v >= time.Minute && v%time.Minute == 0:
		return strconv.FormatInt(int64(v/time.Minute), 10) + "m"
	}
	return v.String()
}
