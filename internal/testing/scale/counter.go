package scale

import (
	"bytes"
	"sync"
)

// LineCounter is an io.Writer that counts the lines containing a marker in a stream written in
// arbitrary chunks (a child process's output). It keeps only the last partial line.
type LineCounter struct {
	marker []byte

	mu      sync.Mutex
	partial []byte
	n       uint64
}

// NewLineCounter counts the lines containing marker.
func NewLineCounter(marker string) *LineCounter { return &LineCounter{marker: []byte(marker)} }

// maxLine bounds the partial line kept between writes: a longer line is counted by its start.
const maxLine = 64 << 10

func (c *LineCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data := p
	if len(c.partial) > 0 {
		data = append(c.partial, p...)
	}
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		if bytes.Contains(data[:i], c.marker) {
			c.n++
		}
		data = data[i+1:]
	}
	if len(data) > maxLine {
		data = data[:maxLine]
	}
	c.partial = append(c.partial[:0], data...)
	return len(p), nil
}

// Count returns the complete lines with the marker seen so far.
func (c *LineCounter) Count() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
