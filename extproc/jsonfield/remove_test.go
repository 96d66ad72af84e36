package jsonfield

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestRemove(t *testing.T) {
	for _, tc := range []struct{ name, sel, doc, want string }{
		{"only member", "$.x", `{"x":1}`, `{}`},
		{"only member, spaces", "$.x", `{ "x" : 1 }`, `{  }`},
		{"first", "$.x", `{"x":1,"a":2}`, `{"a":2}`},
		{"first, spaces", "$.x", "{ \"x\":1 ,\n \"a\":2}", "{ \"a\":2}"},
		{"middle", "$.x", `{"a":1,"x":2,"b":3}`, `{"a":1,"b":3}`},
		{"last", "$.x", `{"a":1, "x":2 }`, `{"a":1 }`},
		{"duplicates", "$.x", `{"x":1,"x":2}`, `{}`},
		{"duplicates first", "$.x", `{"x":1,"x":2,"a":3}`, `{"a":3}`},
		{"duplicates last", "$.x", `{"a":1,"x":2,"x":3}`, `{"a":1}`},
		{"around", "$.x", `{"x":1,"a":2,"x":3}`, `{"a":2}`},
		{"alternating", "$.x", `{"a":0,"x":1,"b":2,"x":3,"c":4}`, `{"a":0,"b":2,"c":4}`},
		{"escaped name", "$.x", `{"\u0078":{"y":[1]},"a":2}`, `{"a":2}`},
		{"descendant", "$..x", `{"x":1,"a":{"x":2,"b":[{"c":3,"x":4}]}}`, `{"a":{"b":[{"c":3}]}}`},
		{"nested kept then removed", "$..x", `{"a":{"b":1},"x":2}`, `{"a":{"b":1}}`},
		{"array member untouched", "$.a[*].x", `{"a":[{"x":1},{"y":2,"x":3},5]}`, `{"a":[{},{"y":2},5]}`},
		{"absent", "$.x", `{"a":1}`, `{"a":1}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := NewPlan([]Field{{Selector: MustParseSelector(tc.sel), Remove: true}}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			out, _, err := plan.Rewrite(nil, []byte(tc.doc), func(*Field, []byte) ([]byte, error) {
				t.Fatal("transform called for a removed member")
				return nil, nil
			})
			if err != nil || string(out) != tc.want {
				t.Fatalf("Rewrite(%s) = %s, %v; want %s", tc.doc, out, err, tc.want)
			}
		})
	}
}

// TestRemoveAndInsert: a sibling inserted after a transformed value, and a client's member of
// the sibling's name removed wherever it is in the object.
func TestRemoveAndInsert(t *testing.T) {
	plan, err := NewPlan([]Field{
		{Selector: MustParseSelector("$..ssn"), Label: "ssn"},
		{Selector: MustParseSelector("$..ssn_idx"), Remove: true},
	}, Options{FoldCase: true})
	if err != nil {
		t.Fatal(err)
	}
	fn := func(_ *Field, raw []byte) ([]byte, error) {
		return AppendMember([]byte(`"sealed"`), "ssn_idx", []byte(`"IDX"`)), nil
	}
	for doc, want := range map[string]string{
		`{"ssn":"1"}`:                           `{"ssn":"sealed","ssn_idx":"IDX"}`,
		`{"ssn_idx":"forged","ssn":"1"}`:        `{"ssn":"sealed","ssn_idx":"IDX"}`,
		`{"ssn":"1","ssn_idx":"forged"}`:        `{"ssn":"sealed","ssn_idx":"IDX"}`,
		`{"SSN_IDX":"f","a":{"ssn":"1"},"b":2}`: `{"a":{"ssn":"sealed","ssn_idx":"IDX"},"b":2}`,
		`[{"ssn":1,"ssn_idx":2},{"ssn_idx":3}]`: `[{"ssn":"sealed","ssn_idx":"IDX"},{}]`,
	} {
		out, _, err := plan.Rewrite(nil, []byte(doc), fn)
		if err != nil || string(out) != want {
			t.Errorf("Rewrite(%s) = %s, %v; want %s", doc, out, err, want)
		}
	}
}

func TestRemoveNeedsMember(t *testing.T) {
	for _, sel := range []string{"$", "$.a[*]", "$.a[0]"} {
		_, err := NewPlan([]Field{{Selector: MustParseSelector(sel), Remove: true}}, Options{})
		if !errors.Is(err, ErrInvalidSelector) {
			t.Errorf("%s: %v, want ErrInvalidSelector", sel, err)
		}
	}
	for sel, want := range map[string]bool{"$": false, "$.a": true, "$..a": true, "$.a[*]": false, "$['x y']": true, "$.a[1]": false} {
		if got := MustParseSelector(sel).EndsInMember(); got != want {
			t.Errorf("%s.EndsInMember() = %v", sel, got)
		}
	}
}

func TestAppendMember(t *testing.T) {
	got := AppendMember([]byte(`{"a":1`), "x\"<\n", []byte(`2`))
	got = append(got, '}')
	var m map[string]int
	if err := json.Unmarshal(got, &m); err != nil || m["x\"<\n"] != 2 {
		t.Errorf("%s: %v %v", got, m, err)
	}
}

// FuzzRemove: removing members leaves valid JSON that holds none of them, made only of
// deletions, and counts one change per removed member.
func FuzzRemove(f *testing.F) {
	for _, doc := range []string{`{"x":1,"a":2}`, `{"a":1,"x":2,"x":3}`, `{"x":1,"x":2,"a":3}`, `[{"x":{"x":1}},{"b":{"x":[]},"x":0}]`,
		`{ "x" : 1 , "y" : { "x" : 2 } , "x" : 3 }`, `{"\u0078":1}`, `{"x":1`, `{}`} {
		f.Add([]byte(doc), "$..x")
	}
	f.Add([]byte(`{"a":{"x":1,"b":2},"x":3}`), "$.a.x\n$.b")
	f.Fuzz(func(t *testing.T, doc []byte, selText string) {
		var fs []Field
		for _, s := range strings.Split(selText, "\n") {
			if sel, err := ParseSelector(s); err == nil {
				fs = append(fs, Field{Selector: sel, Remove: sel.EndsInMember()})
			}
		}
		plan, err := NewPlan(fs, Options{MaxDepth: 64})
		if err != nil {
			t.Fatal(err)
		}
		out, n, err := plan.Rewrite(nil, doc, identity)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("%q became invalid %q", doc, out)
		}
		left := 0
		if _, err := plan.Visit(out, func(f *Field, _ []byte) error {
			if f.Remove {
				left++
			}
			return nil
		}); err != nil {
			t.Fatalf("output %q: %v", out, err)
		}
		if left > 0 {
			t.Fatalf("%q still selects %d removed members in %q", doc, left, out)
		}
		selected, _ := plan.Visit(doc, func(*Field, []byte) error { return nil })
		if n != selected {
			t.Fatalf("%d changes for %d selected values", n, selected)
		}
		j := 0 // out must be doc with bytes deleted
		for i := 0; i < len(doc) && j < len(out); i++ {
			if doc[i] == out[j] {
				j++
			}
		}
		if j != len(out) {
			t.Fatalf("%q is not %q with bytes deleted", out, doc)
		}
	})
}
