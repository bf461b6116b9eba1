//go:build !race

package degrade

const raceEnabled = false
