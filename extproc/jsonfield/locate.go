package jsonfield

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// VisitAt is [Plan.Visit] that also passes each selected value's offset in doc.
func (p *Plan) VisitAt(doc []byte, fn func(f *Field, off int, raw []byte) error) (int, error) {
	sc := p.pool.Get().(*scratch)
	defer p.release(sc)
	if err := p.prepare(sc, doc, nil); err != nil {
		return 0, err
	}
	for _, sp := range sc.spans {
		f := &p.fields[sp.field]
		if err := fn(f, sp.start, doc[sp.start:sp.end:sp.end]); err != nil {
			return 0, fmt.Errorf("visit value selected by %s at offset %d: %w", f.Selector, sp.start, err)
		}
	}
	return len(sc.spans), nil
}

// Selects reports whether the plan selects the value at offset off of doc, or a value that
// contains it. When off is the opening quote of a member name, the member's value is meant.
// It validates doc; it is meant for the rare case (a tripwire) where one position must be
// checked against another set of selectors.
func (p *Plan) Selects(doc []byte, off int) (bool, error) {
	at, err := valueAt(doc, off)
	if err != nil {
		return false, err
	}
	sc := p.pool.Get().(*scratch)
	defer p.release(sc)
	if err := p.prepare(sc, doc, nil); err != nil {
		return false, err
	}
	for _, sp := range sc.spans {
		if sp.start <= at && at < sp.end {
			return true, nil
		}
	}
	return false, nil
}

// errNoValue: an offset that is not the start of a value or of a member name.
var errNoValue = errors.New("offset is not the start of a value or member name")

// pathElem is one step of a concrete path: a member name or an array index.
type pathElem struct {
	name  string
	index int // -1 for a member
}

// PathAt returns the canonical selector (as [Selector.String] prints it) of the value that
// starts at offset off of doc, or, when off is the opening quote of a member name, of that
// member: "$.contact[0].email". doc must be valid JSON. It is meant for error messages, and
// scans the document from the start.
func PathAt(doc []byte, off int) (string, error) {
	path, _, err := locate(doc, off)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteByte('$')
	for _, e := range path {
		if e.index >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(e.index))
			b.WriteByte(']')
		} else {
			writeName(&b, ".", e.name)
		}
	}
	return b.String(), nil
}

// valueAt returns the offset of the value that off designates: off itself, or the member's
// value when off is a member name.
func valueAt(doc []byte, off int) (int, error) {
	_, at, err := locate(doc, off)
	return at, err
}

// locate walks the valid document doc up to offset off and returns the path of the value (or
// member) there and the offset of the value.
func locate(doc []byte, off int) ([]pathElem, int, error) {
	if err := Validate(doc); err != nil {
		return nil, 0, err
	}
	if off < 0 || off >= len(doc) {
		return nil, 0, errNoValue
	}
	type frame struct {
		kind byte
		idx  int
		name string
	}
	var stack []frame
	path := func() []pathElem {
		out := make([]pathElem, 0, len(stack))
		for _, f := range stack {
			if f.kind == '[' {
				out = append(out, pathElem{index: f.idx})
			} else {
				out = append(out, pathElem{name: f.name, index: -1})
			}
		}
		return out
	}
	i := skipWS(doc, 0)
	for {
		// i is at the first byte of a value; the stack's top element is this value's place.
		if i == off {
			return path(), i, nil
		}
		c := doc[i]
		if c == '{' || c == '[' {
			j := skipWS(doc, i+1)
			if doc[j] == c+2 {
				i = j + 1
			} else {
				f := frame{kind: c}
				if c == '{' {
					end, esc, _ := scanString(doc, j)
					f.name = decodeName(doc[j+1:end-1], esc)
					if j == off {
						stack = append(stack, f)
						return path(), mustAfterKey(doc, end), nil
					}
					j = mustAfterKey(doc, end)
				}
				stack = append(stack, f)
				i = j
				continue
			}
		} else {
			end, err := scanScalar(doc, i)
			if err != nil {
				return nil, 0, err
			}
			if off > i && off < end {
				return nil, 0, errNoValue
			}
			i = end
		}
		// After a value: close containers until one has another element.
		for {
			if len(stack) == 0 {
				return nil, 0, errNoValue
			}
			i = skipWS(doc, i)
			top := &stack[len(stack)-1]
			if doc[i] == ',' {
				i = skipWS(doc, i+1)
				if top.kind == '[' {
					top.idx++
				} else {
					end, esc, _ := scanString(doc, i)
					top.name = decodeName(doc[i+1:end-1], esc)
					if i == off {
						return path(), mustAfterKey(doc, end), nil
					}
					i = mustAfterKey(doc, end)
				}
				break
			}
			stack = stack[:len(stack)-1]
			i++
			if off < i {
				return nil, 0, errNoValue
			}
		}
	}
}

func mustAfterKey(doc []byte, end int) int {
	i, _ := afterKey(doc, end)
	return i
}

func decodeName(raw []byte, esc bool) string {
	if !esc {
		return string(raw)
	}
	return string(unescape(nil, raw))
}

// Covers reports whether s selects every value that t can select, in every document (as paths:
// the outermost-selection rule is not taken into account). With fold, member names compare
// under simple case folding, as in a plan with [Options.FoldCase].
//
// It is conservative: true is always right, false may be wrong for selectors that cover each
// other only through a combination the proof does not try, such as an index and a wildcard
// that together enumerate an array ($[0] and $[*] against ...), or a recursive descent in t
// that s covers with several of its own. Callers treat false as "not proven".
func (s *Selector) Covers(t *Selector, fold bool) bool {
	return covers(s.steps, t.steps, fold)
}

func covers(e, d []step, fold bool) bool {
	if len(e) == 0 {
		return len(d) == 0
	}
	if e[0].kind == stepDescendant {
		// e = any* m e'.
		m := append([]step{{kind: stepMember, name: e[0].name}}, e[1:]...)
		if len(d) == 0 {
			return false
		}
		if d[0].kind == stepDescendant {
			// d = any^k n d': for every k, e's any* absorbs any^k.
			return covers(m, append([]step{{kind: stepMember, name: d[0].name}}, d[1:]...), fold)
		}
		// e's any* takes no step here, or absorbs d[0].
		return covers(m, d, fold) || covers(e, d[1:], fold)
	}
	if len(d) == 0 {
		return false
	}
	switch e[0].kind {
	case stepMember:
		return d[0].kind == stepMember && sameName(e[0].name, d[0].name, fold) && covers(e[1:], d[1:], fold)
	case stepIndex:
		return d[0].kind == stepIndex && d[0].index == e[0].index && covers(e[1:], d[1:], fold)
	case stepWildcard:
		if d[0].kind == stepDescendant {
			// d = any^k n d': k = 0 is "n d'" (the wildcard takes n), k > 0 keeps d.
			return covers(e[1:], d[1:], fold) && covers(e[1:], d, fold)
		}
		return covers(e[1:], d[1:], fold)
	}
	return false
}

func sameName(a, b string, fold bool) bool {
	if a == b {
		return true
	}
	return fold && string(Fold(nil, []byte(a))) == string(Fold(nil, []byte(b)))
}
