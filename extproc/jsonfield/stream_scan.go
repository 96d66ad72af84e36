package jsonfield

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"strconv"
	"unicode/utf8"
)

// The stream's parser is a resumable state machine: the states between tokens (st* before
// stString) skip white space and read one structural byte; the token states read a string,
// number or literal that may end in a later chunk. It reports exactly the errors, at exactly
// the offsets, of the buffered scanner (scan.go, walk.go), so that a stream fails where
// Rewrite fails.

// Parser states.
const (
	stValue      uint8 = iota // a value
	stValueOrEnd              // a value or ']' (after '[')
	stKey                     // a member name (after ',' in an object)
	stKeyOrEnd                // a member name or '}' (after '{')
	stColon                   // ':' after a member name
	stAfter                   // ',' or the closer, after a value in a container
	stTopAfter                // nothing but white space, after the top-level value
	stString                  // in a string
	stNumber                  // in a number
	stLiteral                 // in true, false or null
)

// String substates.
const (
	subNone uint8 = iota
	subEsc        // after a backslash
	subU          // in the hex digits of \u (need of them due)
	subUTF8       // in a UTF-8 sequence (need bytes due, the next in [lo, hi])
)

// Number substates.
const (
	numStart uint8 = iota
	numMinus       // after '-': a digit is due
	numZero        // "0" or "-0": complete
	numInt         // in the integer digits: complete
	numDot         // after '.': a digit is due
	numFrac        // in the fraction digits: complete
	numE           // after 'e': a sign or digit is due
	numESign       // after the exponent's sign: a digit is due
	numExp         // in the exponent digits: complete
)

func (s *Stream) syntax(i int, msg string) error { return s.syntaxAt(s.base+i, msg) }

func (s *Stream) syntaxAt(off int, msg string) error {
	return &SyntaxError{Offset: off, Msg: msg, Line: s.lineNo()}
}

func (s *Stream) depthErr(i int) error {
	md := s.p.maxDepth
	return &SyntaxError{Offset: s.base + i, Msg: "nesting depth exceeds " + strconv.Itoa(md), MaxDepth: md, Line: s.lineNo()}
}

// scan runs the parser over s.buf.
func (s *Stream) scan() error {
	buf := s.buf
	n := len(buf)
	nd := s.ndjson
	i := 0
	var err error
	for i < n {
		if s.state >= stString {
			switch s.state {
			case stString:
				i, err = s.str(i)
			case stNumber:
				i, err = s.number(i)
			default:
				i, err = s.literal(i)
			}
			if err != nil {
				return err
			}
			continue
		}
		for ; i < n; i++ {
			if c := buf[i]; c > ' ' || (c != ' ' && c != '\t' && c != '\r' && (c != '\n' || nd)) {
				break
			}
		}
		if i >= n {
			break
		}
		c := buf[i]
		if c == '\n' { // NDJSON
			i, err = s.newline(i)
		} else {
			switch s.state {
			case stValue, stValueOrEnd:
				i, err = s.valueStart(i, c)
			case stKey, stKeyOrEnd:
				i, err = s.keyStart(i, c)
			case stColon:
				if c != ':' {
					return s.syntax(i, "expected : after object key")
				}
				i++
				s.state = stValue
			case stAfter:
				i, err = s.after(i, c)
			default:
				return s.syntax(i, "trailing data after top-level value")
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// newline ends an NDJSON line at buf[i] == '\n'.
func (s *Stream) newline(i int) (int, error) {
	if s.state == stTopAfter || (s.state == stValue && len(s.kinds) == 0) {
		s.line++
		s.startDoc()
		return i + 1, nil
	}
	return 0, s.endOfInput(i)
}

// endOfInput reports whether the document may end at buf[i], completing a number that ends
// there; it returns the error of the buffered scanner for a document cut off there.
func (s *Stream) endOfInput(i int) error {
	switch s.state {
	case stTopAfter:
		return nil
	case stNumber:
		if s.sub == numZero || s.sub == numInt || s.sub == numFrac || s.sub == numExp {
			if err := s.valueEnd(i); err != nil {
				return err
			}
			return s.endOfInput(i)
		}
		return s.syntaxAt(s.tokAt, "invalid number")
	case stLiteral:
		return s.syntaxAt(s.tokAt, "invalid literal")
	case stString:
		switch s.sub {
		case subU:
			return s.syntaxAt(s.escAt, "invalid \\u escape in string")
		case subUTF8:
			return s.syntaxAt(s.escAt, "invalid UTF-8 in string")
		}
		return s.syntaxAt(s.tokAt, "unterminated string")
	case stKey, stKeyOrEnd:
		return s.syntax(i, "expected string for object key")
	case stColon:
		return s.syntax(i, "expected : after object key")
	}
	return s.syntax(i, "unexpected end of input")
}

// eof ends the input (Close).
func (s *Stream) eof() error {
	if s.ndjson && s.state == stValue && len(s.kinds) == 0 {
		return nil // a blank last line, or none
	}
	return s.endOfInput(0)
}

// valueStart starts the value at buf[i] == c.
func (s *Stream) valueStart(i int, c byte) (int, error) {
	if c == ']' && s.state == stValueOrEnd {
		return s.close(i)
	}
	active := s.region == regionNone
	if active && len(s.kinds) > 0 {
		top := s.kinds[len(s.kinds)-1]
		active = top&activeBit != 0
		if top == '['|activeBit {
			f := &s.frames[len(s.frames)-1]
			s.term = s.scn.child(f.start, f.end, nil, false, f.idx)
			s.cs = f.end
		}
	}
	if term := s.term; term >= 0 {
		s.term = -1
		s.regionDepth, s.regionAt, s.regionField = len(s.kinds), s.base+i, term
		if s.p.fields[term].Remove {
			s.region = regionDrop // the member name put the stream in modeDrop
		} else {
			s.region = regionValue
			s.split, s.mode = i, modeValue
		}
		active = false
	}
	switch c {
	case '{', '[':
		if len(s.kinds) >= s.p.maxDepth {
			return 0, s.depthErr(i)
		}
		if active && len(s.sc.active) > s.cs {
			s.frames = append(s.frames, sframe{start: s.cs, end: len(s.sc.active)})
			c |= activeBit
		} else if !s.noFast {
			if end, ok, err := s.skipContainer(i); err != nil || ok {
				if err != nil {
					return 0, err
				}
				return end, s.valueEnd(end)
			}
			s.noFast = true // the container goes on in the next chunk, or is invalid
		}
		s.kinds = append(s.kinds, c)
		s.state = stValueOrEnd
		if c&^activeBit == '{' {
			s.state = stKeyOrEnd
		}
		return i + 1, nil
	case '"':
		held := s.region == regionNone && s.check != nil
		if end, esc, err := scanString(s.buf, i); err == nil {
			if held {
				s.esc = esc
				if err := s.checkString(s.buf[i:end], s.base+i, false, false); err != nil {
					return 0, err
				}
			}
			return end, s.valueEnd(end)
		}
		s.key, s.esc, s.sub, s.tokAt, s.state, s.held = false, false, subNone, s.base+i, stString, held
		if held {
			s.toHold(i)
		}
		return i + 1, nil
	case 't':
		s.lit = "true"
	case 'f':
		s.lit = "false"
	case 'n':
		s.lit = "null"
	default:
		if c == '-' || isDigit(c) {
			if end, err := scanNumber(s.buf, i); err == nil && end < len(s.buf) {
				return end, s.valueEnd(end)
			}
			s.tokAt, s.sub, s.state = s.base+i, numStart, stNumber
			return i, nil
		}
		return 0, s.syntax(i, "expected a value")
	}
	if end := i + len(s.lit); end <= len(s.buf) && string(s.buf[i:end]) == s.lit {
		return end, s.valueEnd(end)
	}
	s.tokAt, s.sub, s.state = s.base+i, 0, stLiteral
	return i, nil
}

// skipContainer validates the container at buf[i] that no selector looks into with the
// buffered scanner, calling check for its strings (outside a selected value): it reports
// whether the container ends in buf, and where. When it does not, or is invalid, or holds more
// strings than the recorder keeps, the state machine takes over from buf[i].
func (s *Stream) skipContainer(i int) (int, bool, error) {
	var rec *recorder
	if s.check != nil && s.region == regionNone {
		rec = &s.sc.rec
		rec.reset(maxRecorded)
	}
	end, kinds, err := skipValue(s.buf, i, len(s.kinds), s.p.maxDepth, s.sc.kinds, rec)
	s.sc.kinds = kinds
	if err != nil || (rec != nil && rec.rest >= 0) || (s.ndjson && bytes.IndexByte(s.buf[i:end], '\n') >= 0) {
		return 0, false, nil
	}
	if rec != nil {
		for _, st := range rec.strs {
			s.esc = st.flags&strEscaped != 0
			if err := s.checkString(s.buf[st.start:st.end], s.base+st.start, st.flags&strName != 0, false); err != nil {
				return 0, false, err
			}
		}
	}
	return end, true, nil
}

// keyStart starts the member name at buf[i] == c.
func (s *Stream) keyStart(i int, c byte) (int, error) {
	if c == '}' && s.state == stKeyOrEnd {
		return s.close(i)
	}
	if c != '"' {
		return 0, s.syntax(i, "expected string for object key")
	}
	s.key, s.esc, s.sub, s.tokAt, s.state = true, false, subNone, s.base+i, stString
	s.held = s.kinds[len(s.kinds)-1]&activeBit != 0 || (s.region == regionNone && s.check != nil)
	if s.held && s.mode != modeHold {
		s.toHold(i)
	}
	if end, esc, err := scanString(s.buf, i); err == nil {
		s.esc = esc
		return end, s.strEnd(end)
	}
	return i + 1, nil
}

// after reads the ',' or closer at buf[i] == c after a value in a container.
func (s *Stream) after(i int, c byte) (int, error) {
	top := s.kinds[len(s.kinds)-1]
	kind := top &^ activeBit
	if c == ',' {
		if top&activeBit != 0 {
			f := &s.frames[len(s.frames)-1]
			f.idx++
			if kind == '{' && s.p.remove {
				if f.removing && !f.kept {
					s.dropHeld() // the white space, comma and white space after a first removed member
				} else {
					s.toHold(i) // the comma goes if the next member is removed
				}
			}
		}
		s.state = stValue
		if kind == '{' {
			s.state = stKey
		}
		return i + 1, nil
	}
	if c == kind+2 {
		return s.close(i)
	}
	if kind == '{' {
		return 0, s.syntax(i, "expected , or } after object member")
	}
	return 0, s.syntax(i, "expected , or ] after array element")
}

// close closes the innermost container at buf[i].
func (s *Stream) close(i int) (int, error) {
	top := s.kinds[len(s.kinds)-1]
	s.kinds = s.kinds[:len(s.kinds)-1]
	if top&activeBit != 0 {
		if s.mode == modeHold {
			s.keep() // the white space after a first removed member stays
		}
		s.sc.active = s.sc.active[:s.frames[len(s.frames)-1].start]
		s.frames = s.frames[:len(s.frames)-1]
	}
	return i + 1, s.valueEnd(i + 1)
}

// valueEnd is called when a value ends just before buf[i].
func (s *Stream) valueEnd(i int) error {
	if s.region != regionNone && len(s.kinds) == s.regionDepth {
		if s.region == regionValue {
			if err := s.emitValue(i); err != nil {
				return err
			}
		} else {
			s.count++
			if s.frames[len(s.frames)-1].kept {
				s.toPass(i)
			} else {
				s.toHold(i) // what follows goes too if it is a comma
			}
		}
		s.region = regionNone
	}
	if len(s.kinds) == 0 {
		s.state = stTopAfter
		return nil
	}
	if s.region == regionNone && s.kinds[len(s.kinds)-1]&activeBit != 0 {
		s.sc.active = s.sc.active[:s.frames[len(s.frames)-1].end]
	}
	s.state = stAfter
	return nil
}

// strEnd is called when the current string ends just before buf[i].
func (s *Stream) strEnd(i int) error {
	if !s.key {
		if s.held {
			str, err := s.heldBytes(s.tokAt, i)
			if err != nil {
				return err
			}
			if err := s.checkString(str, s.tokAt, false, false); err != nil {
				return err
			}
			s.keep()
		}
		return s.valueEnd(i)
	}
	s.state = stColon
	if !s.held {
		return nil
	}
	str, err := s.heldBytes(s.tokAt, i)
	if err != nil {
		return err
	}
	if s.kinds[len(s.kinds)-1]&activeBit == 0 {
		if err := s.checkString(str, s.tokAt, true, false); err != nil {
			return err
		}
		s.keep()
		return nil
	}
	f := &s.frames[len(s.frames)-1]
	term := s.scn.child(f.start, f.end, str[1:len(str)-1], s.esc, -1)
	if s.check != nil {
		if err := s.checkString(str, s.tokAt, true, term >= 0); err != nil {
			return err
		}
	}
	if f.idx > 0 && !f.removing {
		f.kept = true // the previous member stays
	}
	f.removing = term >= 0 && s.p.fields[term].Remove
	if f.removing {
		s.dropHeld()
	} else {
		s.keep()
	}
	s.term, s.cs = term, f.end
	return nil
}

// str reads the current string from buf[i].
func (s *Stream) str(i int) (int, error) {
	buf := s.buf
	n := len(buf)
	for {
		if s.sub != subNone {
			if i >= n {
				return n, nil
			}
			if err := s.strSub(buf[i]); err != nil {
				return 0, err
			}
			i++
			continue
		}
		for i+8 <= n {
			x := binary.LittleEndian.Uint64(buf[i:])
			if mask := (quoteOrBackslash(x) | (x-0x20*lsb)&^x | x) & msb; mask != 0 {
				i += bits.TrailingZeros64(mask) >> 3
				break
			}
			i += 8
		}
		if i >= n {
			return n, nil
		}
		switch c := buf[i]; {
		case c == '"':
			return i + 1, s.strEnd(i + 1)
		case c == '\\':
			s.esc = true
			if i+1 >= n {
				s.sub, s.escAt = subEsc, s.base+i
				return n, nil
			}
			switch buf[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > n {
					s.sub, s.need, s.escAt = subU, 4, s.base+i
					i += 2
					continue
				}
				if _, ok := hex4(buf, i+2); !ok {
					return 0, s.syntax(i, "invalid \\u escape in string")
				}
				i += 6
			case '\n':
				if s.ndjson {
					return 0, s.syntaxAt(s.tokAt, "unterminated string")
				}
				fallthrough
			default:
				return 0, s.syntax(i, "invalid escape sequence in string")
			}
		case c < 0x20:
			if c == '\n' && s.ndjson {
				return 0, s.syntaxAt(s.tokAt, "unterminated string")
			}
			return 0, s.syntax(i, "control character in string")
		case c >= utf8.RuneSelf:
			if !utf8.FullRune(buf[i:]) {
				s.utf8Lead(c)
				s.escAt = s.base + i
				i++
				continue
			}
			r, size := utf8.DecodeRune(buf[i:])
			if r == utf8.RuneError && size == 1 {
				return 0, s.syntax(i, "invalid UTF-8 in string")
			}
			i += size
		default:
			i++
		}
	}
}

// strSub reads byte c of an escape or UTF-8 sequence cut by the end of a chunk.
func (s *Stream) strSub(c byte) error {
	switch s.sub {
	case subEsc:
		switch c {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			s.sub = subNone
		case 'u':
			s.sub, s.need = subU, 4
		default:
			if c == '\n' && s.ndjson {
				return s.syntaxAt(s.tokAt, "unterminated string")
			}
			return s.syntaxAt(s.escAt, "invalid escape sequence in string")
		}
	case subU:
		if !isHex(c) {
			return s.syntaxAt(s.escAt, "invalid \\u escape in string")
		}
		if s.need--; s.need == 0 {
			s.sub = subNone
		}
	case subUTF8:
		if c < s.lo || c > s.hi {
			return s.syntaxAt(s.escAt, "invalid UTF-8 in string")
		}
		s.lo, s.hi = 0x80, 0xBF
		if s.need--; s.need == 0 {
			s.sub = subNone
		}
	}
	return nil
}

// utf8Lead starts a UTF-8 sequence whose lead byte c is valid (utf8.FullRune said the chunk
// ends inside it): it sets the bytes due and the range of the next one, as utf8.DecodeRune
// checks them.
func (s *Stream) utf8Lead(c byte) {
	s.sub, s.lo, s.hi = subUTF8, 0x80, 0xBF
	switch {
	case c < 0xE0:
		s.need = 1
	case c == 0xE0:
		s.need, s.lo = 2, 0xA0
	case c == 0xED:
		s.need, s.hi = 2, 0x9F
	case c < 0xF0:
		s.need = 2
	case c == 0xF0:
		s.need, s.lo = 3, 0x90
	case c == 0xF4:
		s.need, s.hi = 3, 0x8F
	default:
		s.need = 3
	}
}

func isHex(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// number reads the current number from buf[i].
func (s *Stream) number(i int) (int, error) {
	buf := s.buf
	n := len(buf)
	for i < n {
		c := buf[i]
		switch s.sub {
		case numStart:
			s.sub = numMinus
			if c == '-' {
				i++
			}
			continue
		case numMinus:
			switch {
			case c == '0':
				s.sub = numZero
			case c >= '1' && c <= '9':
				s.sub = numInt
			default:
				return 0, s.syntaxAt(s.tokAt, "invalid number")
			}
		case numInt, numFrac, numExp:
			for i < n && isDigit(buf[i]) {
				i++
			}
			if i >= n {
				return n, nil
			}
			c = buf[i]
			switch {
			case c == '.' && s.sub == numInt:
				s.sub = numDot
			case (c == 'e' || c == 'E') && s.sub != numExp:
				s.sub = numE
			default:
				return i, s.valueEnd(i)
			}
		case numZero:
			switch c {
			case '.':
				s.sub = numDot
			case 'e', 'E':
				s.sub = numE
			default:
				return i, s.valueEnd(i)
			}
		case numDot, numESign:
			if !isDigit(c) {
				return 0, s.syntaxAt(s.tokAt, "invalid number")
			}
			s.sub++ // numFrac, numExp
		case numE:
			switch {
			case c == '+' || c == '-':
				s.sub = numESign
			case isDigit(c):
				s.sub = numExp
			default:
				return 0, s.syntaxAt(s.tokAt, "invalid number")
			}
		}
		i++
	}
	return n, nil
}

// literal reads the current literal from buf[i].
func (s *Stream) literal(i int) (int, error) {
	buf, lit := s.buf, s.lit
	for ; i < len(buf) && int(s.sub) < len(lit); i++ {
		if buf[i] != lit[s.sub] {
			return 0, s.syntaxAt(s.tokAt, "invalid literal")
		}
		s.sub++
	}
	if int(s.sub) == len(lit) {
		return i, s.valueEnd(i)
	}
	return i, nil
}
