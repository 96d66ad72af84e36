package jsonfield

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSelectorValid(t *testing.T) {
	tests := []struct {
		in, canon, label string
	}{
		{"$", "$", ""},
		{"$.ssn", "$.ssn", "ssn"},
		{"$.a.b.c", "$.a.b.c", "c"},
		{"$.a-b_C9", "$.a-b_C9", "a-b_C9"},
		{"$.123", "$.123", "123"},
		{"$.items[*].ssn", "$.items[*].ssn", "ssn"},
		{"$.items[*]", "$.items[*]", ""},
		{"$.items[0]", "$.items[0]", ""},
		{"$[12][0].x", "$[12][0].x", "x"},
		{"$[2147483647]", "$[2147483647]", ""},
		{"$..ssn", "$..ssn", "ssn"},
		{"$.a..b.c", "$.a..b.c", "c"},
		{"$..a..b", "$..a..b", "b"},
		{"$['ssn']", "$.ssn", "ssn"},
		{`$["ssn"]`, "$.ssn", "ssn"},
		{"$['a b']", "$['a b']", "a b"},
		{"$['']", "$['']", ""},
		{"$..['a.b']", "$..['a.b']", "a.b"},
		{`$..["x"]`, "$..x", "x"},
		{`$['it\'s']`, `$['it\'s']`, "it's"},
		{`$["it's"]`, `$['it\'s']`, "it's"},
		{`$['say "hi"']`, `$['say "hi"']`, `say "hi"`},
		{`$["say \"hi\""]`, `$['say "hi"']`, `say "hi"`},
		{`$['back\\slash']`, `$['back\\slash']`, `back\slash`},
		{`$['\/\b\f\n\r\t']`, `$['/\u0008\u000c\u000a\u000d\u0009']`, "/\b\f\n\r\t"},
		{`$['\u0073sn']`, "$.ssn", "ssn"},
		{`$['\u00e9t\u00C9']`, "$['étÉ']", "étÉ"},
		{"$['été']", "$['été']", "été"},
		{`$['\ud83d\ude00']`, "$['😀']", "😀"},
		{"$['\x7f']", "$['\x7f']", "\x7f"},
		{"$.a['b'][3]", "$.a.b[3]", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			sel, err := ParseSelector(tt.in)
			if err != nil {
				t.Fatalf("ParseSelector(%q): %v", tt.in, err)
			}
			if got := sel.String(); got != tt.canon {
				t.Errorf("String() = %q, want %q", got, tt.canon)
			}
			if got := sel.DefaultLabel(); got != tt.label {
				t.Errorf("DefaultLabel() = %q, want %q", got, tt.label)
			}
			again, err := ParseSelector(sel.String())
			if err != nil || !again.Equal(sel) {
				t.Errorf("String() does not round-trip: %v", err)
			}
		})
	}
}

func TestParseSelectorInvalid(t *testing.T) {
	tests := []struct {
		in     string
		offset int
		msg    string
	}{
		{"", 0, "empty selector"},
		{"ssn", 0, "must start with $"},
		{"a.b", 0, "must start with $"},
		{"$ssn", 1, "expected . or ["},
		{"$.", 2, "expected a member name"},
		{"$.a.", 4, "expected a member name"},
		{"$.a b", 3, "expected . or ["},
		{"$.a..", 5, "expected a member name"},
		{"$...a", 3, "expected a member name"},
		{"$.*", 2, "use [*]"},
		{"$.é", 2, "expected a member name"},
		{"$[", 2, "unterminated ["},
		{"$[*", 3, "expected ] after *"},
		{"$[*x]", 3, "expected ] after *"},
		{"$[]", 2, "expected *, an index or a quoted name"},
		{"$[a]", 2, "expected *, an index or a quoted name"},
		{"$[ 1]", 2, "expected *, an index or a quoted name"},
		{"$[-1]", 2, "negative indexes are not supported"},
		{"$[01]", 2, "leading zero"},
		{"$[1", 3, "expected ] after index"},
		{"$[1x]", 3, "expected ] after index"},
		{"$[2147483648]", 2, "index too large"},
		{"$[99999999999999999999999]", 2, "index too large"},
		{"$..[*]", 3, "recursive descent (..) must be followed by a member name"},
		{"$..[0]", 3, "recursive descent (..) must be followed by a member name"},
		{"$['a'", 5, "expected ] after quoted name"},
		{"$['a", 4, "unterminated quoted name"},
		{`$['a\`, 4, "unterminated escape sequence"},
		{`$['a\x']`, 4, "invalid escape sequence"},
		{`$['\u12']`, 3, `\u must be followed by four hex digits`},
		{`$['\ud800']`, 3, "unpaired surrogate"},
		{`$['\ud800\u0041']`, 3, "unpaired surrogate"},
		{`$['\udc00']`, 3, "unpaired surrogate"},
		{"$['a\nb']", 4, "control character"},
		{"$['\xff']", 3, "invalid UTF-8"},
		{"$['\xed\xa0\x80']", 3, "invalid UTF-8"},
		{"$.a]", 3, "expected . or ["},
		{"$ ", 1, "expected . or ["},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			sel, err := ParseSelector(tt.in)
			if err == nil {
				t.Fatalf("ParseSelector(%q) = %s, want an error", tt.in, sel)
			}
			var se *SelectorError
			if !errors.As(err, &se) || !errors.Is(err, ErrInvalidSelector) {
				t.Fatalf("error %v is not a *SelectorError wrapping ErrInvalidSelector", err)
			}
			if se.Offset != tt.offset || !strings.Contains(se.Msg, tt.msg) || se.Selector != tt.in {
				t.Errorf("got offset %d msg %q, want offset %d msg containing %q", se.Offset, se.Msg, tt.offset, tt.msg)
			}
			if !strings.Contains(err.Error(), "offset") {
				t.Errorf("error %q does not name the offset", err)
			}
		})
	}
}

func TestMustParseSelectorPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustParseSelector did not panic on an invalid selector")
		}
	}()
	MustParseSelector("$[")
}
