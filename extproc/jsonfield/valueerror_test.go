package jsonfield

import (
	"errors"
	"slices"
	"testing"
)

// TestValueErrorLocatesTheValue: an error of the function for one value comes back as a
// *ValueError whose offset SelectorAt turns into that value's own path and indexes (the record
// of a list), and which still unwraps to the function's error.
func TestValueErrorLocatesTheValue(t *testing.T) {
	errBad := errors.New("bad value")
	doc := []byte(`{"items":[{"ssn":"a","cards":[{"n":"1"}]},{"ssn":"b","cards":[{"n":"2"},{"n":"BAD"}]}]}`)
	tests := []struct {
		selector    string
		wantPath    string
		wantIndexes []int
	}{
		{"$.items[*].cards[*].n", "$.items[1].cards[1].n", []int{1, 1}},
		{"$..n", "$.items[1].cards[1].n", []int{1, 1}},
		{"$.items[1].cards", "$.items[1].cards", []int{1}},
	}
	for _, tt := range tests {
		t.Run(tt.selector, func(t *testing.T) {
			p, err := NewPlan([]Field{{Selector: MustParseSelector(tt.selector)}}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			fail := func(_ *Field, raw []byte) error {
				if slices.Contains([]string{`"BAD"`, `[{"n":"2"},{"n":"BAD"}]`}, string(raw)) {
					return errBad
				}
				return nil
			}
			_, _, rerr := p.Rewrite(nil, doc, func(f *Field, raw []byte) ([]byte, error) { return raw, fail(f, raw) })
			_, verr := p.Visit(doc, fail)
			for name, err := range map[string]error{"Rewrite": rerr, "Visit": verr} {
				var ve *ValueError
				if !errors.As(err, &ve) || !errors.Is(err, errBad) || ve.Selector.String() != tt.selector {
					t.Fatalf("%s: err = %#v, want a *ValueError for %s wrapping errBad", name, err, tt.selector)
				}
				sel, err := SelectorAt(doc, ve.Offset)
				if err != nil {
					t.Fatal(err)
				}
				if sel.String() != tt.wantPath || !slices.Equal(sel.Indexes(), tt.wantIndexes) {
					t.Errorf("%s: at %d: %s %v, want %s %v", name, ve.Offset, sel, sel.Indexes(), tt.wantPath, tt.wantIndexes)
				}
			}
		})
	}
	if got := MustParseSelector("$.ssn").Indexes(); got != nil {
		t.Errorf("Indexes of $.ssn = %v, want nil", got)
	}
}
