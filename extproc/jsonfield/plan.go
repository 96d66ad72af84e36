package jsonfield

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"unicode"
	"unicode/utf8"
)

// DefaultMaxDepth is the nesting limit used when [Options.MaxDepth] is zero, and by [Rewrite].
const DefaultMaxDepth = 1000

// Field is one value to transform: the selector that finds it and the label the caller
// associates with it (jsonfield only hands the Field back to the transform function).
type Field struct {
	Selector *Selector
	Label    string
	// Remove deletes the members whose values the selector selects, with the comma that
	// separates them from their siblings, instead of passing the values to the transform
	// function; the rest of the object is copied unchanged. The selector must end in a member
	// step ([Selector.EndsInMember]). A rewrite counts each deleted member as a replaced value.
	Remove bool
}

// Options tune a [Plan]. The zero value is the default.
type Options struct {
	// MaxDepth is the deepest nesting of objects and arrays accepted (the top-level value being
	// inside none). Deeper documents are rejected with a [*SyntaxError] that also wraps
	// [ErrTooDeep]. 0 means DefaultMaxDepth.
	MaxDepth int

	// FoldCase makes member names match under Unicode simple case folding, the way Go's
	// encoding/json binds keys to struct fields ("SSN" and "Ssn" then match $.ssn). Use it when
	// the application behind the proxy matches keys case-insensitively, so that a differently
	// cased key cannot slip a value past the selectors.
	FoldCase bool
}

// Plan is a compiled set of fields. Build it once per field list with [NewPlan]; it is immutable
// and safe for concurrent use, and its Rewrite does not allocate apart from growing dst.
type Plan struct {
	fields   []Field
	nodes    []node
	maxDepth int
	fold     bool
	remove   bool // some field is a Remove field
	// maxRecorded is the number of strings the walk records for the guard pass (a field so that
	// tests can make the guard pass find the rest by scanning).
	maxRecorded int
	pool        sync.Pool // of *scratch
}

// node is one state of the selector automaton: a trie of the steps of all selectors, in which
// recursive descent is a "loop" node that stays active in every descendant.
type node struct {
	members map[string]int32 // member name -> next node
	// names and nexts are members as a list, when it has at most maxListed names: comparing a
	// few strings costs less than hashing the name for a map lookup.
	names []string
	nexts []int32
	// lens has bit lenBit(len(name)) set for each name of members; all bits when members is
	// not listed.
	lens    uint64
	index   map[int]int32 // array index -> next node
	wild    int32         // next node for any child, or -1
	desc    int32         // loop node entered for free (epsilon) at this node, or -1
	loop    bool          // stays active in every child
	field   int32         // the first field selecting values reaching this node, or -1
	closure []int32       // this node, then desc if any
}

// NewPlan compiles fields. It copies the slice; the transform function of [Plan.Rewrite] receives
// pointers into that copy. Errors wrap [ErrInvalidSelector].
func NewPlan(fields []Field, opts Options) (*Plan, error) {
	return compile(slices.Clone(fields), opts)
}

func compile(fields []Field, opts Options) (*Plan, error) {
	if opts.MaxDepth < 0 {
		return nil, fmt.Errorf("negative max depth %d: %w", opts.MaxDepth, ErrInvalidSelector)
	}
	p := &Plan{fields: fields, maxDepth: opts.MaxDepth, fold: opts.FoldCase, maxRecorded: maxRecorded}
	if p.maxDepth == 0 {
		p.maxDepth = DefaultMaxDepth
	}
	p.newNode(false)
	for fi, f := range fields {
		if f.Selector == nil {
			return nil, fmt.Errorf("field %d: nil selector: %w", fi, ErrInvalidSelector)
		}
		if f.Remove && !f.Selector.EndsInMember() {
			return nil, fmt.Errorf("field %d: a removed field's selector %s must end in a member name: %w", fi, f.Selector, ErrInvalidSelector)
		}
		cur := int32(0)
		for _, st := range f.Selector.steps {
			switch st.kind {
			case stepMember:
				cur = p.memberEdge(cur, st.name)
			case stepWildcard:
				if p.nodes[cur].wild < 0 {
					p.nodes[cur].wild = p.newNode(false)
				}
				cur = p.nodes[cur].wild
			case stepIndex:
				nd := &p.nodes[cur]
				if nd.index == nil {
					nd.index = make(map[int]int32)
				}
				next, ok := nd.index[st.index]
				if !ok {
					next = p.newNode(false)
					p.nodes[cur].index[st.index] = next
				}
				cur = next
			case stepDescendant:
				if p.nodes[cur].desc < 0 {
					p.nodes[cur].desc = p.newNode(true)
				}
				cur = p.memberEdge(p.nodes[cur].desc, st.name)
			}
		}
		if p.nodes[cur].field < 0 {
			p.nodes[cur].field = int32(fi)
		}
		p.remove = p.remove || f.Remove
	}
	for id := range p.nodes {
		nd := &p.nodes[id]
		nd.closure = []int32{int32(id)}
		if nd.desc >= 0 {
			nd.closure = append(nd.closure, nd.desc)
		}
		nd.lens = ^uint64(0)
		if len(nd.members) <= maxListed {
			nd.lens = 0
			for name, next := range nd.members {
				nd.names = append(nd.names, name)
				nd.nexts = append(nd.nexts, next)
				nd.lens |= lenBit(len(name))
			}
		}
	}
	p.pool.New = func() any { return new(scratch) }
	return p, nil
}

// maxListed is the most member names of a node looked up in a list rather than its map.
const maxListed = 8

// lenBit is the bit of node.lens for a name of n bytes.
func lenBit(n int) uint64 { return 1 << min(n, 63) }

// member returns the node that the member named name leads to from nd.
func (nd *node) member(name []byte) (int32, bool) {
	if nd.names == nil {
		next, ok := nd.members[string(name)]
		return next, ok
	}
	for k, n := range nd.names {
		if n == string(name) {
			return nd.nexts[k], true
		}
	}
	return -1, false
}

func (p *Plan) newNode(loop bool) int32 {
	p.nodes = append(p.nodes, node{wild: -1, desc: -1, loop: loop, field: -1})
	return int32(len(p.nodes) - 1)
}

func (p *Plan) memberEdge(from int32, name string) int32 {
	if p.fold {
		name = string(Fold(nil, []byte(name)))
	}
	if p.nodes[from].members == nil {
		p.nodes[from].members = make(map[string]int32)
	}
	if next, ok := p.nodes[from].members[name]; ok {
		return next
	}
	next := p.newNode(false)
	p.nodes[from].members[name] = next
	return next
}

// Fields returns the plan's fields (its own copy; do not modify).
func (p *Plan) Fields() []Field { return p.fields }

// Rewrite compiles fields and calls [Plan.Rewrite] with the default [Options]. The transform
// function receives pointers into fields. Compiling costs a few allocations per call; build a
// [Plan] once per field list on hot paths.
func Rewrite(dst, doc []byte, fields []Field, fn func(f *Field, raw []byte) ([]byte, error)) ([]byte, int, error) {
	p, err := compile(fields, Options{})
	if err != nil {
		return dst, 0, err
	}
	return p.Rewrite(dst, doc, fn)
}

// Rewrite validates the whole of doc as strict JSON and appends to dst a copy of doc in which
// every value selected by the plan's fields is replaced by fn's result; every other byte is copied
// unchanged. It returns the extended slice and the number of values replaced.
//
// fn is called only once the whole document is known to be valid, once per selected value, in
// document order, with the field that selected it (the first in the list, when several do) and
// the exact bytes of the value. raw aliases doc: fn must not modify or retain it. fn returns the
// replacement JSON text, which is written as is: it is not validated.
//
// On any error, Rewrite returns dst unchanged (its length; bytes beyond it may have been written)
// and a count of 0. Invalid documents give a [*SyntaxError] wrapping [ErrInvalidJSON]; errors from
// fn are wrapped in a [*ValueError] naming the selector that matched and the value's offset.
func (p *Plan) Rewrite(dst, doc []byte, fn func(f *Field, raw []byte) ([]byte, error)) ([]byte, int, error) {
	return p.RewriteChecked(dst, doc, nil, fn)
}

// rewrite appends to dst doc with the values in sc.spans replaced by fn's results.
func (p *Plan) rewrite(sc *scratch, dst, doc []byte, fn func(f *Field, raw []byte) ([]byte, error)) ([]byte, int, error) {
	out := slices.Grow(dst, len(doc))
	last := 0
	for _, sp := range sc.spans {
		f := &p.fields[sp.field]
		if f.Remove {
			start, end := removal(doc, sp)
			out = append(out, doc[last:max(start, last)]...)
			last = end
			continue
		}
		out = append(out, doc[last:sp.start]...)
		repl, err := fn(f, doc[sp.start:sp.end:sp.end])
		if err != nil {
			discard(out, dst)
			return dst, 0, &ValueError{Op: "transform", Selector: f.Selector, Offset: sp.start, Err: err}
		}
		out = append(out, repl...)
		last = sp.end
	}
	out = append(out, doc[last:]...)
	return out, len(sc.spans), nil
}

// removal returns the bytes to delete for the removed member of span sp: the member and the
// comma before it when a kept member precedes it in its object; otherwise (no kept member
// before it) the member and the comma and white space after it, if any. Deleting these for
// every removed member of an object leaves kept members separated by exactly one comma.
func removal(doc []byte, sp span) (start, end int) {
	if !sp.first {
		return sp.sep, sp.end
	}
	end = sp.end
	if j := skipWS(doc, end); j < len(doc) && doc[j] == ',' {
		end = skipWS(doc, j+1)
	}
	return sp.key, end
}

// AppendMember appends `,"name":value` to dst: a sibling member for the object that holds the
// value just written. It is meant for the replacement a transform function returns for a value
// selected by a field whose selector ends in a member step ([Selector.EndsInMember]): there, the
// value is always an object member's and the result stays valid JSON. name is written as a JSON
// string (escaped as encoding/json does); value is written as is and must be JSON text.
func AppendMember(dst []byte, name string, value []byte) []byte {
	dst = append(dst, ',')
	dst = appendQuoted(dst, name)
	dst = append(dst, ':')
	return append(dst, value...)
}

// appendQuoted appends name as a JSON string.
func appendQuoted(dst []byte, name string) []byte {
	const hexd = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			dst = append(dst, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// Visit validates the whole of doc like [Plan.Rewrite] and then calls fn for each selected value,
// in document order, with the field that selected it and the value's exact bytes (aliasing doc:
// fn must not modify or retain them). It returns the number of values selected. It copies
// nothing, so it is the way to read values, e.g. a key id, out of a body. An invalid document
// gives a [*SyntaxError] and no calls; an error from fn stops the visit and is returned wrapped.
func (p *Plan) Visit(doc []byte, fn func(f *Field, raw []byte) error) (int, error) {
	return p.VisitAt(doc, func(f *Field, _ int, raw []byte) error { return fn(f, raw) })
}

// VisitAt is [Plan.Visit] that also passes each selected value's offset in doc (for
// [PathAt]).
func (p *Plan) VisitAt(doc []byte, fn func(f *Field, off int, raw []byte) error) (int, error) {
	sc := p.pool.Get().(*scratch)
	defer p.release(sc)
	if err := p.prepare(sc, doc, nil); err != nil {
		return 0, err
	}
	for _, sp := range sc.spans {
		f := &p.fields[sp.field]
		if err := fn(f, sp.start, doc[sp.start:sp.end:sp.end]); err != nil {
			return 0, &ValueError{Op: "visit", Selector: f.Selector, Offset: sp.start, Err: err}
		}
	}
	return len(sc.spans), nil
}

// Validate reports whether doc is strict JSON under the plan's options, without selecting
// anything. Errors are [*SyntaxError] values wrapping [ErrInvalidJSON].
func (p *Plan) Validate(doc []byte) error {
	sc := p.pool.Get().(*scratch)
	defer p.release(sc)
	err := validate(doc, p.maxDepth, sc.kinds)
	return err
}

// Validate reports whether doc is strict JSON with the default [Options]. Errors are
// [*SyntaxError] values wrapping [ErrInvalidJSON]. It does not allocate for documents nested less
// than 64 deep.
func Validate(doc []byte) error {
	var kinds [64]byte
	return validate(doc, DefaultMaxDepth, kinds[:0])
}

// maxRetained bounds the scratch kept in the pool, so that one huge document does not pin memory.
const maxRetained = 1 << 16

func (p *Plan) release(sc *scratch) {
	if cap(sc.spans) > maxRetained || cap(sc.active) > maxRetained || cap(sc.key) > maxRetained {
		return
	}
	sc.spans = sc.spans[:0]
	// Decoded names and strings outside the selected values may still be sensitive (that is what
	// the guard pass looks for): do not keep them, nor a reference to the document.
	clear(sc.key[:cap(sc.key)])
	sc.outside = Outside{}
	p.pool.Put(sc)
}

// Fold appends to dst the case-folded form of the UTF-8 text s and returns the extended slice:
// every rune is replaced by the smallest rune of its simple case-folding orbit, as encoding/json
// does to match keys ("SSN", "ssn" and "ſsn" all fold to "SSN"). It is the comparison of
// [Options.FoldCase]: a plan matches a member name when Fold of the decoded name equals Fold of
// the selector's name. Invalid UTF-8 bytes become U+FFFD.
func Fold(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		dst = utf8.AppendRune(dst, foldRune(r))
		i += n
	}
	return dst
}

func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

func depthErr(i, maxDepth int) error {
	return &SyntaxError{Offset: i, Msg: "nesting depth exceeds " + strconv.Itoa(maxDepth), MaxDepth: maxDepth}
}

// discard clears out when Rewrite is about to drop it: when it outgrew dst, it is an array of
// Rewrite's own that holds the replacements made so far (decrypted values, for a caller that
// opens fields). An out that shares dst's array is the caller's to clear.
func discard(out, dst []byte) {
	if cap(out) > 0 && (cap(dst) == 0 || &out[:1][0] != &dst[:1][0]) {
		clear(out[:cap(out)])
	}
}
