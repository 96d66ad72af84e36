package jsonfield

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
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
