package jsonfield

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
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
