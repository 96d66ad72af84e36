package jsonfield

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// wrap is the transform used by golden and fuzz tests: it replaces a value with the JSON string
// "<" + raw + ">", so that the output stays valid JSON and shows exactly which bytes were selected.
// Only ", \ and control characters (white space between tokens) are escaped.
func wrap(_ *Field, raw []byte) ([]byte, error) {
	const hex = "0123456789abcdef"
	b := []byte(`"<`)
	for _, c := range raw {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '>', '"'), nil
}

// unwrap undoes wrap.
func unwrap(_ *Field, raw []byte) ([]byte, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("unwrap %s: %w", raw, err)
	}
	if !strings.HasPrefix(s, "<") || !strings.HasSuffix(s, ">") || len(s) < 2 {
		return nil, errors.New("unwrap: not a wrapped value")
	}
	return []byte(s[1 : len(s)-1]), nil
}

func identity(_ *Field, raw []byte) ([]byte, error) { return raw, nil }

// depth returns the deepest nesting of a document that json.Valid accepts.
func depth(doc []byte) int {
	d, max := 0, 0
	inStr := false
	for i := 0; i < len(doc); i++ {
		c := doc[i]
		switch {
		case inStr && c == '\\':
			i++
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{' || c == '[':
			if d++; d > max {
				max = d
			}
		case c == '}' || c == ']':
			d--
		}
	}
	return max
}

// wantValid is the acceptance rule of the package: json.Valid, plus valid UTF-8 (json.Valid
// accepts invalid UTF-8 inside strings), plus the nesting limit.
func wantValid(doc []byte, maxDepth int) bool {
	return json.Valid(doc) && utf8.Valid(doc) && depth(doc) <= maxDepth
}

func fields(sels ...string) []Field {
	fs := make([]Field, len(sels))
	for i, s := range sels {
		sel := MustParseSelector(s)
		fs[i] = Field{Selector: sel, Label: sel.DefaultLabel()}
	}
	return fs
}
