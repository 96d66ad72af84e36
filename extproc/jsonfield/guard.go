package jsonfield

import (
	"cmp"
	"fmt"
	"slices"
)

// Outside is a string of a document that is not inside any selected value: a member name or a
// string value. [Plan.RewriteChecked] and [Plan.Inspect] pass one to their check function for each
// such string, so that a policy can refuse a body that carries a sensitive member the plan does
// not cover, or something that looks like a ciphertext where none belongs.
type Outside struct {
	// Offset is the offset in the document of the string's opening quote.
	Offset int

	// Name is true for a member name, false for a string value.
	Name bool

	// Covered, for a member name, reports that the member's value is itself a selected value (the
	// key "ssn" of {"ssn":"x"} under $.ssn). It is false for string values.
	Covered bool

	// Text is the decoded string: escapes decoded, unpaired surrogate escapes turned into U+FFFD,
	// as member names are decoded for matching; not case-folded (see [Fold]). It aliases the
	// document or the plan's scratch memory: it must not be modified, and it is valid only
	// during the call.
	Text []byte
}

// RewriteChecked is [Plan.Rewrite] with a guard pass: once the whole document is validated and
// the selected values are known, and before fn is first called, it calls check (when not nil)
// for every member name and every string value outside the selected values, in document order.
// Strings inside selected values are never passed to check: they are transformed whole. The
// *Outside and its Text are valid only during the call.
//
// An error from check stops the pass; RewriteChecked returns it wrapped (errors.Is and errors.As
// see it) in "check member name at offset N: ..." or "check string value at offset N: ...",
// never quoting the string, and as on every error, fn is not called, dst is returned unchanged
// and the count is 0. A nil check makes RewriteChecked exactly [Plan.Rewrite].
func (p *Plan) RewriteChecked(dst, doc []byte, check func(o *Outside) error, fn func(f *Field, raw []byte) ([]byte, error)) ([]byte, int, error) {
	sc := p.pool.Get().(*scratch)
	defer p.release(sc)
	if err := p.prepare(sc, doc, check); err != nil {
		return dst, 0, err
	}
	return p.rewrite(sc, dst, doc, fn)
}

// Inspect validates doc like [Plan.Rewrite] and runs the guard pass of [Plan.RewriteChecked]
// without rewriting anything. It returns the number of values the plan selects, or 0 and an
// error: a [*SyntaxError] for an invalid document (check is then never called), or check's
// error, wrapped. A plan without fields (NewPlan(nil, opts)) passes every string of the document
// to check; a nil check makes Inspect only validate and count.
func (p *Plan) Inspect(doc []byte, check func(o *Outside) error) (int, error) {
	sc := p.pool.Get().(*scratch)
	defer p.release(sc)
	if err := p.prepare(sc, doc, check); err != nil {
		return 0, err
	}
	return len(sc.spans), nil
}

// prepare validates doc, records the values the plan selects in sc.spans and, when check is not
// nil, runs the guard pass.
func (p *Plan) prepare(sc *scratch, doc []byte, check func(*Outside) error) error {
	return p.prepareRec(sc, doc, check, p.maxRecorded)
}

// prepareRec is prepare recording at most maxRec strings at a time for the guard pass.
func (p *Plan) prepareRec(sc *scratch, doc []byte, check func(*Outside) error, maxRec int) error {
	s := scanner{scratch: sc, plan: p, doc: doc, maxDepth: p.maxDepth}
	if check != nil {
		sc.rec.reset(maxRec)
		s.rec = &sc.rec
	}
	if err := s.walk(); err != nil {
		return err
	}
	if check == nil {
		return nil
	}
	return s.guard(check)
}

// maxRecorded bounds the strings recorded at a time for the guard pass (24 bytes each), so that
// the scratch of a plan stays small; the guard pass finds the strings beyond it by scanning.
const maxRecorded = maxRetained

// recorder keeps the strings that the walk passes outside the selected values, in document
// order, for the guard pass: recording them while validating costs much less than finding them
// again. It keeps at most max of them; rest is the offset of the first string it had no room
// for, or -1.
type recorder struct {
	strs []str
	max  int
	rest int
}

// str is a recorded string: doc[start:end] including its quotes.
type str struct {
	start, end int
	flags      uint8
}

const (
	strEscaped uint8 = 1 << iota // has escape sequences
	strName                      // is a member name
	strCovered                   // is a member name whose value is selected
)

func strFlags(esc, name, covered bool) uint8 {
	var f uint8
	if esc {
		f |= strEscaped
	}
	if name {
		f |= strName
	}
	if covered {
		f |= strCovered
	}
	return f
}

// reset empties the recorder, which then keeps up to n strings (at least one, so that the
// guard pass progresses).
func (r *recorder) reset(n int) {
	r.strs, r.max, r.rest = r.strs[:0], max(n, 1), -1
}

// add records doc[start:end]. The capacity of strs grows past max by at most append's growth
// factor.
func (r *recorder) add(start, end int, flags uint8) {
	if len(r.strs) < r.max {
		r.strs = append(r.strs, str{start, end, flags})
	} else if r.rest < 0 {
		r.rest = start
	}
}

// guard calls check for each string of the validated document outside the spans: first those
// the walk recorded, then, in batches, those it had no room for.
func (sc *scanner) guard(check func(*Outside) error) error {
	for {
		if err := sc.report(check); err != nil {
			return err
		}
		from := sc.rec.rest
		if from < 0 {
			return nil
		}
		sc.rec.reset(sc.rec.max)
		sc.scanStrings(from)
	}
}

// report calls check for each recorded string.
func (sc *scanner) report(check func(*Outside) error) error {
	o := &sc.outside
	doc := sc.doc
	defer func() { o.Text = nil }() // no reference to the document once the pass is over
	for _, s := range sc.rec.strs {
		o.Offset, o.Name, o.Covered = sc.at+s.start, s.flags&strName != 0, s.flags&strCovered != 0
		if s.flags&strEscaped == 0 {
			o.Text = doc[s.start+1 : s.end-1 : s.end-1]
		} else {
			sc.key = unescape(sc.key[:0], doc[s.start+1:s.end-1])
			o.Text = sc.key[:len(sc.key):len(sc.key)]
		}
		if err := check(o); err != nil {
			return checkErr(o.Name, sc.line, o.Offset, err)
		}
	}
	return nil
}

// checkErr wraps an error of the check for the string at offset at (on the 1-based line, or 0
// when the document is not NDJSON).
func checkErr(name bool, line, at int, err error) error {
	what := "string value"
	if name {
		what = "member name"
	}
	if line > 0 {
		return fmt.Errorf("check %s on line %d at offset %d: %w", what, line, at, err)
	}
	return fmt.Errorf("check %s at offset %d: %w", what, at, err)
}

// scanStrings records the strings of the validated document outside the spans from offset from,
// which is not inside a string, as the walk would have, until the recorder is full. Between two
// spans every byte is outside any string or in a string that starts there, so each '"' met while
// not in a string opens one; a string followed by ':' is a member name.
func (sc *scanner) scanStrings(from int) {
	doc := sc.doc
	k, _ := slices.BinarySearchFunc(sc.spans, from, func(sp span, off int) int { return cmp.Compare(sp.start, off) })
	for ; k <= len(sc.spans); k++ {
		to, next := len(doc), len(doc)
		if k < len(sc.spans) {
			to, next = sc.spans[k].start, sc.spans[k].end
		}
		for i := from; ; {
			for i < to && doc[i] != '"' {
				i++
			}
			if i >= to {
				break
			}
			end, esc := stringEnd(doc, i)
			j := skipWS(doc, end)
			name := j < len(doc) && doc[j] == ':'
			covered := name && k < len(sc.spans) && skipWS(doc, j+1) == to
			if sc.rec.add(i, end, strFlags(esc, name, covered)); sc.rec.rest >= 0 {
				return
			}
			i = end
		}
		from = next
	}
}
