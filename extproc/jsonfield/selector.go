package jsonfield

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxIndex bounds [N] so that indexes fit comfortably in an int on every platform.
const maxIndex = 1<<31 - 1

type stepKind uint8

const (
	stepMember     stepKind = iota + 1 // .name or ['name']
	stepWildcard                       // [*]
	stepIndex                          // [N]
	stepDescendant                     // ..name or ..['name']
)

type step struct {
	kind  stepKind
	name  string // stepMember, stepDescendant: the decoded member name
	index int    // stepIndex
}

// Selector is a compiled selector: a small subset of JSONPath (see the package documentation for
// the grammar). A Selector is immutable and safe for concurrent use. Make one with [ParseSelector].
type Selector struct {
	steps []step
}

// MustParseSelector is like [ParseSelector] but panics on error. It is meant for tests and for
// selectors that are constants of the program.
func MustParseSelector(s string) *Selector {
	sel, err := ParseSelector(s)
	if err != nil {
		panic(err)
	}
	return sel
}

// ParseSelector compiles s. Errors are [*SelectorError] values naming the byte offset of the problem
// and wrap [ErrInvalidSelector].
func ParseSelector(s string) (*Selector, error) {
	p := selParser{s: s}
	steps, err := p.parse()
	if err != nil {
		return nil, err
	}
	return &Selector{steps: steps}, nil
}

// String returns the canonical text of the selector: members with plain names as .name, other
// names as ['...'] with the escapes of the grammar, indexes in decimal. ParseSelector(s.String())
// gives back an equal selector.
func (s *Selector) String() string {
	var b strings.Builder
	b.WriteByte('$')
	for _, st := range s.steps {
		switch st.kind {
		case stepMember:
			writeName(&b, ".", st.name)
		case stepDescendant:
			writeName(&b, "..", st.name)
		case stepWildcard:
			b.WriteString("[*]")
		case stepIndex:
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(st.index))
			b.WriteByte(']')
		}
	}
	return b.String()
}

// DefaultLabel returns the name of the last member the selector names ("ssn" for $.ssn, $..ssn and
// $.items[*].ssn). It returns "" when the selector ends with [*] or [N], or is just $: such fields
// have no natural label and callers must set [Field.Label] themselves.
func (s *Selector) DefaultLabel() string {
	if len(s.steps) == 0 {
		return ""
	}
	last := s.steps[len(s.steps)-1]
	if last.kind == stepMember || last.kind == stepDescendant {
		return last.name
	}
	return ""
}

// EndsInMember reports whether the selector's last step is a member (.name, ['name'] or
// ..name): every value it selects is then the value of an object member, which a [Field] with
// Remove can delete and after which [AppendMember] can insert a sibling.
func (s *Selector) EndsInMember() bool {
	if len(s.steps) == 0 {
		return false
	}
	k := s.steps[len(s.steps)-1].kind
	return k == stepMember || k == stepDescendant
}

// Indexes returns the array indexes the selector names with [N] steps, in order ([1, 0] for
// $.items[1].cards[0].number); nil when it names none. For a path from [SelectorAt] the first is
// the position of the record in a list document ($.items[N]... or $[N]...).
func (s *Selector) Indexes() []int {
	var out []int
	for _, st := range s.steps {
		if st.kind == stepIndex {
			out = append(out, st.index)
		}
	}
	return out
}

// Equal reports whether s and t select exactly the same values.
func (s *Selector) Equal(t *Selector) bool {
	if len(s.steps) != len(t.steps) {
		return false
	}
	for i := range s.steps {
		if s.steps[i] != t.steps[i] {
			return false
		}
	}
	return true
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func isPlainName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isNameByte(name[i]) {
			return false
		}
	}
	return true
}

func writeName(b *strings.Builder, prefix, name string) {
	if isPlainName(name) {
		b.WriteString(prefix)
		b.WriteString(name)
		return
	}
	if prefix == ".." {
		b.WriteString("..")
	}
	b.WriteString("['")
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '\'' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			const hex = "0123456789abcdef"
			b.WriteString(`\u00`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		default:
			b.WriteByte(c)
		}
	}
	b.WriteString("']")
}

type selParser struct {
	s string
	i int
}

func (p *selParser) fail(off int, msg string) error {
	return &SelectorError{Selector: p.s, Offset: off, Msg: msg}
}

func (p *selParser) parse() ([]step, error) {
	s := p.s
	if s == "" {
		return nil, p.fail(0, "empty selector")
	}
	if s[0] != '$' {
		return nil, p.fail(0, "selector must start with $")
	}
	p.i = 1
	var steps []step
	for p.i < len(s) {
		var st step
		var err error
		switch s[p.i] {
		case '.':
			if p.i+1 < len(s) && s[p.i+1] == '.' {
				p.i += 2
				st, err = p.descendant()
			} else {
				p.i++
				st.kind = stepMember
				st.name, err = p.plainName()
			}
		case '[':
			st, err = p.bracket()
		default:
			err = p.fail(p.i, "expected . or [")
		}
		if err != nil {
			return nil, err
		}
		steps = append(steps, st)
	}
	return steps, nil
}

func (p *selParser) descendant() (step, error) {
	st := step{kind: stepDescendant}
	if p.i < len(p.s) && p.s[p.i] == '[' {
		if p.i+1 < len(p.s) && (p.s[p.i+1] == '\'' || p.s[p.i+1] == '"') {
			p.i++
			name, err := p.quoted()
			if err != nil {
				return st, err
			}
			if err := p.expect(']', "expected ] after quoted name"); err != nil {
				return st, err
			}
			st.name = name
			return st, nil
		}
		return st, p.fail(p.i, "recursive descent (..) must be followed by a member name")
	}
	name, err := p.plainName()
	if err != nil {
		return st, err
	}
	st.name = name
	return st, nil
}

func (p *selParser) plainName() (string, error) {
	start := p.i
	for p.i < len(p.s) && isNameByte(p.s[p.i]) {
		p.i++
	}
	if p.i == start {
		if p.i < len(p.s) && p.s[p.i] == '*' {
			return "", p.fail(p.i, "use [*] for a wildcard")
		}
		return "", p.fail(p.i, "expected a member name of letters, digits, _ or - (quote other names as ['name'])")
	}
	return p.s[start:p.i], nil
}

func (p *selParser) expect(c byte, msg string) error {
	if p.i >= len(p.s) || p.s[p.i] != c {
		return p.fail(p.i, msg)
	}
	p.i++
	return nil
}

func (p *selParser) bracket() (step, error) {
	s := p.s
	p.i++ // '['
	if p.i >= len(s) {
		return step{}, p.fail(p.i, "unterminated [")
	}
	switch c := s[p.i]; {
	case c == '*':
		p.i++
		if err := p.expect(']', "expected ] after *"); err != nil {
			return step{}, err
		}
		return step{kind: stepWildcard}, nil
	case c == '\'' || c == '"':
		name, err := p.quoted()
		if err != nil {
			return step{}, err
		}
		if err := p.expect(']', "expected ] after quoted name"); err != nil {
			return step{}, err
		}
		return step{kind: stepMember, name: name}, nil
	case c == '-':
		return step{}, p.fail(p.i, "negative indexes are not supported (the document is streamed)")
	case c >= '0' && c <= '9':
		start := p.i
		n := 0
		for p.i < len(s) && s[p.i] >= '0' && s[p.i] <= '9' {
			if p.i > start && s[start] == '0' {
				return step{}, p.fail(start, "index has a leading zero")
			}
			n = n*10 + int(s[p.i]-'0')
			if n > maxIndex {
				return step{}, p.fail(start, "index too large")
			}
			p.i++
		}
		if err := p.expect(']', "expected ] after index"); err != nil {
			return step{}, err
		}
		return step{kind: stepIndex, index: n}, nil
	default:
		return step{}, p.fail(p.i, "expected *, an index or a quoted name after [")
	}
}

// quoted parses a '...' or "..." name starting at the opening quote and returns the decoded name.
func (p *selParser) quoted() (string, error) {
	s := p.s
	q := s[p.i]
	p.i++
	var b []byte
	start := p.i
	for {
		if p.i >= len(s) {
			return "", p.fail(p.i, "unterminated quoted name")
		}
		c := s[p.i]
		switch {
		case c == q:
			p.i++
			if b == nil {
				return s[start : p.i-1], nil
			}
			return string(b), nil
		case c < 0x20:
			return "", p.fail(p.i, "control character in quoted name (use an escape)")
		case c == '\\':
			if b == nil {
				b = append(make([]byte, 0, len(s)), s[start:p.i]...)
			}
			var err error
			b, err = p.escape(b)
			if err != nil {
				return "", err
			}
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRuneInString(s[p.i:])
			if r == utf8.RuneError && n == 1 {
				return "", p.fail(p.i, "invalid UTF-8 in quoted name")
			}
			if b != nil {
				b = append(b, s[p.i:p.i+n]...)
			}
			p.i += n
		default:
			if b != nil {
				b = append(b, c)
			}
			p.i++
		}
	}
}

// escape decodes the escape sequence at p.i (a backslash) and appends its value to b.
func (p *selParser) escape(b []byte) ([]byte, error) {
	s := p.s
	at := p.i
	if p.i+1 >= len(s) {
		return nil, p.fail(at, "unterminated escape sequence")
	}
	c := s[p.i+1]
	p.i += 2
	switch c {
	case '\\', '\'', '"', '/':
		return append(b, c), nil
	case 'b':
		return append(b, '\b'), nil
	case 'f':
		return append(b, '\f'), nil
	case 'n':
		return append(b, '\n'), nil
	case 'r':
		return append(b, '\r'), nil
	case 't':
		return append(b, '\t'), nil
	case 'u':
		r, ok := hex4(s, p.i)
		if !ok {
			return nil, p.fail(at, `\u must be followed by four hex digits`)
		}
		p.i += 4
		if r >= 0xD800 && r < 0xDC00 {
			if p.i+1 < len(s) && s[p.i] == '\\' && s[p.i+1] == 'u' {
				if r2, ok := hex4(s, p.i+2); ok && r2 >= 0xDC00 && r2 < 0xE000 {
					p.i += 6
					return utf8.AppendRune(b, (r-0xD800)<<10|(r2-0xDC00)+0x10000), nil
				}
			}
			return nil, p.fail(at, "unpaired surrogate escape in quoted name")
		}
		if r >= 0xDC00 && r < 0xE000 {
			return nil, p.fail(at, "unpaired surrogate escape in quoted name")
		}
		return utf8.AppendRune(b, r), nil
	default:
		return nil, p.fail(at, "invalid escape sequence in quoted name")
	}
}

// hex4 decodes four hex digits at s[i:].
func hex4[T string | []byte](s T, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for j := i; j < i+4; j++ {
		c := s[j]
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
