package jsonfield

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// recordOutside returns a check that records what it is passed, as outsideString renders it.
func recordOutside(got *[]string) func(*Outside) error {
	return func(o *Outside) error {
		*got = append(*got, outsideString(o))
		return nil
	}
}

// withoutOffsets drops the offsets of outsideString renderings.
func withoutOffsets(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = strings.TrimLeft(s, "0123456789")
	}
	return out
}

// guardPlans returns the plan for sels and opts, and copies that record only a few strings at a
// time, so that the guard pass also finds strings by scanning.
func guardPlans(t testing.TB, fs []Field, opts Options) []*Plan {
	var plans []*Plan
	for _, max := range []int{maxRecorded, 1, 2, 3} {
		p, err := NewPlan(fs, opts)
		if err != nil {
			t.Fatal(err)
		}
		p.maxRecorded = max
		plans = append(plans, p)
	}
	return plans
}

func TestRewriteChecked(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		sels []string
		opts Options
		want []string // kind (N name, C covered name, V value) and text, in document order
	}{
		{"no fields: every string", `{"a":"x","b":[1,"y",{"c":null}],"d":true}`, nil, Options{},
			[]string{`N"a"`, `V"x"`, `N"b"`, `V"y"`, `N"c"`, `N"d"`}},
		{"selected values are not searched", `{"a":{"ssn":"rkms:x"},"b":"rkms:y"}`, []string{"$.a"}, Options{},
			[]string{`C"a"`, `N"b"`, `V"rkms:y"`}},
		{"covered and uncovered names", `{"ssn":"1","x":{"ssn":"2"},"y":[{"ssn":3}]}`, []string{"$.ssn", "$.y[*].ssn"}, Options{},
			[]string{`C"ssn"`, `N"x"`, `N"ssn"`, `V"2"`, `N"y"`, `C"ssn"`}},
		{"descent", `{"ssn":"1","x":{"ssn":"2","t":"3"},"ssn2":"4"}`, []string{"$..ssn"}, Options{},
			[]string{`C"ssn"`, `N"x"`, `C"ssn"`, `N"t"`, `V"3"`, `N"ssn2"`, `V"4"`}},
		{"selected root", `{"a":"x"}`, []string{"$"}, Options{}, nil},
		{"string document", `"rkms:abc"`, nil, Options{}, []string{`V"rkms:abc"`}},
		{"selected string document", ` "rkms:abc" `, []string{"$"}, Options{}, nil},
		{"scalar document", `12`, nil, Options{}, nil},
		{"strings between selected array elements", `["a",{"k":"v"},"b",["c"],"d"]`, []string{"$[1]", "$[3]"}, Options{},
			[]string{`V"a"`, `V"b"`, `V"d"`}},
		{"white space", " { \"k\" :\t\"v\" , \"s\" \n: [ \"w\" ] } ", []string{"$.s[0]"}, Options{},
			[]string{`N"k"`, `V"v"`, `N"s"`}},
		{"escapes decoded", `{"s\u0073n":"a\nb\"\\\/","\ud800x":"\ud83d\ude00","\u00e9":"\u00C9"}`, nil, Options{},
			[]string{`N"ssn"`, `V"a\nb\"\\/"`, "N\"\ufffdx\"", `V"😀"`, `N"é"`, `V"É"`}},
		{"escaped name covered", `{"s\u0073n":"x","ss\u006e":{"a":"b"}}`, []string{"$.ssn"}, Options{},
			[]string{`C"ssn"`, `C"ssn"`}},
		{"fold case: text not folded", `{"SSN":"x","Name":"y"}`, []string{"$.ssn"}, Options{FoldCase: true},
			[]string{`C"SSN"`, `N"Name"`, `V"y"`}},
		{"empty strings and containers", `{"":"","e":{},"f":[],"g":[""]}`, []string{"$.e"}, Options{},
			[]string{`N""`, `V""`, `C"e"`, `N"f"`, `N"g"`, `V""`}},
		{"duplicate keys", `{"a":"1","a":"2"}`, []string{"$.a"}, Options{}, []string{`C"a"`, `C"a"`}},
		{"long strings", `{"p":"` + strings.Repeat("x\u00e9y", 50) + `","q":"` + strings.Repeat(`ab\"`, 30) + `"}`, []string{"$.z"}, Options{},
			[]string{`N"p"`, fmt.Sprintf("V%q", strings.Repeat("x\u00e9y", 50)), `N"q"`, fmt.Sprintf("V%q", strings.Repeat(`ab"`, 30))}},
		{"member values of a covered container", `{"a":{"b":"c"},"d":"e"}`, []string{"$.a", "$.a.b"}, Options{},
			[]string{`C"a"`, `N"d"`, `V"e"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := fields(tt.sels...)
			doc := []byte(tt.doc)
			items, err := refItems(doc)
			if err != nil {
				t.Fatal(err)
			}
			sels := make([]*Selector, len(fs))
			for i, f := range fs {
				sels[i] = f.Selector
			}
			ref := refOutside(items, sels, tt.opts.FoldCase)
			if !slices.Equal(withoutOffsets(ref), tt.want) {
				t.Fatalf("test case disagrees with the reference: %q", ref)
			}
			for _, p := range guardPlans(t, fs, tt.opts) {
				var got []string
				out, n, err := p.RewriteChecked([]byte("prefix:"), doc, recordOutside(&got), wrap)
				want, wantN, _ := p.Rewrite([]byte("prefix:"), doc, wrap)
				if err != nil || n != wantN || string(out) != string(want) {
					t.Fatalf("RewriteChecked = %q, %d, %v; want Rewrite's %q, %d", out, n, err, want, wantN)
				}
				if !slices.Equal(got, ref) {
					t.Errorf("maxRecorded %d: check saw\n %q\nwant\n %q", p.maxRecorded, got, ref)
				}
				got = got[:0]
				if n, err := p.Inspect(doc, recordOutside(&got)); err != nil || n != wantN || !slices.Equal(got, ref) {
					t.Errorf("maxRecorded %d: Inspect = %d, %v, saw %q", p.maxRecorded, n, err, got)
				}
			}
		})
	}
}

func TestRewriteCheckedErrors(t *testing.T) {
	errTrip := errors.New("tripwire")
	doc := []byte(`{"a":"x","ssn":"secret-name","b":["rkms:AAAA"]}`)
	tests := []struct {
		name     string
		trip     func(*Outside) bool
		wantText string // in the error
	}{
		{"member name", func(o *Outside) bool { return o.Name && string(o.Text) == "ssn" }, "check member name at offset 9"},
		{"string value", func(o *Outside) bool { return strings.Contains(string(o.Text), "rkms:") }, "check string value at offset 34"},
		{"first string", func(*Outside) bool { return true }, "check member name at offset 1"},
	}
	for _, tt := range tests {
		for _, p := range guardPlans(t, fields("$.a"), Options{}) {
			t.Run(tt.name, func(t *testing.T) {
				called := false
				dst := append(make([]byte, 0, 256), "keep"...)
				out, n, err := p.RewriteChecked(dst, doc, func(o *Outside) error {
					if tt.trip(o) {
						return fmt.Errorf("refused: %w", errTrip)
					}
					return nil
				}, func(*Field, []byte) ([]byte, error) {
					called = true
					return []byte(`"<x>"`), nil
				})
				if !errors.Is(err, errTrip) || errors.Is(err, ErrInvalidJSON) {
					t.Fatalf("err = %v, want one wrapping the check's error", err)
				}
				if called || string(out) != "keep" || n != 0 || string(dst[:cap(dst)][:4]) != "keep" {
					t.Errorf("after a check error: transform called %v, out %q, n %d", called, out, n)
				}
				if !strings.Contains(err.Error(), tt.wantText) || strings.Contains(err.Error(), "secret") {
					t.Errorf("error %q should say %q and quote nothing", err, tt.wantText)
				}
				if n, ierr := p.Inspect(doc, func(o *Outside) error {
					if tt.trip(o) {
						return errTrip
					}
					return nil
				}); n != 0 || !errors.Is(ierr, errTrip) || ierr.Error() != strings.Replace(err.Error(), "refused: ", "", 1) {
					t.Errorf("Inspect = %d, %v; want 0 and the same error as RewriteChecked", n, ierr)
				}
			})
		}
	}
}

func TestRewriteCheckedInvalidNeverChecks(t *testing.T) {
	for _, doc := range []string{`{"a":"x","b":}`, `{"a":"x"} {}`, `["rkms:a",` + "\"\xff\"]", `{"a":"x",`, `"abc`} {
		for _, p := range guardPlans(t, fields("$.a"), Options{}) {
			checked := false
			check := func(*Outside) error { checked = true; return nil }
			out, n, err := p.RewriteChecked([]byte("keep"), []byte(doc), check, identity)
			if !errors.Is(err, ErrInvalidJSON) || checked || string(out) != "keep" || n != 0 {
				t.Errorf("%q: RewriteChecked = %q, %d, %v; check called %v", doc, out, n, err, checked)
			}
			if n, err := p.Inspect([]byte(doc), check); !errors.Is(err, ErrInvalidJSON) || checked || n != 0 {
				t.Errorf("%q: Inspect = %d, %v; check called %v", doc, n, err, checked)
			}
		}
	}
}

// TestRewriteCheckedNilCheck checks that a nil check makes RewriteChecked exactly Rewrite, and
// Inspect a count of the selected values.
func TestRewriteCheckedNilCheck(t *testing.T) {
	doc := []byte(`{"a":"x","b":[1,{"a":2}]}`)
	p, err := NewPlan(fields("$..a"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, n, err := p.RewriteChecked(nil, doc, nil, wrap)
	if err != nil || n != 2 || string(out) != `{"a":"<\"x\">","b":[1,{"a":"<2>"}]}` {
		t.Errorf("RewriteChecked = %s, %d, %v", out, n, err)
	}
	if n, err := p.Inspect(doc, nil); err != nil || n != 2 {
		t.Errorf("Inspect = %d, %v", n, err)
	}
}

// TestZeroFieldPlan checks that a plan without fields validates and inspects.
func TestZeroFieldPlan(t *testing.T) {
	for _, fs := range [][]Field{nil, {}} {
		p, err := NewPlan(fs, Options{FoldCase: true})
		if err != nil {
			t.Fatal(err)
		}
		doc := []byte(`{"ssn":"rkms:x","a":[{"b":"c"}]}`)
		var got []string
		if n, err := p.Inspect(doc, recordOutside(&got)); err != nil || n != 0 {
			t.Fatalf("Inspect = %d, %v", n, err)
		}
		if want := []string{`1N"ssn"`, `7V"rkms:x"`, `16N"a"`, `22N"b"`, `26V"c"`}; !slices.Equal(got, want) {
			t.Errorf("Inspect saw %q, want %q", got, want)
		}
		out, n, err := p.RewriteChecked(nil, doc, func(*Outside) error { return nil }, wrap)
		if err != nil || n != 0 || string(out) != string(doc) {
			t.Errorf("RewriteChecked = %s, %d, %v", out, n, err)
		}
		if ok, err := p.Selects(doc, 1); err != nil || ok {
			t.Errorf("Selects = %v, %v", ok, err)
		}
	}
}

// TestOutsideTextDoesNotClobber checks that appending to Text, which aliases the document or the
// scratch, cannot overwrite either.
func TestOutsideTextDoesNotClobber(t *testing.T) {
	doc := []byte(`["abc","d\u0065f","ghi"]`)
	orig := string(doc)
	p, err := NewPlan(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	if _, err := p.Inspect(doc, func(o *Outside) error {
		_ = append(o.Text, "XXXXXXXX"...)
		got = append(got, string(o.Text))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if string(doc) != orig || strings.Join(got, ",") != "abc,def,ghi" {
		t.Errorf("document %q, texts %q", doc, got)
	}
}

func TestRewriteCheckedNoAllocs(t *testing.T) {
	// Under the race detector sync.Pool drops items at random, so the scratch (a handful of
	// slices, grown step by step) is sometimes rebuilt; otherwise nothing may be allocated.
	limit := 0.0
	if raceEnabled {
		limit = 64
	}
	for _, size := range []int{1 << 10, 64 << 10, 1 << 20} {
		doc, fs := benchDoc(size, 10, "middle")
		plan, err := NewPlan(append(fs, fields("$..zip")...), Options{})
		if err != nil {
			t.Fatal(err)
		}
		repl := []byte(`"x"`)
		fn := func(*Field, []byte) ([]byte, error) { return repl, nil }
		dst := make([]byte, 0, 2*len(doc))
		plan.RewriteChecked(dst, doc, compareCheck, fn) // warm the pool
		runs := 20
		if size > 64<<10 {
			runs = 3
		}
		if allocs := testing.AllocsPerRun(runs, func() {
			if _, _, err := plan.RewriteChecked(dst, doc, compareCheck, fn); err != nil {
				t.Fatal(err)
			}
		}); allocs > limit {
			t.Errorf("%d bytes: RewriteChecked allocates %v times per call, want at most %v", len(doc), allocs, limit)
		}
		if allocs := testing.AllocsPerRun(runs, func() {
			if _, err := plan.Inspect(doc, compareCheck); err != nil {
				t.Fatal(err)
			}
		}); allocs > limit {
			t.Errorf("%d bytes: Inspect allocates %v times per call, want at most %v", len(doc), allocs, limit)
		}
	}
}
