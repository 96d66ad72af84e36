package jsonfield

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
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

// refStep is one step of a concrete path in a document: a member name or an array index.
type refStep struct {
	member bool
	name   string
	index  int
}

// refItem is a value or member name of a document as encoding/json's tokenizer sees it: the
// reference against which the guard pass, PathAt and Selects are checked.
type refItem struct {
	off  int       // offset of its first byte
	name bool      // a member name; path is then the member's path
	str  bool      // a string (or a name), decoded in text
	text string    // the decoded string
	path []refStep // the concrete path of the value (or member)
}

// refItems lists the values and member names of the valid document doc in document order.
func refItems(doc []byte) ([]refItem, error) {
	type level struct {
		obj     bool
		n       int // elements passed
		key     string
		path    []refStep
		wantKey bool
	}
	next := func(l *level) {
		l.n++
		l.wantKey = l.obj
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var stack []*level
	var items []refItem
	for {
		off := int(dec.InputOffset())
		tok, err := dec.Token()
		if err == io.EOF {
			return items, nil
		}
		if err != nil {
			return nil, err
		}
		for strings.IndexByte(" \t\r\n,:", doc[off]) >= 0 {
			off++
		}
		var top *level
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			if stack = stack[:len(stack)-1]; len(stack) > 0 {
				next(stack[len(stack)-1])
			}
			continue
		}
		if top != nil && top.wantKey {
			top.key, top.wantKey = tok.(string), false
			items = append(items, refItem{off: off, name: true, str: true, text: top.key,
				path: append(slices.Clip(top.path), refStep{member: true, name: top.key})})
			continue
		}
		var path []refStep
		switch {
		case top == nil:
		case top.obj:
			path = append(slices.Clip(top.path), refStep{member: true, name: top.key})
		default:
			path = append(slices.Clip(top.path), refStep{index: top.n})
		}
		it := refItem{off: off, path: path}
		if s, ok := tok.(string); ok {
			it.str, it.text = true, s
		}
		items = append(items, it)
		if d, ok := tok.(json.Delim); ok {
			stack = append(stack, &level{obj: d == '{', path: path, wantKey: d == '{'})
		} else if top != nil {
			next(top)
		}
	}
}

// refMatch reports whether the selector steps match the concrete path exactly: the reference
// matcher, a memoized backtracking over the two sequences.
func refMatch(steps []step, path []refStep, fold bool) bool {
	eq := func(a, b string) bool {
		if fold {
			return string(Fold(nil, []byte(a))) == string(Fold(nil, []byte(b)))
		}
		return a == b
	}
	memo := map[[2]int]bool{}
	var match func(i, j int) bool
	match = func(i, j int) bool {
		if i == len(steps) {
			return j == len(path)
		}
		key := [2]int{i, j}
		if v, ok := memo[key]; ok {
			return v
		}
		st, ok := steps[i], false
		switch st.kind {
		case stepMember:
			ok = j < len(path) && path[j].member && eq(path[j].name, st.name) && match(i+1, j+1)
		case stepIndex:
			ok = j < len(path) && !path[j].member && path[j].index == st.index && match(i+1, j+1)
		case stepWildcard:
			ok = j < len(path) && match(i+1, j+1)
		case stepDescendant:
			for k := j; k < len(path) && !ok; k++ {
				ok = path[k].member && eq(path[k].name, st.name) && match(i+1, k+1)
			}
		}
		memo[key] = ok
		return ok
	}
	return match(0, 0)
}

// refSelected reports whether any of sels matches path.
func refSelected(sels []*Selector, path []refStep, fold bool) bool {
	for _, s := range sels {
		if refMatch(s.steps, path, fold) {
			return true
		}
	}
	return false
}

// refInside reports whether the value at path is selected or inside a selected value.
func refInside(sels []*Selector, path []refStep, fold bool) bool {
	for n := 0; n <= len(path); n++ {
		if refSelected(sels, path[:n], fold) {
			return true
		}
	}
	return false
}

// refOutside lists, as outsideString renders them, the strings of the valid document doc that
// the guard pass must report under sels.
func refOutside(items []refItem, sels []*Selector, fold bool) []string {
	var out []string
	for _, it := range items {
		switch {
		case !it.str:
		case it.name && !refInside(sels, it.path[:len(it.path)-1], fold):
			out = append(out, outsideString(&Outside{Offset: it.off, Name: true,
				Covered: refSelected(sels, it.path, fold), Text: []byte(it.text)}))
		case !it.name && !refInside(sels, it.path, fold):
			out = append(out, outsideString(&Outside{Offset: it.off, Text: []byte(it.text)}))
		}
	}
	return out
}

// outsideString renders o for comparisons: offset, kind (N name, C covered name, V value), text.
func outsideString(o *Outside) string {
	kind := "V"
	if o.Covered {
		kind = "C"
	} else if o.Name {
		kind = "N"
	}
	return fmt.Sprintf("%d%s%q", o.Offset, kind, o.Text)
}
