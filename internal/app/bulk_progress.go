package app

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progressEvery is how often the progress line is redrawn.
const progressEvery = 500 * time.Millisecond

// startProgress draws the progress line of run on stderr until the returned function is called,
// when stderr is a terminal (or --progress; never with --no-progress). The line holds counts and
// rates only, never a value. inSize is the input's size for the ETA (0: unknown).
func startProgress(b *bulkFlags, name string, run *bulkRun, inSize int64, stderr io.Writer) (stop func()) {
	show := isTerminal(stderr)
	if b.progress != nil {
		show = *b.progress
	}
	if !show {
		return func() {}
	}
	start := time.Now()
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				fmt.Fprint(stderr, "\r\033[K")
				return
			case <-t.C:
				fmt.Fprint(stderr, "\r\033[K"+progressLine(name, run.recordsDone.Load(), run.bytesRead.Load(), inSize, time.Since(start)))
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// progressLine is one progress report: records and bytes so far, their rates, and the ETA when
// the input's size is known.
func progressLine(name string, records, read, inSize int64, elapsed time.Duration) string {
	secs := elapsed.Seconds()
	if secs <= 0 {
		secs = 1e-9
	}
	rate := float64(read) / secs
	line := fmt.Sprintf("rkms %s: %d records  %s  %.0f records/s  %.1f MB/s", name, records, byteSize(read), float64(records)/secs, rate/1e6)
	if inSize > 0 && read <= inSize {
		line += fmt.Sprintf("  %.0f%%", 100*float64(read)/float64(inSize))
		if rate > 0 {
			eta := time.Duration(float64(inSize-read) / rate * float64(time.Second))
			line += "  ETA " + eta.Round(time.Second).String()
		}
	}
	return line
}

// isTerminal reports whether w is a character device (a terminal), as the progress line needs.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
