package jsonfield

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// TestDepthErrorIsTyped checks that a document nested deeper than the limit fails with an error
// that says so (errors.Is ErrTooDeep, the limit in SyntaxError.MaxDepth and in the message), still
// counts as a document this package refuses (ErrInvalidJSON), and that no other syntax error is
// mistaken for it.
func TestDepthErrorIsTyped(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	tests := []struct {
		name     string
		maxDepth int // 0: DefaultMaxDepth
		doc      string
		limit    int // the MaxDepth the error reports; 0: not a depth error
	}{
		{"default limit, one level over", 0, deep(DefaultMaxDepth + 1), DefaultMaxDepth},
		{"default limit, objects", 0, strings.Repeat(`{"a":`, DefaultMaxDepth+1) + "1" + strings.Repeat("}", DefaultMaxDepth+1), DefaultMaxDepth},
		{"default limit, unterminated", 0, strings.Repeat("[", DefaultMaxDepth+1), DefaultMaxDepth},
		{"own limit", 3, `{"a":[{"b":[1]}]}`, 3},
		{"at the limit", 3, `{"a":[{"b":1}]}`, 0},
		{"other syntax error", 0, `{"a":1,}`, 0},
		{"unterminated within the limit", 0, strings.Repeat("[", DefaultMaxDepth), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewPlan([]Field{{Selector: MustParseSelector("$..a")}}, Options{MaxDepth: tt.maxDepth})
			if err != nil {
				t.Fatal(err)
			}
			errs := map[string]error{"Validate": p.Validate([]byte(tt.doc))}
			_, _, errs["Rewrite"] = p.Rewrite(nil, []byte(tt.doc), identity)
			_, errs["Visit"] = p.Visit([]byte(tt.doc), func(*Field, []byte) error { return nil })
			if tt.maxDepth == 0 {
				errs["package Validate"] = Validate([]byte(tt.doc))
			}
			for name, err := range errs {
				if tt.limit == 0 {
					if errors.Is(err, ErrTooDeep) {
						t.Errorf("%s: err = %v, want no ErrTooDeep", name, err)
					}
					continue
				}
				var se *SyntaxError
				if !errors.Is(err, ErrTooDeep) || !errors.Is(err, ErrInvalidJSON) || !errors.As(err, &se) {
					t.Fatalf("%s: err = %#v, want a *SyntaxError wrapping ErrTooDeep and ErrInvalidJSON", name, err)
				}
				if se.MaxDepth != tt.limit {
					t.Errorf("%s: MaxDepth = %d, want %d", name, se.MaxDepth, tt.limit)
				}
				if want := "nesting depth exceeds " + strconv.Itoa(tt.limit); !strings.Contains(err.Error(), want) {
					t.Errorf("%s: error %q does not contain %q", name, err, want)
				}
			}
		})
	}
}
