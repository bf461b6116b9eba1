//go:build race

package degrade

// raceEnabled: the race detector instruments atomics and makes allocation
// counts unreliable, so allocation assertions are skipped under -race.
const raceEnabled = true
