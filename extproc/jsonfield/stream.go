package jsonfield

import (
	"errors"
)

// Default limits of a [Stream] (see [StreamOptions]).
const (
	DefaultMaxValue   = 1 << 20
	DefaultMaxPending = 64 << 10
)

// ErrStreamClosed is returned by [Stream.Write] after [Stream.Close].
var ErrStreamClosed = errors.New("json stream already closed")

// StreamOptions tune a [Stream]. The zero value is the default.
type StreamOptions struct {
	// NDJSON makes the stream a sequence of JSON values, one a line (NDJSON, JSON Lines): every
	// line feed ends a line, each line must be exactly one JSON value (white space around it
	// allowed, so CRLF line ends are too) and is rewritten as [Plan.RewriteChecked] rewrites a
	// document, with the selectors starting afresh at its top-level value. Lines of nothing but
	// white space are copied as they are. Errors name the line.
	NDJSON bool

	// MaxValue is the most bytes of one selected value the stream holds before it calls the
	// transform function with it; a longer value is refused with a [*LimitError]. 0 means
	// [DefaultMaxValue].
	MaxValue int

	// MaxPending is the most bytes the stream holds besides a selected value while it cannot yet
	// tell whether they may be forwarded: a member name until its selection is known, the comma
	// and white space before a member that a Remove field may delete, and, when there is a
	// check function, a string until it has been checked. More is refused with a
	// [*LimitError]. 0 means [DefaultMaxPending].
	MaxPending int
}

// Stream is a push-mode [Plan.RewriteChecked] for documents that arrive in chunks and are too
// large, or too long-lived, to hold whole. See "Streaming" in the package documentation. A
// Stream is not safe for concurrent use; its Plan may be shared.
type Stream struct {
	p          *Plan
	check      func(*Outside) error
	fn         func(*Field, []byte) ([]byte, error)
	ndjson     bool
	maxValue   int
	maxPending int

	sc     scratch // the automaton's active nodes, generation marks and decoding buffer
	scn    scanner // the matcher over sc
	frames []sframe
	kinds  []byte // every open container: '{' or '[', with activeBit when it has a frame

	state uint8 // what the parser expects next (st*)
	sub   uint8 // progress inside the current token
	need  uint8 // bytes still due for an unfinished \u escape or UTF-8 sequence
	lo    byte  // range of the next UTF-8 continuation byte
	hi    byte
	lit   string // the literal being read
	esc   bool   // the current string has escape sequences
	key   bool   // the current string is a member name
	held  bool   // the current string is held until it is matched or checked
	// noFast turns off, until the end of the chunk, the attempts to skip a container with the
	// buffered scanner: one failed, so the rest of the chunk is inside a container.
	noFast bool
	tokAt  int // stream offset of the current string, number or literal
	escAt  int // stream offset of an unfinished escape's backslash or UTF-8 sequence's lead

	term int32 // the first field selecting the value about to start, or -1
	cs   int   // the nodes active in that value are sc.active[cs:]

	region      uint8 // regionNone, or the selected value (or removed member) being read
	regionDepth int   // len(kinds) when the region's value started
	regionField int32
	regionAt    int // stream offset of the region's value

	// Output. The chunk being scanned is buf: buf[mark:split] is to be forwarded, and from
	// split on the bytes go where mode says (forwarded as well for modePass).
	mode   uint8
	buf    []byte
	base   int // stream offset of buf[0]
	mark   int
	split  int
	out    []byte
	hold   []byte // held bytes of earlier chunks (modeHold)
	heldAt int    // stream offset of the first held byte
	val    []byte // bytes of earlier chunks of the selected value (modeValue)

	line    int // 1-based number of the current line (NDJSON)
	lineMax int // longest NDJSON line rewritten whole by the buffered path
	lsc     *scratch
	count   int
	closed  bool
	err     error
	outside Outside
}

// sframe is an open container in which some selector state is active.
type sframe struct {
	start, end int  // its active nodes are sc.active[start:end]
	idx        int  // index of the current element
	kept       bool // a member before the current one is kept (not removed)
	removing   bool // the current member is removed
}

const activeBit = 0x80

// Output modes.
const (
	modePass  uint8 = iota // forward
	modeHold               // hold until a decision (member name, separator, checked string)
	modeValue              // collect the selected value for fn
	modeDrop               // discard (a removed member)
)

// Regions.
const (
	regionNone uint8 = iota
	regionValue
	regionDrop
)

// NewStream returns a streaming rewrite under the plan: feed the document (or, with
// opts.NDJSON, the lines) in chunks of any size to [Stream.Write], then call [Stream.Close].
// check and fn are those of [Plan.RewriteChecked] (check may be nil), with the differences
// the package documentation describes under "Streaming": check is called for each string
// outside the selected values as soon as the string is complete, and before it is forwarded,
// and fn for each selected value as soon as the value is complete.
func (p *Plan) NewStream(opts StreamOptions, check func(*Outside) error, fn func(f *Field, raw []byte) ([]byte, error)) *Stream {
	s := &Stream{p: p, check: check, fn: fn, ndjson: opts.NDJSON, maxValue: opts.MaxValue, maxPending: opts.MaxPending}
	if s.maxValue <= 0 {
		s.maxValue = DefaultMaxValue
	}
	if s.maxPending <= 0 {
		s.maxPending = DefaultMaxPending
	}
	s.scn = scanner{scratch: &s.sc, plan: p, maxDepth: p.maxDepth}
	s.sc.mark = make([]uint32, len(p.nodes))
	s.line = 1
	s.lineMax = min(s.maxPending, s.maxValue)
	s.startDoc()
	return s
}

// startDoc prepares for a document (or line) that starts at the current offset.
func (s *Stream) startDoc() {
	s.state = stValue
	s.frames = s.frames[:0]
	s.kinds = s.kinds[:0]
	s.sc.active = s.sc.active[:0]
	s.scn.nextGen()
	s.term, s.cs = -1, 0
	if len(s.p.fields) > 0 {
		s.term = s.scn.addClosure(0, -1)
	}
}

// Write scans chunk, the next bytes of the stream, and appends to dst the output that may be
// forwarded now: everything up to the last byte known to lie outside the selected values (and
// the removed members) and to be valid so far, with the selected values completed in chunk
// replaced by fn's results. What it cannot forward yet (at most MaxValue bytes of a selected
// value plus MaxPending bytes of a pending token) it keeps until a later Write or Close; chunk
// itself is not retained.
//
// On an error, Write returns dst unchanged (clearing what it appended beyond len(dst)) and the
// error; the stream is then dead: every later Write and Close returns the same error and
// nothing else. Errors are a [*SyntaxError] (wrapping [ErrInvalidJSON], and [ErrTooDeep] over
// the nesting limit) with Offset counted from the start of the stream and, in NDJSON mode, the
// Line; a [*LimitError] (wrapping [ErrTooLarge]); fn's error wrapped in a [*ValueError]; check's
// error wrapped as by [Plan.RewriteChecked]; or [ErrStreamClosed].
func (s *Stream) Write(dst, chunk []byte) ([]byte, error) {
	if s.err != nil {
		return dst, s.err
	}
	if s.closed {
		return dst, ErrStreamClosed
	}
	s.out, s.buf, s.mark, s.split, s.noFast = dst, chunk, 0, 0, false
	err := s.scan()
	if err == nil {
		err = s.flush()
	}
	return s.done(dst, err, len(chunk))
}

// Close ends the stream and appends to dst the rest of the output. It returns a
// [*SyntaxError] when the document (in NDJSON mode, the last line, unless it is blank) is
// incomplete, and otherwise the errors of [Stream.Write]. Closing a closed stream appends
// nothing.
func (s *Stream) Close(dst []byte) ([]byte, error) {
	if s.err != nil {
		return dst, s.err
	}
	if s.closed {
		return dst, nil
	}
	s.out, s.buf, s.mark, s.split = dst, nil, 0, 0
	err := s.eof()
	if err == nil {
		err = s.flush()
	}
	s.closed = true
	return s.done(dst, err, 0)
}

// Held returns the number of bytes the stream holds between calls (of a selected value and of
// a pending token), for a memory budget. It is at most MaxValue + MaxPending. Besides, a
// stream keeps up to about 72 KiB of emptied buffers and scratch memory, and a little that
// grows with the nesting depth and the number of selectors.
func (s *Stream) Held() int { return len(s.hold) + len(s.val) }

// Values returns the number of values replaced so far (each removed member counts as one), the
// count [Plan.RewriteChecked] returns.
func (s *Stream) Values() int { return s.count }

// lineNo is the line number for errors: the current line in NDJSON mode, else 0.
func (s *Stream) lineNo() int {
	if s.ndjson {
		return s.line
	}
	return 0
}

// Line returns the 1-based number of the line being read (in NDJSON mode; 1 otherwise).
func (s *Stream) Line() int { return s.line }

// done finishes a Write or Close: on success it returns the output and advances the offset;
// on an error it kills the stream.
func (s *Stream) done(dst []byte, err error, n int) ([]byte, error) {
	out := s.out
	s.out, s.buf = nil, nil
	if err == nil {
		s.base += n
		return out, nil
	}
	// What was appended may hold replacements (plaintext, when fn decrypts): clear it, in
	// dst's spare capacity as well when append moved to a new array.
	clear(out[len(dst):])
	if cap(out) > 0 && cap(dst) > len(dst) && &out[:1][0] != &dst[:1][0] {
		clear(dst[len(dst):cap(dst)])
	}
	s.fail(err)
	return dst, s.err
}

// fail kills the stream with err and drops what it holds.
func (s *Stream) fail(err error) {
	s.err = err
	clear(s.hold)
	clear(s.val)
	clear(s.sc.key)
	s.hold, s.val, s.sc.key = nil, nil, nil
	s.outside = Outside{}
}

// flush ends the scan of buf: it forwards what may be and keeps what must be held.
func (s *Stream) flush() error {
	n := len(s.buf)
	switch s.mode {
	case modePass:
		s.out = append(s.out, s.buf[s.mark:n]...)
	case modeHold:
		s.out = append(s.out, s.buf[s.mark:s.split]...)
		if err := s.pendingLimit(n); err != nil {
			return err
		}
		s.hold = append(s.hold, s.buf[s.split:n]...)
	case modeValue:
		s.out = append(s.out, s.buf[s.mark:s.split]...)
		if err := s.valueLimit(n); err != nil {
			return err
		}
		s.val = append(s.val, s.buf[s.split:n]...)
	case modeDrop:
		s.out = append(s.out, s.buf[s.mark:s.split]...)
	}
	s.mark, s.split = 0, 0
	return nil
}

func (s *Stream) pendingLimit(i int) error {
	if s.base+i-s.heldAt > s.maxPending {
		return &LimitError{Offset: s.heldAt, What: "pending token", Limit: s.maxPending, Line: s.lineNo()}
	}
	return nil
}

func (s *Stream) valueLimit(i int) error {
	if s.base+i-s.regionAt > s.maxValue {
		return &LimitError{Offset: s.regionAt, What: "selected value", Limit: s.maxValue, Line: s.lineNo()}
	}
	return nil
}

// toHold starts holding at buf[i] (from modePass or modeDrop).
func (s *Stream) toHold(i int) {
	if s.mode == modeDrop {
		s.out = append(s.out, s.buf[s.mark:s.split]...)
		s.mark = i
	}
	s.split, s.mode, s.heldAt = i, modeHold, s.base+i
}

// keep forwards what is held and goes back to modePass.
func (s *Stream) keep() {
	if len(s.hold) > 0 {
		// buf[mark:split] is empty: the held bytes of earlier chunks come first.
		s.out = append(s.out, s.hold...)
		s.hold = shrink(s.hold)
		s.mark = s.split
	}
	s.mode = modePass
}

// dropHeld discards what is held and goes on discarding (modeDrop).
func (s *Stream) dropHeld() {
	if len(s.hold) > 0 {
		clear(s.hold)
		s.hold = shrink(s.hold)
		s.mark = s.split
	}
	s.mode = modeDrop
}

// maxKept is the most capacity an emptied hold or value buffer keeps, so that one large value
// does not pin its memory for the rest of a long stream.
const maxKept = 16 << 10

// shrink empties b, dropping its array when it is larger than maxKept.
func shrink(b []byte) []byte {
	if cap(b) > maxKept {
		return nil
	}
	return b[:0]
}

// toPass ends modeDrop at buf[i].
func (s *Stream) toPass(i int) {
	s.out = append(s.out, s.buf[s.mark:s.split]...)
	s.mark, s.split, s.mode = i, i, modePass
}

// heldBytes returns the held bytes from stream offset from (at or after heldAt) up to buf[i],
// contiguous: from buf when nothing of earlier chunks is held, else from hold.
func (s *Stream) heldBytes(from, i int) ([]byte, error) {
	if err := s.pendingLimit(i); err != nil {
		return nil, err
	}
	if len(s.hold) == 0 {
		return s.buf[from-s.base : i], nil
	}
	s.hold = append(s.hold, s.buf[s.split:i]...)
	s.mark, s.split = i, i
	return s.hold[from-s.heldAt:], nil
}

// emitValue ends the selected value at buf[i]: it calls fn with the whole value and forwards
// the replacement.
func (s *Stream) emitValue(i int) error {
	if err := s.valueLimit(i); err != nil {
		return err
	}
	raw := s.buf[s.split:i]
	if len(s.val) > 0 {
		s.val = append(s.val, raw...)
		raw = s.val
	} else {
		s.out = append(s.out, s.buf[s.mark:s.split]...)
	}
	f := &s.p.fields[s.regionField]
	repl, err := s.fn(f, raw[:len(raw):len(raw)])
	if err != nil {
		return &ValueError{Op: "transform", Selector: f.Selector, Offset: s.regionAt, Err: err, Line: s.lineNo()}
	}
	s.out = append(s.out, repl...)
	if len(s.val) > 0 {
		clear(s.val)
		s.val = shrink(s.val)
	}
	s.mark, s.split, s.mode = i, i, modePass
	s.count++
	return nil
}

// checkString calls check for the complete string str (with its quotes) that starts at stream
// offset at.
func (s *Stream) checkString(str []byte, at int, name, covered bool) error {
	if len(str) > s.maxPending { // as if it had been held: the limit does not depend on the chunks
		return &LimitError{Offset: at, What: "pending token", Limit: s.maxPending, Line: s.lineNo()}
	}
	body := str[1 : len(str)-1]
	o := &s.outside
	o.Offset, o.Name, o.Covered, o.Text = at, name, covered, body[:len(body):len(body)]
	if s.esc {
		s.sc.key = unescape(s.sc.key[:0], body)
		o.Text = s.sc.key[:len(s.sc.key):len(s.sc.key)]
	}
	err := s.check(o)
	o.Text = nil
	if cap(s.sc.key) > maxKept {
		clear(s.sc.key[:cap(s.sc.key)])
		s.sc.key = nil
	}
	if err != nil {
		return checkErr(name, s.lineNo(), at, err)
	}
	return nil
}
