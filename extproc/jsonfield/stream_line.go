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

// rewriteLine rewrites line, which starts at buf[i], with the buffered path: the walk, the
// guard pass (check sees offsets from the start of the stream, and its errors name the line)
// and the rewrite.
func (s *Stream) rewriteLine(i int, line []byte) error {
	if s.lsc == nil {
		s.lsc = new(scratch)
	}
	sc := s.lsc
	at := s.base + i
	scn := scanner{scratch: sc, plan: s.p, doc: line, maxDepth: s.p.maxDepth, at: at, line: s.line}
	if s.check != nil {
		sc.rec.reset(streamRecorded)
		scn.rec = &sc.rec
	}
	if err := scn.walk(); err != nil {
		var se *SyntaxError
		if errors.As(err, &se) {
			se.Offset += at
			se.Line = s.line
		}
		return err
	}
	if s.check != nil {
		if err := scn.guard(s.check); err != nil {
			return err
		}
	}
	s.out = append(s.out, s.buf[s.mark:i]...)
	out, n, err := s.p.rewrite(sc, s.out, line, s.fn)
	if err != nil {
		var ve *ValueError
		if errors.As(err, &ve) {
			ve.Offset += at
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
