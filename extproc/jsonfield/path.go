package jsonfield

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// ErrNotAValue is wrapped by the errors of [PathAt] and [Plan.Selects] for an offset at which
// neither a value nor a member name starts.
var ErrNotAValue = errors.New("no value or member name starts at offset")

// PathAt returns the canonical path of what starts at offset off of the JSON document doc: the
// value that starts there or, when off is the opening quote of a member name, that member. The
// path is printed like [Selector.String] ($.contact[0].email, $[2].ssn, $['a b'].x), so
// ParseSelector accepts it and the selector selects that value (among any others with the same
// path: duplicate keys, or keys that decode to the same name).
//
// It is meant for error messages, such as naming the member that trips a guard: it validates the
// whole document and walks it from the start, and it allocates. It has no nesting limit and never
// recurses. An invalid document gives a [*SyntaxError]; an offset at which no value or member
// name starts gives an error wrapping [ErrNotAValue].
func PathAt(doc []byte, off int) (string, error) {
	sel, err := SelectorAt(doc, off)
	if err != nil {
		return "", err
	}
	return sel.String(), nil
}

// SelectorAt is [PathAt] returning the path as a selector (of member names and indexes only),
// for callers that want its parts, such as [Selector.Indexes].
func SelectorAt(doc []byte, off int) (*Selector, error) {
	if err := validate(doc, math.MaxInt, nil); err != nil {
		return nil, err
	}
	path, _, err := locate(doc, off)
	if err != nil {
		return nil, err
	}
	return &Selector{steps: path}, nil
}

// Selects reports whether the value that starts at offset off of doc (for the offset of a member
// name, that member's value) is selected by the plan or inside a selected value: whether
// [Plan.Rewrite] would transform it, alone or as part of a larger value. It is meant for the rare
// path on which a guard has tripped, to let a policy allow some places: it validates and walks
// the document and allocates. An invalid document gives a [*SyntaxError]; an offset at which no
// value or member name starts gives an error wrapping [ErrNotAValue].
func (p *Plan) Selects(doc []byte, off int) (bool, error) {
	sc := p.pool.Get().(*scratch)
	defer p.release(sc)
	if err := p.prepare(sc, doc, nil); err != nil {
		return false, err
	}
	_, v, err := locate(doc, off)
	if err != nil {
		return false, err
	}
	// The spans are disjoint and in document order: the only one that can hold v is the last
	// that starts at or before it.
	k, found := slices.BinarySearchFunc(sc.spans, v, func(sp span, off int) int { return sp.start - off })
	if found {
		return true, nil
	}
	return k > 0 && v < sc.spans[k-1].end, nil
}

// locate walks the valid document doc to offset off, where a value or a member name must start.
// It returns the path of that value or member, as selector steps, and the offset of the value
// (for a member name, of the member's value).
func locate(doc []byte, off int) ([]step, int, error) {
	var path []step
	i := skipWS(doc, 0)
	for i <= off {
		// i is at the first byte of a value.
		if i == off {
			return path, i, nil
		}
		var err error
		if c := doc[i]; c == '{' || c == '[' {
			j := skipWS(doc, i+1)
			if doc[j] != c+2 {
				kind := stepIndex
				if c == '{' {
					kind = stepMember
				}
				path = append(path, step{kind: kind})
				var atName bool
				if i, atName = enter(doc, path, j, off); atName {
					return path, i, nil
				}
				continue
			}
			i = j + 1
		} else if i, err = scanScalar(doc, i); err != nil {
			return nil, 0, err
		}
		// After a value: close containers until one has another element.
		for len(path) > 0 {
			if i = skipWS(doc, i); doc[i] == ',' {
				path[len(path)-1].index++
				var atName bool
				if i, atName = enter(doc, path, skipWS(doc, i+1), off); atName {
					return path, i, nil
				}
				break
			}
			path = path[:len(path)-1]
			i++
		}
		if len(path) == 0 {
			break
		}
	}
	return nil, 0, fmt.Errorf("offset %d: %w", off, ErrNotAValue)
}

// enter starts the element at doc[i] of the container whose step ends path, and returns the
// offset of the element's value. For an object, it first reads the member name into that step,
// and reports whether the name starts at off.
func enter(doc []byte, path []step, i, off int) (int, bool) {
	last := &path[len(path)-1]
	if last.kind != stepMember {
		return i, false
	}
	end, esc := stringEnd(doc, i)
	if esc {
		last.name = string(unescape(nil, doc[i+1:end-1]))
	} else {
		last.name = string(doc[i+1 : end-1])
	}
	return skipWS(doc, skipWS(doc, end)+1), i == off
}
