package testenv

import (
	"bytes"
	"sync"
)

// LockedBuffer is a bytes.Buffer that several goroutines may write at once: where a test collects
// a child process's or a logger's output. The zero value keeps everything; with Limit set, a
// Write that finds more than Limit bytes first drops the older half, so that a long run's output
// stays bounded and its tail is kept.
type LockedBuffer struct {
	Limit int // bytes kept before the older half is dropped; 0: no limit

	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Limit > 0 && l.b.Len() > l.Limit {
		l.b.Next(l.b.Len() / 2)
	}
	return l.b.Write(p)
}

// String returns what is kept so far.
func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Bytes returns a copy of what is kept so far.
func (l *LockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

// Drain returns what is kept so far and empties the buffer, in one step.
func (l *LockedBuffer) Drain() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := bytes.Clone(l.b.Bytes())
	l.b.Reset()
	return out
}
