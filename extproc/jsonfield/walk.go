package jsonfield

import (
	"encoding/binary"
	"slices"
	"unicode/utf8"
)

// scratch is the per-call working memory of a Plan, reused through the plan's pool.
type scratch struct {
	frames  []frame  // open containers that some selector can still reach into
	active  []int32  // automaton nodes active per frame; frame f owns active[f.start:f.end]
	mark    []uint32 // per node: generation in which it was last added (deduplication)
	gen     uint32
	spans   []span  // selected values, in document order
	kinds   []byte  // container stack of skipValue
	key     []byte  // decoded (and folded) member name, or decoded string of the guard pass
	outside Outside // passed to the check function of the guard pass
	rec     recorder
}

type frame struct {
	kind       byte // '{' or '['
	idx        int  // index of the current array element
	start, end int  // the frame's active nodes
	sep        int  // offset of the comma before the current element; -1 for the first
	kept       bool // a member before the current one is kept (not a removed member)
	removing   bool // the current member is removed
}

type span struct {
	start, end int
	field      int32
	// For a member that a Remove field deletes: the offset of its name, the comma before it
	// (frame.sep) and whether no kept member precedes it in its object.
	key, sep int
	first    bool
}

type scanner struct {
	*scratch
	keyAt    int // offset of the name of the object member being read
	plan     *Plan
	doc      []byte
	maxDepth int
	rec      *recorder // nil, or &scratch.rec when a guard pass follows the walk
	// at is added to the offsets the guard pass reports, and line (1-based, or 0) is named in
	// its errors: a Stream rewrites an NDJSON line as a document of its own.
	at, line int
}

// validate checks that doc is exactly one JSON value with optional whitespace around it.
func validate(doc []byte, maxDepth int, kinds []byte) error {
	i := skipWS(doc, 0)
	if i >= len(doc) {
		return syntaxErr(i, "unexpected end of input")
	}
	i, _, err := skipValue(doc, i, 0, maxDepth, kinds, nil)
	if err != nil {
		return err
	}
	return checkEnd(doc, i)
}

func checkEnd(doc []byte, i int) error {
	if i = skipWS(doc, i); i != len(doc) {
		return syntaxErr(i, "trailing data after top-level value")
	}
	return nil
}

// walk validates the document and records in spans the outermost values the plan selects. It
// descends with the automaton only into containers where some node is active; everything else is
// left to skipValue.
func (sc *scanner) walk() error {
	doc := sc.doc
	n := len(doc)
	sc.frames = sc.frames[:0]
	sc.active = sc.active[:0]
	sc.spans = sc.spans[:0]
	if len(sc.mark) < len(sc.plan.nodes) {
		sc.mark = make([]uint32, len(sc.plan.nodes))
		sc.gen = 0
	}
	i := skipWS(doc, 0)
	if i >= n {
		return syntaxErr(i, "unexpected end of input")
	}
	sc.nextGen()
	term := int32(-1)
	if len(sc.plan.fields) > 0 {
		term = sc.addClosure(0, term)
	}
	cs := 0 // the active nodes for the value at i are active[cs:]
	depth := 0
	var err error
	for {
		// i is at the first byte of a value.
		c := doc[i]
		switch {
		case term >= 0:
			start := i
			// Strings and other scalars are scanned here: skipValue would do the same, with
			// the cost of a call and its container bookkeeping.
			switch {
			case c == '"':
				i, _, err = scanString(doc, i)
			case c == '{' || c == '[':
				i, err = sc.skip(i, depth, nil)
			default:
				i, err = scanScalar(doc, i)
			}
			if err != nil {
				return err
			}
			sp := span{start: start, end: i, field: term}
			if sc.plan.fields[term].Remove {
				top := &sc.frames[len(sc.frames)-1] // a member step selected it: an object frame
				sp.key, sp.sep, sp.first = sc.keyAt, top.sep, !top.kept
			}
			sc.spans = append(sc.spans, sp)
			sc.active = sc.active[:cs]
		case c == '"':
			start := i
			var esc bool
			if i, esc, err = scanString(doc, i); err != nil {
				return err
			}
			if sc.rec != nil {
				sc.rec.add(start, i, strFlags(esc, false, false))
			}
			sc.active = sc.active[:cs]
		case c != '{' && c != '[':
			if i, err = scanScalar(doc, i); err != nil {
				return err
			}
			sc.active = sc.active[:cs]
		case len(sc.active) == cs:
			if i, err = sc.skip(i, depth, sc.rec); err != nil {
				return err
			}
			sc.active = sc.active[:cs]
		default:
			if depth++; depth > sc.maxDepth {
				return depthErr(i, sc.maxDepth)
			}
			i = skipWS(doc, i+1)
			if i < n && doc[i] == c+2 {
				i++
				depth--
				sc.active = sc.active[:cs]
				break
			}
			sc.frames = append(sc.frames, frame{kind: c, start: cs, end: len(sc.active), sep: -1})
			if i, term, err = sc.element(i); err != nil {
				return err
			}
			cs = sc.frames[len(sc.frames)-1].end
			continue
		}
		// After a value: close frames until one has another element.
		for {
			if len(sc.frames) == 0 {
				return checkEnd(doc, i)
			}
			i = skipWS(doc, i)
			if i >= n {
				return syntaxErr(i, "unexpected end of input")
			}
			top := &sc.frames[len(sc.frames)-1]
			if doc[i] == ',' {
				top.idx++
				top.sep = i
				if i, term, err = sc.element(skipWS(doc, i+1)); err != nil {
					return err
				}
				cs = top.end
				break
			}
			if doc[i] != top.kind+2 {
				return delimErr(doc, i, top.kind)
			}
			sc.active = sc.active[:top.start]
			sc.frames = sc.frames[:len(sc.frames)-1]
			depth--
			i++
		}
	}
}

// element starts the next element of the top frame at doc[i]: for an object it reads the key and
// the ':'. It computes the element's active nodes (appended to active) and returns the offset of
// the element's value and the field selecting it, or -1.
func (sc *scanner) element(i int) (int, int32, error) {
	doc := sc.doc
	top := &sc.frames[len(sc.frames)-1]
	if top.kind == '[' {
		if i >= len(doc) {
			return 0, 0, syntaxErr(i, "unexpected end of input")
		}
		return i, sc.child(top.start, top.end, nil, false, top.idx), nil
	}
	if i >= len(doc) || doc[i] != '"' {
		return 0, 0, syntaxErr(i, "expected string for object key")
	}
	end, esc, err := scanString(doc, i)
	if err != nil {
		return 0, 0, err
	}
	term := sc.child(top.start, top.end, doc[i+1:end-1], esc, -1)
	if top.idx > 0 && !top.removing {
		top.kept = true // the previous member stays
	}
	top.removing = term >= 0 && sc.plan.fields[term].Remove
	sc.keyAt = i
	if sc.rec != nil {
		sc.rec.add(i, end, strFlags(esc, true, term >= 0))
	}
	if i, err = afterKey(doc, end); err != nil {
		return 0, 0, err
	}
	return i, term, nil
}

// child appends the nodes active in a child of the container whose nodes are active[ps:pe]: the
// member named by the raw key (escaped says whether it has escape sequences) or, when idx >= 0,
// the array element idx. It returns the first field selecting the child, or -1.
func (sc *scanner) child(ps, pe int, rawKey []byte, escaped bool, idx int) int32 {
	sc.nextGen()
	nodes := sc.plan.nodes
	term := int32(-1)
	var key []byte
	decoded := false
	for k := ps; k < pe; k++ {
		id := sc.active[k]
		nd := &nodes[id]
		if nd.loop {
			term = sc.add(id, term)
		}
		if nd.wild >= 0 {
			term = sc.addClosure(nd.wild, term)
		}
		if idx < 0 {
			if len(nd.members) == 0 {
				continue
			}
			if !decoded {
				if !escaped && nd.lens&lenBit(len(rawKey)) == 0 && (!sc.plan.fold || isASCII(rawKey)) {
					// The name (as long as the raw key: no escapes, and ASCII if folded) is
					// not as long as any of nd's: no need to decode or fold it.
					continue
				}
				key, decoded = sc.memberName(rawKey, escaped), true
			}
			if next, ok := nd.member(key); ok {
				term = sc.addClosure(next, term)
			}
		} else if len(nd.index) > 0 {
			if next, ok := nd.index[idx]; ok {
				term = sc.addClosure(next, term)
			}
		}
	}
	return term
}

func (sc *scanner) nextGen() {
	if sc.gen++; sc.gen == 0 {
		clear(sc.mark)
		sc.gen = 1
	}
}

func (sc *scanner) addClosure(id, term int32) int32 {
	for _, c := range sc.plan.nodes[id].closure {
		term = sc.add(c, term)
	}
	return term
}

// add makes node id active (once per generation) and folds its field into term.
func (sc *scanner) add(id, term int32) int32 {
	if sc.mark[id] == sc.gen {
		return term
	}
	sc.mark[id] = sc.gen
	sc.active = append(sc.active, id)
	if f := sc.plan.nodes[id].field; f >= 0 && (term < 0 || f < term) {
		term = f
	}
	return term
}

// memberName returns the name a raw (already validated) key stands for, decoding escapes and,
// for FoldCase plans, folding case. The result may alias the scratch buffer.
func (sc *scanner) memberName(raw []byte, escaped bool) []byte {
	if !escaped && !sc.plan.fold {
		return raw
	}
	name := raw
	if escaped {
		sc.key = unescape(sc.key[:0], raw)
		name = sc.key
	}
	if sc.plan.fold {
		n := len(sc.key)
		if !escaped {
			n = 0
			if folded, ok := foldASCII(sc.key[:0], raw); ok {
				sc.key = folded
				return folded
			}
			sc.key = sc.key[:0]
		}
		sc.key = Fold(sc.key, name)
		name = sc.key[n:]
	}
	return name
}

// isASCII reports whether s has only ASCII bytes.
func isASCII(s []byte) bool {
	for len(s) >= 8 {
		if binary.LittleEndian.Uint64(s)&msb != 0 {
			return false
		}
		s = s[8:]
	}
	for _, c := range s {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// foldASCII is Fold for ASCII text, which it writes by index rather than appending: dst[:0]
// extended by s with a-z mapped to A-Z, and true; or false when s has a byte that is not ASCII.
func foldASCII(dst, s []byte) ([]byte, bool) {
	dst = slices.Grow(dst[:0], len(s))[:len(s)]
	for i, c := range s {
		if c >= utf8.RuneSelf {
			return dst[:0], false
		}
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		dst[i] = c
	}
	return dst, true
}

// unescape appends the decoded value of the validated string body s. Like encoding/json, it
// turns an unpaired surrogate escape into U+FFFD.
func unescape(dst, s []byte) []byte {
	// The decoded text is never longer than s: write it in place by index, which is much faster
	// than appending byte by byte for the short strings of JSON documents.
	n := len(dst)
	dst = slices.Grow(dst, len(s))[:n+len(s)]
	w := dst[n:]
	k := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			w[k] = c
			k++
			i++
			continue
		}
		c = s[i+1]
		i += 2
		switch c {
		case 'b':
			c = '\b'
		case 'f':
			c = '\f'
		case 'n':
			c = '\n'
		case 'r':
			c = '\r'
		case 't':
			c = '\t'
		case 'u':
			r := unhex4(s[i : i+4])
			i += 4
			if r >= 0xD800 && r < 0xDC00 && i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
				if r2 := unhex4(s[i+2 : i+6]); r2 >= 0xDC00 && r2 < 0xE000 {
					r = (r-0xD800)<<10 | (r2 - 0xDC00) + 0x10000
					i += 6
				}
			}
			// utf8.EncodeRune writes U+FFFD for an unpaired surrogate.
			k += utf8.EncodeRune(w[k:], r)
			continue
		}
		w[k] = c // or '"', '\\', '/' as is
		k++
	}
	return dst[:n+k]
}

// unhex4 decodes the four hex digits of a validated \u escape, all four at once.
func unhex4(s []byte) rune {
	x := binary.BigEndian.Uint32(s) // the first digit in the top byte
	// A digit's value is its low nibble, plus 9 for letters: '0'-'9' are 0x30-0x39, 'A'-'F'
	// 0x41-0x46 and 'a'-'f' 0x61-0x66, so bit 6 tells letters apart.
	x = x&0x0f0f0f0f + 9*(x>>6&0x01010101)
	x = (x | x>>4) & 0x00ff00ff
	return rune(x>>8&0xff00 | x&0xff)
}
