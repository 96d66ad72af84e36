package app

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// recordReader splits NDJSON input into lines without ever holding more than one bounded line:
// a line longer than max bytes (its line ending not counted) is skipped to its end and reported
// as too long, never buffered whole. Line endings are LF or CRLF; a last line without one is
// still a line.
type recordReader struct {
	br    *bufio.Reader
	max   int
	line  int64 // number of the line last returned (1-based)
	bytes int64 // input bytes consumed so far, line endings included
}

// newRecordReader reads r with a buffer that holds one line of limit bytes and its CRLF.
func newRecordReader(r io.Reader, limit int) *recordReader {
	return &recordReader{br: bufio.NewReaderSize(r, max(limit+2, 64<<10)), max: limit}
}

// next returns the next line, without its line ending, and its number. The line is valid until
// the next call. tooLong reports a line longer than the bound: rec is nil then. At the end of the
// input it returns io.EOF; other errors are the reader's.
func (r *recordReader) next() (rec []byte, line int64, tooLong bool, err error) {
	rec, err = r.br.ReadSlice('\n')
	r.bytes += int64(len(rec))
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		if err := r.skipLine(); err != nil {
			return nil, 0, false, err
		}
		r.line++
		return nil, r.line, true, nil
	case errors.Is(err, io.EOF):
		if len(rec) == 0 {
			return nil, 0, false, io.EOF
		}
	case err != nil:
		return nil, 0, false, fmt.Errorf("read line %d: %w", r.line+1, err)
	}
	r.line++
	rec = bytes.TrimSuffix(rec, []byte{'\n'})
	rec = bytes.TrimSuffix(rec, []byte{'\r'})
	if len(rec) > r.max {
		return nil, r.line, true, nil
	}
	return rec, r.line, false, nil
}

// skipLine consumes the rest of a line that did not fit the buffer.
func (r *recordReader) skipLine() error {
	for {
		b, err := r.br.ReadSlice('\n')
		r.bytes += int64(len(b))
		switch {
		case err == nil, errors.Is(err, io.EOF):
			return nil
		case !errors.Is(err, bufio.ErrBufferFull):
			return fmt.Errorf("read line %d: %w", r.line+1, err)
		}
	}
}

// isBlank reports whether a line holds only JSON whitespace: such lines are not records.
func isBlank(rec []byte) bool {
	for _, c := range rec {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}
