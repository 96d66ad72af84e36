package jsonfield

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{
		"$", "$.a", "$.a.b", "$.a[*].b", "$.a[0]", "$..b", "$['a b']", `$["x\"y"]`, `$..['\u00e9']`,
		"$[*]", "$[12][3]", "$.a-b_c9", "$.", "$[", "$[-1]", "$[01]", "$..[*]", `$['\ud800']`, "$.*",
		`$['a\'b\\c']`, "$['\x01']", `$['\u0001']`, "$['é']",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := ParseSelector(s)
		if err != nil {
			var se *SelectorError
			if !errors.As(err, &se) || !errors.Is(err, ErrInvalidSelector) {
				t.Fatalf("error %v is not a *SelectorError wrapping ErrInvalidSelector", err)
			}
			if se.Offset < 0 || se.Offset > len(s) {
				t.Fatalf("offset %d outside selector of length %d", se.Offset, len(s))
			}
			return
		}
		canon := sel.String()
		again, err := ParseSelector(canon)
		if err != nil {
			t.Fatalf("String() %q of %q does not parse: %v", canon, s, err)
		}
		if !again.Equal(sel) || again.String() != canon {
			t.Fatalf("round trip of %q: %q became %q", s, canon, again.String())
		}
		_ = sel.DefaultLabel()
	})
}

var fuzzSelectors = []string{"$.a", "$..b", "$.c[*]", "$[1]", "$.d[0].e", "$..ssn", "$['k y']"}

func FuzzRewrite(f *testing.F) {
	for _, doc := range []string{
		`{"a":1,"b":[{"b":2}],"c":{"x":true}}`, `[1,[2,3],{"a":null}]`, `"str"`, `0`, `-1.5e+3`,
		`{"ssn":"123","s\u0073n":{"ssn":1}}`, `{"a":{"a":{"a":{}}}}`, ` { "k y" : [ ] } `,
		`{"d":[{"e":"\u00e9\ud83d\ude00"}]}`, `{"a":1}x`, `{"a":01}`, "\"\xff\"", `[1,]`, `{"a" 1}`,
		`[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]`, `"\u12"`, `{"b":tru}`, `{}`, `[]`, ``, ` `,
	} {
		f.Add([]byte(doc), "")
	}
	f.Add([]byte(`{"x":{"y":1}}`), "$.x.y\n$.x")
	f.Add([]byte(`[[1,2],[3]]`), "$[*][0]")
	f.Fuzz(func(t *testing.T, doc []byte, selText string) {
		sels := fuzzSelectors
		if selText != "" {
			sels = strings.Split(selText, "\n")
		}
		var fs []Field
		for _, s := range sels {
			if sel, err := ParseSelector(s); err == nil {
				fs = append(fs, Field{Selector: sel})
			}
		}
		plan, err := NewPlan(fs, Options{MaxDepth: 64})
		if err != nil {
			t.Fatal(err)
		}
		want := wantValid(doc, 64)
		out, n, err := plan.Rewrite(nil, doc, identity)
		if (err == nil) != want {
			t.Fatalf("Rewrite error %v, want valid=%v for %q", err, want, doc)
		}
		if verr := plan.Validate(doc); (verr == nil) != want {
			t.Fatalf("Validate error %v, want valid=%v", verr, want)
		}
		folded, perr := NewPlan(fs, Options{MaxDepth: 64, FoldCase: true})
		if perr != nil {
			t.Fatal(perr)
		}
		if fout, fn, ferr := folded.Rewrite(nil, doc, identity); (ferr == nil) != want || (ferr == nil && (!bytes.Equal(fout, doc) || fn < n)) {
			t.Fatalf("FoldCase rewrite: n=%d (exact %d), err=%v", fn, n, ferr)
		}
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || !errors.Is(err, ErrInvalidJSON) || se.Offset < 0 || se.Offset > len(doc) {
				t.Fatalf("bad error %#v", err)
			}
			return
		}
		if vn, verr := plan.Visit(doc, func(*Field, []byte) error { return nil }); verr != nil || vn != n {
			t.Fatalf("Visit = %d, %v; Rewrite selected %d", vn, verr, n)
		}
		if !bytes.Equal(out, doc) {
			t.Fatalf("identity rewrite changed the document:\n in %q\nout %q", doc, out)
		}
		wrapped, n2, err := plan.Rewrite(nil, doc, wrap)
		if err != nil || n2 != n {
			t.Fatalf("wrap: n=%d (want %d), err=%v", n2, n, err)
		}
		if !json.Valid(wrapped) {
			t.Fatalf("wrapped output is not valid JSON: %q", wrapped)
		}
		back, n3, err := plan.Rewrite(nil, wrapped, unwrap)
		if err != nil || n3 != n {
			t.Fatalf("unwrap: n=%d (want %d), err=%v", n3, n, err)
		}
		if !bytes.Equal(back, doc) {
			t.Fatalf("unwrap did not restore the document:\n in %q\nout %q", doc, back)
		}
	})
}

// fuzzFields parses the selectors of selText, one a line (fuzzSelectors when empty), skipping
// invalid ones.
func fuzzFields(selText string) ([]Field, []*Selector) {
	sels := fuzzSelectors
	if selText != "" {
		sels = strings.Split(selText, "\n")
	}
	var fs []Field
	var parsed []*Selector
	for _, s := range sels {
		if sel, err := ParseSelector(s); err == nil {
			fs = append(fs, Field{Selector: sel})
			parsed = append(parsed, sel)
		}
	}
	return fs, parsed
}

var fuzzGuardDocs = []string{
	`{"a":"x","b":[{"b":"rkms:2"}],"c":{"x":true}}`, `["a",["b","c"],{"a":null}]`, `"str"`, `0`,
	`{"ssn":"123","s\u0073n":{"ssn":"1"},"x":"\ud800\"\\"}`, `{"a":{"a":{"a":{}}}}`, ` { "k y" : [ "" ] } `,
	`{"d":[{"e":"\u00e9\ud83d\ude00"}]}`, `{"a":1}x`, `{"a":"01}`, "[\"\xff\"]", `["a",]`, `{"a" "1"}`,
	`[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]`, `"\u12"`, `{"b":tru}`, `{}`, `[]`, ``, ` `, `{"":""}`,
}

func FuzzRewriteChecked(f *testing.F) {
	for _, doc := range fuzzGuardDocs {
		f.Add([]byte(doc), "", false)
	}
	f.Add([]byte(`{"SSN":"x","Ssn":{"k":"v"},"y":"z"}`), "$.ssn", true)
	f.Add([]byte(`{"x":{"y":"1"},"z":["2"]}`), "$.x.y\n$.x", false)
	f.Fuzz(func(t *testing.T, doc []byte, selText string, fold bool) {
		fs, sels := fuzzFields(selText)
		want := wantValid(doc, 64)
		var ref []string
		if want {
			items, err := refItems(doc)
			if err != nil {
				t.Fatalf("reference tokenizer: %v", err)
			}
			ref = refOutside(items, sels, fold)
		}
		errStop := errors.New("stop")
		for _, p := range guardPlans(t, fs, Options{MaxDepth: 64, FoldCase: fold}) {
			var got []string
			transformed := 0
			fn := func(_ *Field, raw []byte) ([]byte, error) { transformed++; return raw, nil }
			out, n, err := p.RewriteChecked(nil, doc, func(o *Outside) error {
				if o.Offset < 0 || o.Offset >= len(doc) || doc[o.Offset] != '"' || transformed > 0 {
					t.Fatalf("check called with offset %d (transform calls so far: %d)", o.Offset, transformed)
				}
				got = append(got, outsideString(o))
				return nil
			}, fn)
			if !want {
				if !errors.Is(err, ErrInvalidJSON) || len(got) > 0 || transformed > 0 || out != nil || n != 0 {
					t.Fatalf("invalid document: err %v, %d checks, %d transforms", err, len(got), transformed)
				}
				if _, err := p.Inspect(doc, func(*Outside) error { t.Fatal("check called"); return nil }); !errors.Is(err, ErrInvalidJSON) {
					t.Fatalf("Inspect of an invalid document: %v", err)
				}
				continue
			}
			_, wantN, _ := p.Rewrite(nil, doc, identity)
			if err != nil || n != wantN || !bytes.Equal(out, doc) {
				t.Fatalf("RewriteChecked = %q, %d, %v; want the document and %d", out, n, err, wantN)
			}
			if !slices.Equal(got, ref) {
				t.Fatalf("maxRecorded %d: check saw\n %q\nreference\n %q", p.maxRecorded, got, ref)
			}
			if len(got) == 0 {
				continue
			}
			stop := len(doc) % len(got)
			calls := 0
			transformed = 0
			out, n, err = p.RewriteChecked([]byte("keep"), doc, func(*Outside) error {
				if calls++; calls > stop {
					return errStop
				}
				return nil
			}, fn)
			if !errors.Is(err, errStop) || string(out) != "keep" || n != 0 || transformed != 0 || calls != stop+1 {
				t.Fatalf("stopping check: %q, %d, %v after %d calls and %d transforms", out, n, err, calls, transformed)
			}
		}
	})
}

func FuzzPathAt(f *testing.F) {
	for _, doc := range fuzzGuardDocs {
		f.Add([]byte(doc), "")
	}
	f.Add([]byte(`{"a b":[0,{"it's":"\u00e9"}],"":{"":[]}}`), "$['a b'][*]\n$..['']")
	f.Fuzz(func(t *testing.T, doc []byte, selText string) {
		if !json.Valid(doc) || !utf8.Valid(doc) {
			if _, err := PathAt(doc, 0); !errors.Is(err, ErrInvalidJSON) {
				t.Fatalf("PathAt of an invalid document: %v", err)
			}
			return
		}
		items, err := refItems(doc)
		if err != nil {
			t.Fatalf("reference tokenizer: %v", err)
		}
		fs, sels := fuzzFields(selText)
		opts := Options{MaxDepth: depth(doc) + 1}
		plan, err := NewPlan(fs, opts)
		if err != nil {
			t.Fatal(err)
		}
		starts := map[int]bool{}
		for k, it := range items {
			starts[it.off] = true
			if len(items) > 100 && k%(len(items)/50) != 0 {
				continue
			}
			path, err := PathAt(doc, it.off)
			if err != nil {
				t.Fatalf("PathAt(%d): %v", it.off, err)
			}
			sel, err := ParseSelector(path)
			if err != nil {
				t.Fatalf("PathAt(%d) = %q, which does not parse: %v", it.off, path, err)
			}
			if !stepsAre(sel.steps, it.path) {
				t.Fatalf("PathAt(%d) = %q, want the path %v", it.off, path, it.path)
			}
			v := it.off
			if it.name {
				v = items[k+1].off
			}
			p, err := NewPlan([]Field{{Selector: sel}}, opts)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(selectedSpans(t, p, doc), func(sp span) bool { return sp.start == v }) {
				t.Fatalf("PathAt(%d) = %q does not select the value at %d", it.off, path, v)
			}
			wantSel := refInside(sels, it.path, false)
			if got, err := plan.Selects(doc, it.off); err != nil || got != wantSel {
				t.Fatalf("Selects(%d) = %v, %v; want %v", it.off, got, err, wantSel)
			}
		}
		if len(doc) > 300 {
			return
		}
		for off := -1; off <= len(doc); off++ {
			if starts[off] {
				continue
			}
			if path, err := PathAt(doc, off); !errors.Is(err, ErrNotAValue) {
				t.Fatalf("PathAt(%d) = %q, %v; want an error wrapping ErrNotAValue", off, path, err)
			}
			if ok, err := plan.Selects(doc, off); ok || !errors.Is(err, ErrNotAValue) {
				t.Fatalf("Selects(%d) = %v, %v; want an error wrapping ErrNotAValue", off, ok, err)
			}
		}
	})
}

// stepsAre reports whether selector steps spell exactly the concrete path.
func stepsAre(steps []step, path []refStep) bool {
	if len(steps) != len(path) {
		return false
	}
	for i, st := range steps {
		if path[i].member != (st.kind == stepMember) || path[i].name != st.name || path[i].index != st.index {
			return false
		}
	}
	return true
}

// selectedSpans returns the outermost values p selects in the valid document doc.
func selectedSpans(t *testing.T, p *Plan, doc []byte) []span {
	sc := new(scratch)
	if err := p.prepare(sc, doc, nil); err != nil {
		t.Fatal(err)
	}
	return sc.spans
}
