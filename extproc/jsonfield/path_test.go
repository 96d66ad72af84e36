package jsonfield

import (
	"errors"
	"strings"
	"testing"
)

// at returns the offset of the n-th (from 0) occurrence of sub in doc.
func at(t *testing.T, doc, sub string, n int) int {
	t.Helper()
	off := -1
	for ; n >= 0; n-- {
		i := strings.Index(doc[off+1:], sub)
		if i < 0 {
			t.Fatalf("%q occurs fewer times in %q", sub, doc)
		}
		off += 1 + i
	}
	return off
}

func TestPathAt(t *testing.T) {
	const doc = `{"contact":[{"email":"a@b","tags":["x",{"k":1}]}],"a b":{"x":null},"it's":[0,1,{"ssn":"s"}],` +
		`"s\u0073n":true,"\ud800":"u","":{"":2},"é":-1.5,"n":[[],{}]}`
	tests := []struct {
		sub  string // the offset is that of its n-th occurrence
		n    int
		want string
	}{
		{`{"contact"`, 0, "$"},
		{`"contact"`, 0, "$.contact"},
		{`[{"email"`, 0, "$.contact"},
		{`{"email"`, 0, "$.contact[0]"},
		{`"email"`, 0, "$.contact[0].email"},
		{`"a@b"`, 0, "$.contact[0].email"},
		{`"tags"`, 0, "$.contact[0].tags"},
		{`"x"`, 0, "$.contact[0].tags[0]"},
		{`{"k"`, 0, "$.contact[0].tags[1]"},
		{`"k"`, 0, "$.contact[0].tags[1].k"},
		{`1}`, 0, "$.contact[0].tags[1].k"},
		{`"a b"`, 0, "$['a b']"},
		{`"x":null`, 0, "$['a b'].x"},
		{`null`, 0, "$['a b'].x"},
		{`"it's"`, 0, `$['it\'s']`},
		{`0,1`, 0, `$['it\'s'][0]`},
		{`1,{`, 0, `$['it\'s'][1]`},
		{`"ssn"`, 0, `$['it\'s'][2].ssn`},
		{`"s"}`, 0, `$['it\'s'][2].ssn`},
		{`"s\u0073n"`, 0, "$.ssn"},
		{`true`, 0, "$.ssn"},
		{`"\ud800"`, 0, "$['\uFFFD']"},
		{`"u"`, 0, "$['\uFFFD']"},
		{`"":{`, 0, "$['']"},
		{`{"":2}`, 0, "$['']"},
		{`"":2`, 0, "$['']['']"},
		{`2}`, 0, "$['']['']"},
		{`"é"`, 0, "$['é']"},
		{`-1.5`, 0, "$['é']"},
		{`[[]`, 0, "$.n"},
		{`[],`, 0, "$.n[0]"},
		{`{}]`, 0, "$.n[1]"},
	}
	for _, tt := range tests {
		off := at(t, doc, tt.sub, tt.n)
		got, err := PathAt([]byte(doc), off)
		if err != nil || got != tt.want {
			t.Errorf("PathAt(%q at %d) = %q, %v; want %q", tt.sub, off, got, err, tt.want)
			continue
		}
		if _, err := ParseSelector(got); err != nil {
			t.Errorf("PathAt(%q) = %q, which does not parse: %v", tt.sub, got, err)
		}
	}
}

func TestPathAtErrors(t *testing.T) {
	tests := []struct {
		doc   string
		off   int
		isErr error
	}{
		{`{"a":1}`, 2, ErrNotAValue},  // inside a name
		{`{"a":1}`, 4, ErrNotAValue},  // the colon
		{`{"a":1}`, 6, ErrNotAValue},  // the closing brace
		{`{"a":1}`, 7, ErrNotAValue},  // the end
		{`{"a":1}`, -1, ErrNotAValue}, // before the start
		{`{"a":12}`, 6, ErrNotAValue}, // inside a number
		{` [1, 2] `, 0, ErrNotAValue}, // white space
		{` [1, 2] `, 4, ErrNotAValue},
		{` [1, 2] `, 8, ErrNotAValue},
		{`["a\"b"]`, 4, ErrNotAValue}, // an escaped quote
		{`{"a":1,}`, 1, ErrInvalidJSON},
		{`{"a":1} x`, 0, ErrInvalidJSON},
		{``, 0, ErrInvalidJSON},
	}
	for _, tt := range tests {
		if got, err := PathAt([]byte(tt.doc), tt.off); !errors.Is(err, tt.isErr) {
			t.Errorf("PathAt(%q, %d) = %q, %v; want an error wrapping %v", tt.doc, tt.off, got, err, tt.isErr)
		}
		p, err := NewPlan(fields("$.a"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := p.Selects([]byte(tt.doc), tt.off); ok || !errors.Is(err, tt.isErr) {
			t.Errorf("Selects(%q, %d) = %v, %v; want an error wrapping %v", tt.doc, tt.off, ok, err, tt.isErr)
		}
	}
}

// TestPathAtDeep checks that PathAt has no nesting limit and does not recurse.
func TestPathAtDeep(t *testing.T) {
	for _, depth := range []int{1000, 100000} {
		doc := strings.Repeat(`{"a":[`, depth) + `"x"` + strings.Repeat(`]}`, depth)
		got, err := PathAt([]byte(doc), 6*depth)
		if want := "$" + strings.Repeat(".a[0]", depth); err != nil || got != want {
			t.Errorf("depth %d: PathAt = %.40q... (%d bytes), %v", depth, got, len(got), err)
		}
	}
}

func TestSelects(t *testing.T) {
	const doc = `{"a":{"b":[1,"x"]},"ssn":"1","c":[{"ssn":2},{"d":{"ssn":[3]}}],"e":"rkms:z"}`
	tests := []struct {
		sels []string
		sub  string
		n    int
		want bool
	}{
		{[]string{"$.a"}, `{"b"`, 0, true},
		{[]string{"$.a"}, `"a"`, 0, true}, // a member name: its value
		{[]string{"$.a"}, `"b"`, 0, true}, // inside a selected value
		{[]string{"$.a"}, `"x"`, 0, true},
		{[]string{"$.a"}, `"ssn"`, 0, false},
		{[]string{"$.a"}, `{"a"`, 0, false},
		{[]string{"$"}, `"e"`, 0, true},
		{[]string{"$..ssn"}, `"ssn"`, 0, true},
		{[]string{"$..ssn"}, `"ssn"`, 2, true},
		{[]string{"$..ssn"}, `3`, 0, true},
		{[]string{"$..ssn"}, `{"d"`, 0, false},
		{[]string{"$..ssn"}, `"e"`, 0, false},
		{[]string{"$.c[1]"}, `"ssn"`, 2, true},
		{[]string{"$.c[1]"}, `"ssn"`, 1, false},
		{[]string{"$.c[*].d"}, `{"ssn":[`, 0, true},
		{[]string{"$.x", "$.e"}, `"rkms:z"`, 0, true},
		{nil, `"rkms:z"`, 0, false},
	}
	for _, tt := range tests {
		p, err := NewPlan(fields(tt.sels...), Options{})
		if err != nil {
			t.Fatal(err)
		}
		off := at(t, doc, tt.sub, tt.n)
		if got, err := p.Selects([]byte(doc), off); err != nil || got != tt.want {
			t.Errorf("%q: Selects(%q #%d) = %v, %v; want %v", tt.sels, tt.sub, tt.n, got, err, tt.want)
		}
	}
}
