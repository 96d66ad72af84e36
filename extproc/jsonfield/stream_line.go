package jsonfield

import (
	"bytes"
	"errors"
)

// An NDJSON line that lies whole in a chunk, and is no longer than the limits (so that nothing
// in it could exceed them), is rewritten by the buffered path, which is faster than the state
// machine; its errors are made the stream's (offsets from the start of the stream, the line).
// The results are the same, but for one thing the package documentation allows: the buffered
// path runs the line's checks before its transforms, and reports a syntax error of the line
// rather than a check error before it.

// lines rewrites the whole lines at buf[i:], from the start of a line, and returns the offset
// of the first byte it left to the state machine.
func (s *Stream) lines(i int) (int, error) {
	buf := s.buf
	for s.state == stValue && len(s.kinds) == 0 {
		k := bytes.IndexByte(buf[i:], '\n')
		if k < 0 || k > s.lineMax {
			return i, nil
		}
		if line := buf[i : i+k]; !blank(line) {
			if err := s.rewriteLine(i, line); err != nil {
				return 0, err
			}
		}
		i += k + 1
		s.line++
	}
	return i, nil
}

func blank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

// rewriteLine rewrites line, which starts at buf[i], with the buffered path.
func (s *Stream) rewriteLine(i int, line []byte) error {
	if s.lsc == nil {
		s.lsc = new(scratch)
	}
	sc := s.lsc
	s.lineAt, s.lineErr = s.base+i, nil
	if err := s.p.prepareRec(sc, line, s.lineChk, streamRecorded); err != nil {
		var se *SyntaxError
		switch {
		case s.lineErr != nil:
			return s.lineErr
		case errors.As(err, &se):
			se.Offset += s.lineAt
			se.Line = s.line
		}
		return err
	}
	s.out = append(s.out, s.buf[s.mark:i]...)
	out, n, err := s.p.rewrite(sc, s.out, line, s.fn)
	if err != nil {
		var ve *ValueError
		if errors.As(err, &ve) {
			ve.Offset += s.lineAt
			ve.Line = s.line
		}
		return err
	}
	s.out, s.mark = out, i+len(line)
	s.count += n
	if cap(sc.key) > maxKept {
		clear(sc.key[:cap(sc.key)])
		sc.key = nil
	}
	return nil
}

// lineCheck is the check of a line rewritten whole: the stream's check, with offsets from the
// start of the stream, its error wrapped as the stream wraps it.
func (s *Stream) lineCheck(o *Outside) error {
	c := &s.outside // not a copy on the stack: it would escape to the heap at every call
	*c = *o
	c.Offset += s.lineAt
	err := s.check(c)
	c.Text = nil
	if err != nil {
		s.lineErr = s.checkErr(c.Name, c.Offset, err)
	}
	return err
}
