package jsonfield

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestRewrite(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		sels []string
		want string // output with wrap as the transform
		n    int
		opts Options
	}{
		{"nested objects", `{"a":{"b":{"c":1,"d":2}},"c":3}`, []string{"$.a.b.c"},
			`{"a":{"b":{"c":"<1>","d":2}},"c":3}`, 1, Options{}},
		{"arrays of objects", `{"items":[{"ssn":"1"},{"x":2},{"ssn":"3","y":[{"ssn":4}]}]}`, []string{"$.items[*].ssn"},
			`{"items":[{"ssn":"<\"1\">"},{"x":2},{"ssn":"<\"3\">","y":[{"ssn":4}]}]}`, 2, Options{}},
		{"wildcard on array", `[1,"two",[3]]`, []string{"$[*]"},
			`["<1>","<\"two\">","<[3]>"]`, 3, Options{}},
		{"wildcard on object", `{"m":{"a":1,"b":[2]},"z":0}`, []string{"$.m[*]"},
			`{"m":{"a":"<1>","b":"<[2]>"},"z":0}`, 2, Options{}},
		{"wildcard then member", `{"m":{"a":{"k":1},"b":[{"k":2}],"c":{"k":3}}}`, []string{"$.m[*].k"},
			`{"m":{"a":{"k":"<1>"},"b":[{"k":2}],"c":{"k":"<3>"}}}`, 2, Options{}},
		{"index", `{"a":[10,20,30]}`, []string{"$.a[1]"},
			`{"a":[10,"<20>",30]}`, 1, Options{}},
		{"index zero and last", `[[1,2],[3,4]]`, []string{"$[0][0]", "$[1][1]"},
			`[["<1>",2],[3,"<4>"]]`, 2, Options{}},
		{"index out of range", `{"a":[10,20,30]}`, []string{"$.a[3]"},
			`{"a":[10,20,30]}`, 0, Options{}},
		{"index on object", `{"a":{"0":1}}`, []string{"$.a[0]"},
			`{"a":{"0":1}}`, 0, Options{}},
		{"member on array", `{"a":[{"b":1}]}`, []string{"$.a.b"},
			`{"a":[{"b":1}]}`, 0, Options{}},
		{"member on scalar", `{"a":"b"}`, []string{"$.a.b", "$.a[0]", "$.a[*]"},
			`{"a":"b"}`, 0, Options{}},
		{"descent", `{"ssn":1,"x":{"ssn":2,"y":[{"ssn":3},[{"ssn":4}]]},"z":"ssn"}`, []string{"$..ssn"},
			`{"ssn":"<1>","x":{"ssn":"<2>","y":[{"ssn":"<3>"},[{"ssn":"<4>"}]]},"z":"ssn"}`, 4, Options{}},
		{"descent below a member", `{"ssn":1,"p":{"q":{"ssn":2}}}`, []string{"$.p..ssn"},
			`{"ssn":1,"p":{"q":{"ssn":"<2>"}}}`, 1, Options{}},
		{"descent then member", `{"a":{"b":1},"x":[{"a":{"b":2,"c":3}}],"b":4}`, []string{"$..a.b"},
			`{"a":{"b":"<1>"},"x":[{"a":{"b":"<2>","c":3}}],"b":4}`, 2, Options{}},
		{"two descents", `{"a":{"x":{"b":1}},"b":2,"c":{"a":[{"b":3}]}}`, []string{"$..a..b"},
			`{"a":{"x":{"b":"<1>"}},"b":2,"c":{"a":[{"b":"<3>"}]}}`, 2, Options{}},
		{"outermost wins", `{"ssn":{"ssn":1},"a":[{"ssn":[{"ssn":2}]}]}`, []string{"$..ssn"},
			`{"ssn":"<{\"ssn\":1}>","a":[{"ssn":"<[{\"ssn\":2}]>"}]}`, 2, Options{}},
		{"selected value contains other selected names", `{"a":{"b":1},"b":2}`, []string{"$.a", "$..b"},
			`{"a":"<{\"b\":1}>","b":"<2>"}`, 2, Options{}},
		{"duplicate keys", `{"a":1,"b":0,"a":{"a":2}}`, []string{"$.a"},
			`{"a":"<1>","b":0,"a":"<{\"a\":2}>"}`, 2, Options{}},
		{"escaped key", `{"s\u0073n":"x","ss\u006E":"y","\u0073\u0073\u006e":"z"}`, []string{"$.ssn"},
			`{"s\u0073n":"<\"x\">","ss\u006E":"<\"y\">","\u0073\u0073\u006e":"<\"z\">"}`, 3, Options{}},
		{"escaped key in descent", `[{"x":{"s\u0073n":1}}]`, []string{"$..ssn"},
			`[{"x":{"s\u0073n":"<1>"}}]`, 1, Options{}},
		{"non-ASCII key raw and escaped", `{"é":1,"\u00e9":2,"\u00c9":3}`, []string{"$['é']"},
			`{"é":"<1>","\u00e9":"<2>","\u00c9":3}`, 2, Options{}},
		{"surrogate pair key", `{"\ud83d\ude00":1,"😀":2}`, []string{`$['\ud83d\ude00']`},
			`{"\ud83d\ude00":"<1>","😀":"<2>"}`, 2, Options{}},
		{"unpaired surrogate key", `{"\ud800":1,"\ud800\u0041":2}`, []string{"$['\uFFFD']", "$['\uFFFDA']"},
			`{"\ud800":"<1>","\ud800\u0041":"<2>"}`, 2, Options{}},
		{"other escapes in keys", `{"a\/b":1,"a\"b":2,"a\\b":3,"t\tn\n":4,"a/b":5}`,
			[]string{"$['a/b']", `$['a"b']`, `$['a\\b']`, `$['t\tn\n']`},
			`{"a\/b":"<1>","a\"b":"<2>","a\\b":"<3>","t\tn\n":"<4>","a/b":"<5>"}`, 5, Options{}},
		{"key that only looks similar", `{"ssn ":1,"SSN":2,"s\u0073":3,"ssnx":4}`, []string{"$.ssn"},
			`{"ssn ":1,"SSN":2,"s\u0073":3,"ssnx":4}`, 0, Options{}},
		{"fold case", `{"SSN":1,"Ssn":2,"s\u0053n":3,"ssn":4,"ſsn":5,"ssnx":6}`, []string{"$.ssn"},
			`{"SSN":"<1>","Ssn":"<2>","s\u0053n":"<3>","ssn":"<4>","ſsn":"<5>","ssnx":6}`, 5, Options{FoldCase: true}},
		{"fold case selector", `{"KELVIN":1,"kelvin":2}`, []string{"$['\u212aelvin']"},
			`{"KELVIN":"<1>","kelvin":"<2>"}`, 2, Options{FoldCase: true}},
		{"whitespace preserved", " {\n\t\"a\" : 1 ,\r\n \"b\":[ 1 ,\t2 ] ,\"c\" :\n{ \"d\" : [ ] } } \n",
			[]string{"$.b[1]", "$.c"},
			" {\n\t\"a\" : 1 ,\r\n \"b\":[ 1 ,\t\"<2>\" ] ,\"c\" :\n\"<{ \\\"d\\\" : [ ] }>\" } \n", 2, Options{}},
		{"every type", `{"s":"x\n\u00e9\"","n":-0.5e+10,"i":0,"E":1E-2,"t":true,"f":false,"z":null,"o":{},"a":[],"O":{"k":[1,{}]}}`,
			[]string{"$.s", "$.n", "$.i", "$.E", "$.t", "$.f", "$.z", "$.o", "$.a", "$.O"},
			`{"s":"<\"x\\n\\u00e9\\\"\">","n":"<-0.5e+10>","i":"<0>","E":"<1E-2>","t":"<true>","f":"<false>","z":"<null>","o":"<{}>","a":"<[]>","O":"<{\"k\":[1,{}]}>"}`,
			10, Options{}},
		{"absent fields", `{"a":1,"b":[{"c":2}]}`, []string{"$.x", "$.b[*].x", "$..y", "$.b[1]"},
			`{"a":1,"b":[{"c":2}]}`, 0, Options{}},
		{"no fields", `{"a":1}`, nil, `{"a":1}`, 0, Options{}},
		{"root", " [1, 2]\t", []string{"$"}, " \"<[1, 2]>\"\t", 1, Options{}},
		{"root wins over members", `{"a":1}`, []string{"$.a", "$"}, `"<{\"a\":1}>"`, 1, Options{}},
		{"scalar document", `"ssn"`, []string{"$.ssn", "$..ssn"}, `"ssn"`, 0, Options{}},
		{"empty containers on the path", `{"a":{},"b":[],"c":{"d":[]}}`, []string{"$.a.x", "$.b[0]", "$.c.d[*]"},
			`{"a":{},"b":[],"c":{"d":[]}}`, 0, Options{}},
		{"values after a selected container", `{"a":[1,{"b":2}],"c":3,"d":{"e":[4]}}`, []string{"$.a", "$.c", "$.d.e[0]"},
			`{"a":"<[1,{\"b\":2}]>","c":"<3>","d":{"e":["<4>"]}}`, 3, Options{}},
		{"long strings around", `{"p":"` + strings.Repeat("x\u00e9y", 50) + `","a":"` + strings.Repeat("0123456789", 20) + `"}`,
			[]string{"$.a"}, `{"p":"` + strings.Repeat("x\u00e9y", 50) + `","a":"<\"` + strings.Repeat("0123456789", 20) + `\">"}`, 1, Options{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := fields(tt.sels...)
			plan, err := NewPlan(fs, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			got, n, err := plan.Rewrite(nil, []byte(tt.doc), wrap)
			if err != nil {
				t.Fatalf("Rewrite: %v", err)
			}
			if string(got) != tt.want || n != tt.n {
				t.Errorf("Rewrite =\n %s (%d values)\nwant\n %s (%d values)", got, n, tt.want, tt.n)
			}
			if tt.opts == (Options{}) {
				got2, n2, err := Rewrite([]byte("prefix:"), []byte(tt.doc), fs, wrap)
				if err != nil || string(got2) != "prefix:"+tt.want || n2 != tt.n {
					t.Errorf("package-level Rewrite = %s, %d, %v; want the plan's result after dst", got2, n2, err)
				}
			}
			same, n3, err := plan.Rewrite(nil, []byte(tt.doc), identity)
			if err != nil || string(same) != tt.doc || n3 != tt.n {
				t.Errorf("identity rewrite = %q, %d, %v", same, n3, err)
			}
		})
	}
}

// TestRewriteFieldPassed checks which Field the transform receives: the first that selects the
// value, as a pointer into the caller's slice for the package-level Rewrite.
func TestRewriteFieldPassed(t *testing.T) {
	fs := []Field{
		{Selector: MustParseSelector("$.b"), Label: "first-b"},
		{Selector: MustParseSelector("$..b"), Label: "any-b"},
		{Selector: MustParseSelector("$.a[*]"), Label: "a-elem"},
		{Selector: MustParseSelector("$.a[1]"), Label: "a-1"},
	}
	var got []string
	_, n, err := Rewrite(nil, []byte(`{"a":[0,1],"b":2,"c":{"b":3}}`), fs, func(f *Field, raw []byte) ([]byte, error) {
		if idx := slices.IndexFunc(fs, func(g Field) bool { return g.Label == f.Label }); idx < 0 || f != &fs[idx] {
			t.Errorf("field pointer %p is not into the caller's slice", f)
		}
		got = append(got, f.Label+"="+string(raw))
		return raw, nil
	})
	if err != nil || n != 4 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	want := "a-elem=0 a-elem=1 first-b=2 any-b=3"
	if strings.Join(got, " ") != want {
		t.Errorf("transform calls %q, want %q (document order, first field wins)", strings.Join(got, " "), want)
	}
}

func TestRewriteTransformError(t *testing.T) {
	errBoom := errors.New("boom")
	fs := fields("$.a", "$.b")
	dst := append(make([]byte, 0, 64), "keep"...)
	calls := 0
	out, n, err := Rewrite(dst, []byte(`{"a":1,"b":2}`), fs, func(f *Field, raw []byte) ([]byte, error) {
		if calls++; calls == 2 {
			return nil, fmt.Errorf("encrypt: %w", errBoom)
		}
		return []byte(`"x"`), nil
	})
	if !errors.Is(err, errBoom) || errors.Is(err, ErrInvalidJSON) {
		t.Fatalf("err = %v, want one wrapping the transform's error", err)
	}
	if string(out) != "keep" || n != 0 {
		t.Errorf("on error got %q, %d; want dst unchanged and 0", out, n)
	}
	if !strings.Contains(err.Error(), "$.b") {
		t.Errorf("error %q does not name the selector", err)
	}
}

func TestRewriteInvalidNeverCallsTransform(t *testing.T) {
	for _, doc := range []string{`{"a":1,"b":}`, `{"a":"x"} {}`, `{"a":1,"b":"` + "\xff" + `"}`, `[{"a":1},`} {
		called := false
		out, n, err := Rewrite([]byte("keep"), []byte(doc), fields("$.a", "$[*].a"), func(*Field, []byte) ([]byte, error) {
			called = true
			return nil, nil
		})
		var se *SyntaxError
		if !errors.As(err, &se) || !errors.Is(err, ErrInvalidJSON) {
			t.Errorf("%q: err = %v, want a *SyntaxError", doc, err)
		}
		if called || string(out) != "keep" || n != 0 {
			t.Errorf("%q: transform called=%v, out=%q, n=%d", doc, called, out, n)
		}
	}
}

func TestNewPlanErrors(t *testing.T) {
	if _, err := NewPlan([]Field{{Label: "x"}}, Options{}); !errors.Is(err, ErrInvalidSelector) {
		t.Errorf("nil selector: err = %v", err)
	}
	if _, err := NewPlan(nil, Options{MaxDepth: -1}); !errors.Is(err, ErrInvalidSelector) {
		t.Errorf("negative depth: err = %v", err)
	}
	if _, _, err := Rewrite(nil, []byte(`1`), []Field{{}}, identity); !errors.Is(err, ErrInvalidSelector) {
		t.Errorf("Rewrite with a nil selector: err = %v", err)
	}
}

func TestNewPlanCopiesFields(t *testing.T) {
	fs := fields("$.a")
	plan, err := NewPlan(fs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fs[0].Label = "changed"
	if plan.Fields()[0].Label != "a" {
		t.Errorf("plan shares the caller's slice")
	}
}

func TestPlanRewriteNoAllocs(t *testing.T) {
	doc, fs := benchDoc(64<<10, 10, "middle")
	plan, err := NewPlan(append(fs, fields("$..zip", "$.rec000001.tags[*]", "$['rec000002'].geo[1]")...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	repl := []byte(`"x"`)
	fn := func(*Field, []byte) ([]byte, error) { return repl, nil }
	dst := make([]byte, 0, 2*len(doc))
	plan.Rewrite(dst, doc, fn) // warm the pool
	// Under the race detector sync.Pool drops items at random, so the scratch (a handful of
	// slices) is sometimes rebuilt; otherwise nothing may be allocated.
	limit := 0.0
	if raceEnabled {
		limit = 8
	}
	if allocs := testing.AllocsPerRun(20, func() {
		if _, _, err := plan.Rewrite(dst, doc, fn); err != nil {
			t.Fatal(err)
		}
	}); allocs > limit {
		t.Errorf("Plan.Rewrite allocates %v times per call, want at most %v", allocs, limit)
	}
	if allocs := testing.AllocsPerRun(20, func() {
		if err := Validate(doc); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("Validate allocates %v times per call, want 0", allocs)
	}
}

func TestPlanConcurrent(t *testing.T) {
	doc, fs := benchDoc(16<<10, 10, "end")
	plan, err := NewPlan(append(fs, fields("$..city")...), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want, wantN, err := plan.Rewrite(nil, doc, wrap)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for range 20 {
				got, n, err := plan.Rewrite(nil, doc, wrap)
				if err != nil || n != wantN || !bytes.Equal(got, want) {
					t.Errorf("concurrent Rewrite differs: n=%d err=%v", n, err)
					return
				}
				if err := plan.Validate(doc[:len(doc)-1]); err == nil {
					t.Errorf("truncated document validated")
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestVisit(t *testing.T) {
	fs := fields("$.id", "$..ssn", "$.list[1]")
	fs[2].Label = "list1"
	plan, err := NewPlan(fs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	doc := []byte(`{"list":[1,{"ssn":2}],"id":"k-1","x":{"ssn":[3]}}`)
	var got []string
	n, err := plan.Visit(doc, func(f *Field, raw []byte) error {
		got = append(got, f.Label+"="+string(raw))
		return nil
	})
	want := `list1={"ssn":2} id="k-1" ssn=[3]`
	if err != nil || n != 3 || strings.Join(got, " ") != want {
		t.Errorf("Visit = %d, %v, %q; want 3, nil, %q", n, err, strings.Join(got, " "), want)
	}
	_, rn, _ := plan.Rewrite(nil, doc, identity)
	if rn != n {
		t.Errorf("Visit selected %d values, Rewrite %d", n, rn)
	}

	errStop := errors.New("stop")
	calls := 0
	if n, err := plan.Visit(doc, func(*Field, []byte) error { calls++; return errStop }); !errors.Is(err, errStop) || n != 0 || calls != 1 {
		t.Errorf("Visit with a failing fn = %d, %v after %d calls", n, err, calls)
	}
	calls = 0
	if _, err := plan.Visit([]byte(`{"id":1,}`), func(*Field, []byte) error { calls++; return nil }); !errors.Is(err, ErrInvalidJSON) || calls != 0 {
		t.Errorf("Visit of an invalid document: err %v after %d calls", err, calls)
	}
}

func TestFold(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"ssn", "SSN"},
		{"SsN", "SSN"},
		{"ſsn", "SSN"},            // U+017F LATIN SMALL LETTER LONG S folds with s
		{"\u212aelvin", "KELVIN"}, // U+212A KELVIN SIGN folds with k
		{"été", "ÉTÉ"},
		{"a-b_9 ", "A-B_9 "},
		{"\xff", "\uFFFD"},
	}
	for _, tt := range tests {
		dst := []byte("x:")
		if got := string(Fold(dst, []byte(tt.in))); got != "x:"+tt.want {
			t.Errorf("Fold(%q) = %q, want %q after dst", tt.in, got, tt.want)
		}
	}
}

// TestUnescape checks the decoding of string bodies, shared by member-name matching and
// Outside.Text, against encoding/json.
func TestUnescape(t *testing.T) {
	for _, body := range []string{
		``, `abc`, `\"`, `\\`, `\/`, `\b\f\n\r\t`, `a\nb`, `\u0000`, `\u0041\u00e9\u00C9\u07ff`,
		`\u0800\uabcd\uABCD\uFfFf`, `\u0123\u4567\u89aB\ucDeF`, `\ud83d\ude00`, `x\uD83D\uDE00y`,
		`\ud800`, `\udc00`, `\ud800\u0041`, `\ud800\ud800\udc00`, `\udbff\udfff`, `\ud800\\`,
		`é\u00e9😀`, strings.Repeat(`ab\u00e9`, 40),
	} {
		var want string
		if err := json.Unmarshal([]byte(`"`+body+`"`), &want); err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		if got := unescape([]byte("x"), []byte(body)); string(got) != "x"+want {
			t.Errorf("unescape(%q) = %q, want %q after dst", body, got, want)
		}
	}
}

// FuzzFoldASCII compares the ASCII fast path of member-name folding with Fold.
func FuzzFoldASCII(f *testing.F) {
	for _, s := range []string{"", "ssn", "SsN", "ſsn", "a-b_9 ", "kelvin", "\x00\x7f{}", "\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		got, ok := foldASCII([]byte("junk"), s)
		ascii := true
		for _, c := range s {
			ascii = ascii && c < 0x80
		}
		if ok != ascii {
			t.Fatalf("foldASCII(%q) ok = %v, want %v", s, ok, ascii)
		}
		if ok && string(got) != string(Fold(nil, s)) {
			t.Fatalf("foldASCII(%q) = %q, Fold gives %q", s, got, Fold(nil, s))
		}
	})
}
