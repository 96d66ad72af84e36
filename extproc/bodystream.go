package extproc

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/rkms/rkms/extproc/jsonfield"
)

// bodyStream is the push transform of one streamed body: what the server needs of
// jsonfield's Stream (Plan.NewStream). Write appends to dst the output that may be forwarded
// now; Close appends the rest at the end of the input, or fails if the input is incomplete;
// Held is the bytes held between calls (for the memory budget). A selected value's input bytes
// are never in the output, only fn's replacement; after an error there is no more output.
type bodyStream interface {
	Write(dst, chunk []byte) ([]byte, error)
	Close(dst []byte) ([]byte, error)
	Held() int
}

// streamLimits bound what one stream holds: one selected value (MaxValue) and an unfinished
// token or line besides it (MaxPending). They are jsonfield's StreamOptions defaults.
const (
	streamMaxValue   = 1 << 20
	streamMaxPending = 64 << 10
)

// lineStream is a bodyStream over the buffered plan (Plan.RewriteChecked): NDJSON one line at a
// time, or one document held whole. A line (or document) longer than streamMaxValue +
// streamMaxPending is refused. check is called with each line's guard reset to that line.
type lineStream struct {
	plan   *jsonfield.Plan
	ndjson bool
	check  func(*jsonfield.Outside) error
	reset  func(line []byte) // resets the guard that check belongs to; nil when check is nil
	fn     func(f *jsonfield.Field, raw []byte) ([]byte, error)
	buf    []byte // the unfinished line (NDJSON) or the document so far
	line   int    // lines completed
	off    int    // input bytes consumed before buf
	err    error
}

var _ bodyStream = (*lineStream)(nil)

// maxHeld is the longest line or document a lineStream holds.
const maxHeld = streamMaxValue + streamMaxPending

// newLineStream returns the streamed transform of plan: per line when ndjson, else of one
// document.
func newLineStream(plan *jsonfield.Plan, ndjson bool, check func(*jsonfield.Outside) error, reset func([]byte), fn func(f *jsonfield.Field, raw []byte) ([]byte, error)) *lineStream {
	return &lineStream{plan: plan, ndjson: ndjson, check: check, reset: reset, fn: fn}
}

// LineError names the 1-based line of an NDJSON stream where err happened. It unwraps to err.
type LineError struct {
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

func (s *lineStream) Write(dst, chunk []byte) ([]byte, error) {
	if s.err != nil {
		return dst, s.err
	}
	if !s.ndjson {
		if len(s.buf)+len(chunk) > maxHeld {
			return dst, s.fail(&jsonfield.SyntaxError{Offset: s.off + maxHeld, Msg: fmt.Sprintf("streamed document longer than %d bytes (only NDJSON is rewritten line by line)", maxHeld)})
		}
		s.buf = append(s.buf, chunk...)
		return dst, nil
	}
	for len(chunk) > 0 {
		i := bytes.IndexByte(chunk, '\n')
		if i < 0 {
			if len(s.buf)+len(chunk) > maxHeld {
				return dst, s.fail(&LineError{Line: s.line + 1, Err: &jsonfield.SyntaxError{Offset: s.off + maxHeld, Msg: fmt.Sprintf("line longer than %d bytes", maxHeld)}})
			}
			s.buf = append(s.buf, chunk...)
			return dst, nil
		}
		var line []byte
		if len(s.buf) == 0 {
			line = chunk[:i+1]
		} else {
			if len(s.buf)+i+1 > maxHeld {
				return dst, s.fail(&LineError{Line: s.line + 1, Err: &jsonfield.SyntaxError{Offset: s.off + maxHeld, Msg: fmt.Sprintf("line longer than %d bytes", maxHeld)}})
			}
			s.buf = append(s.buf, chunk[:i+1]...)
			line = s.buf
		}
		var err error
		if dst, err = s.rewriteLine(dst, line); err != nil {
			return dst, err
		}
		chunk = chunk[i+1:]
		clear(s.buf)
		s.buf = s.buf[:0]
	}
	return dst, nil
}

// rewriteLine appends the rewritten line (its terminator, "\n" or "\r\n", kept) to dst. A blank
// line is kept as it is.
func (s *lineStream) rewriteLine(dst, line []byte) ([]byte, error) {
	s.line++
	start := s.off
	s.off += len(line)
	body, term := line, []byte(nil)
	if n := len(body); n > 0 && body[n-1] == '\n' {
		body, term = body[:n-1], body[n-1:]
		if n := len(body); n > 0 && body[n-1] == '\r' {
			body, term = body[:n-1], line[n-1:]
		}
	}
	if len(bytes.TrimLeft(body, " \t\r")) == 0 {
		return append(dst, line...), nil
	}
	if s.reset != nil {
		s.reset(body)
	}
	n := len(dst)
	out, _, err := s.plan.RewriteChecked(dst, body, s.check, s.fn)
	if err != nil {
		clear(out[n:cap(out)])
		var se *jsonfield.SyntaxError
		if errors.As(err, &se) {
			err = &jsonfield.SyntaxError{Offset: start + se.Offset, Msg: se.Msg, MaxDepth: se.MaxDepth}
		}
		return dst[:n], s.fail(&LineError{Line: s.line, Err: err})
	}
	return append(out, term...), nil
}

func (s *lineStream) Close(dst []byte) ([]byte, error) {
	if s.err != nil {
		return dst, s.err
	}
	if len(s.buf) == 0 {
		if !s.ndjson {
			return dst, s.fail(&jsonfield.SyntaxError{Offset: s.off, Msg: "unexpected end of input"})
		}
		s.drop()
		return dst, nil
	}
	if !s.ndjson {
		if s.reset != nil {
			s.reset(s.buf)
		}
		n := len(dst)
		out, _, err := s.plan.RewriteChecked(dst, s.buf, s.check, s.fn)
		s.drop()
		if err != nil {
			clear(out[n:cap(out)])
			return dst[:n], s.fail(err)
		}
		return out, nil
	}
	dst, err := s.rewriteLine(dst, s.buf) // the last line, without a terminator
	s.drop()
	return dst, err
}

func (s *lineStream) Held() int { return cap(s.buf) }

// fail records err: the stream gives no more output.
func (s *lineStream) fail(err error) error {
	s.err = err
	s.drop()
	return err
}

// drop clears what the stream holds (it may be plaintext).
func (s *lineStream) drop() {
	clear(s.buf[:cap(s.buf)])
	s.buf = nil
}
