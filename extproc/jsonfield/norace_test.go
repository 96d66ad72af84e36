//go:build !race

package jsonfield

// raceEnabled reports a -race build, in which sync.Pool drops items at random.
const raceEnabled = false
