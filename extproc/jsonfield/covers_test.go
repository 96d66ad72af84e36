package jsonfield

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestCovers(t *testing.T) {
	tests := []struct {
		s, t       string
		want, fold bool // fold: the result with folding (without, it is want)
	}{
		// The examples of the design.
		{"$..ssn", "$.ssn", true, true},
		{"$..ssn", "$.items[*].ssn", true, true},
		{"$..ssn", "$..ssn", true, true},
		{"$..ssn", "$.a..ssn", true, true},
		{"$.items[*].ssn", "$.items[0].ssn", true, true},
		{"$[*]", "$.a", true, true},
		{"$[*]", "$[3]", true, true},
		{"$..contact.email", "$.items[*].contact.email", true, true},
		{"$.ssn", "$.items[*].ssn", false, false},
		{"$.items[*].ssn", "$..ssn", false, false},
		{"$.a", "$.A", false, true},
		// More.
		{"$", "$", true, true},
		{"$..a", "$", false, false},
		{"$", "$.a", false, false},
		{"$.a", "$.a.b", false, false},
		{"$.a.b", "$.a", false, false},
		{"$[0]", "$[*]", false, false},
		{"$[*]", "$[*]", true, true},
		{"$[*][*]", "$.a[0]", true, true},
		{"$[0]", "$.a", false, false},
		{"$.a", "$[0]", false, false},
		{"$['0']", "$[0]", false, false},
		{"$..a..b", "$..a.b", true, true},
		{"$..a.b", "$..a..b", false, false},
		{"$..b", "$..a.b", true, true},
		{"$..a", "$.b..a", true, true},
		{"$[*]..a", "$..a", false, false},
		{"$..a", "$[*]..a", true, true},
		{"$..a", "$[*]", false, false},
		{"$..a", "$.x[2][*].a", true, true},
		{"$..a", "$.x[2][*]", false, false},
		{"$..a.a", "$..a.a.a", true, true},
		{"$..a.a.a", "$..a.a", false, false},
		{"$..a[*]", "$..a.a", true, true},
		{"$..a[*]", "$..a[1]", true, true},
		{"$..a[1]", "$..a[*]", false, false},
		{"$.ssn", "$.SSN", false, true},
		{"$.ssn", "$['ſsn']", false, true},
		{"$..k", "$..['\u212a']", false, true},
		{"$['é']", "$['É']", false, true},
		{"$.ssn", "$.ssn2", false, false},
		{"$..x", "$..x..x", true, true},
		{"$..x..x", "$..x", false, false},
		{"$.a[*].b[*].c", "$.a[1].b[2].c", true, true},
		{"$.a[*].b[*].c", "$.a[1].b.c", false, false},
	}
	for _, tt := range tests {
		s, u := MustParseSelector(tt.s), MustParseSelector(tt.t)
		if got := s.Covers(u, false); got != tt.want {
			t.Errorf("%s.Covers(%s, false) = %v, want %v", tt.s, tt.t, got, tt.want)
		}
		if got := s.Covers(u, true); got != tt.fold {
			t.Errorf("%s.Covers(%s, true) = %v, want %v", tt.s, tt.t, got, tt.fold)
		}
	}
}

// TestCoversGivesUp checks the bounds of the doc comment: long selectors are refused (false)
// unless equal, and the exploration stays within its bound.
func TestCoversGivesUp(t *testing.T) {
	long := MustParseSelector("$" + strings.Repeat(".a", 64))
	if !long.Covers(long, false) {
		t.Errorf("a long selector does not cover itself")
	}
	if long.Covers(MustParseSelector("$"+strings.Repeat(".a", 64)+".b"), false) {
		t.Errorf("a long selector covers a longer one")
	}
	// Ten descent steps in s: at most 2^11 sets of states, so no giving up.
	s := MustParseSelector("$" + strings.Repeat("..a", 10))
	u := MustParseSelector("$" + strings.Repeat(".a[*]", 15))
	if !s.Covers(MustParseSelector("$"+strings.Repeat(".a", 10)), false) || s.Covers(u, false) {
		t.Errorf("ten descents: wrong answers")
	}
}

// randSelector makes a small random selector over the names a, b, A and c and the indexes 0 and 1.
func randSelector(r *rand.Rand) *Selector {
	var b strings.Builder
	b.WriteString("$")
	names := []string{"a", "b", "A"}
	for n := r.IntN(5); n > 0; n-- {
		switch r.IntN(5) {
		case 0, 1:
			b.WriteString("." + names[r.IntN(len(names))])
		case 2:
			b.WriteString("[*]")
		case 3:
			fmt.Fprintf(&b, "[%d]", r.IntN(2))
		case 4:
			b.WriteString(".." + names[r.IntN(len(names))])
		}
	}
	return MustParseSelector(b.String())
}

// randDoc makes a small random JSON document of objects (names a, b, A, c) and arrays.
func randDoc(r *rand.Rand, depth int) string {
	if depth == 0 || r.IntN(4) == 0 {
		return "0"
	}
	var parts []string
	if r.IntN(2) == 0 {
		for n := r.IntN(4); n > 0; n-- {
			parts = append(parts, randDoc(r, depth-1))
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	for n := r.IntN(4); n > 0; n-- {
		parts = append(parts, fmt.Sprintf("%q:%s", []string{"a", "b", "A", "c"}[r.IntN(4)], randDoc(r, depth-1)))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// TestCoversProperty checks Covers against the reference matcher: when s covers t, every path
// of a random document that t matches, s matches too. It also checks that Covers is exact for
// small selectors: when it says no, some path of at most 5 steps tells them apart.
func TestCoversProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var alphabet []refStep
	for _, name := range []string{"a", "b", "A", "c"} {
		alphabet = append(alphabet, refStep{member: true, name: name})
	}
	for i := range 3 {
		alphabet = append(alphabet, refStep{index: i})
	}
	var allPaths [][]refStep
	var extend func(p []refStep, n int)
	extend = func(p []refStep, n int) {
		allPaths = append(allPaths, p)
		if n > 0 {
			for _, st := range alphabet {
				extend(append(p[:len(p):len(p)], st), n-1)
			}
		}
	}
	extend(nil, 5)

	// -short (unit tests, and every mutant of make mutate): a tenth of the pairs, about 0.1 s
	// instead of 1.2 s.
	pairs, witnesses, minDistinct := 20000, 500, 200
	if testing.Short() {
		pairs, witnesses, minDistinct = 2000, 50, 20
	}
	covered, distinct, tested := 0, 0, 0
	for range pairs {
		s, u := randSelector(r), randSelector(r)
		fold := r.IntN(2) == 0
		if !s.Covers(u, fold) {
			if tested < witnesses && len(s.steps) <= 3 && len(u.steps) <= 3 {
				tested++
				found := false
				for _, p := range allPaths {
					if refMatch(u.steps, p, fold) && !refMatch(s.steps, p, fold) {
						found = true
						break
					}
				}
				if !found {
					t.Errorf("%s.Covers(%s, %v) = false, but no path of at most 5 steps tells them apart", s, u, fold)
				}
			}
			continue
		}
		covered++
		if !s.Equal(u) {
			distinct++
		}
		for range 5 {
			doc := randDoc(r, 5)
			items, err := refItems([]byte(doc))
			if err != nil {
				t.Fatalf("%s: %v", doc, err)
			}
			for _, it := range items {
				if !it.name && refMatch(u.steps, it.path, fold) && !refMatch(s.steps, it.path, fold) {
					t.Fatalf("%s.Covers(%s, %v) = true, but in %s only the second matches %v", s, u, fold, doc, it.path)
				}
			}
		}
		for _, p := range allPaths {
			if refMatch(u.steps, p, fold) && !refMatch(s.steps, p, fold) {
				t.Fatalf("%s.Covers(%s, %v) = true, but only the second matches %v", s, u, fold, p)
			}
		}
	}
	t.Logf("%d covering pairs (%d distinct), %d non-covering pairs searched for a witness", covered, distinct, tested)
	if distinct < minDistinct {
		t.Errorf("only %d covering pairs of distinct selectors tested", distinct)
	}
}
