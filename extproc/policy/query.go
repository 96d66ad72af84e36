package policy

import (
	"strings"

	"github.com/rkms/rkms/extproc/blindindex"
)

// maxQueryParts bounds the query components RewriteQuery reads.
const maxQueryParts = 256

// RewriteQuery turns the index_query parameters of a request target (the :path, query
// included) into their blind indexes: `param=VALUE` becomes `INDEX=<index>`, where index
// computes the index of VALUE (its error is returned as is) (decoded as application/x-www-form-urlencoded: percent escapes,
// '+' as space) under spec. It returns the new target and whether it changed. Everything else
// is kept byte for byte.
//
// It fails closed, with an [*Error] (400) that names the parameter, never its value, when the
// plaintext could reach the application some other way: the parameter given twice; a spelling
// that some application could read as the parameter but that is not its plain form (percent
// escapes or case variants in the name when the policy is case-sensitive, a "param[]" array
// form, a ';' separator, double percent-encoding); a parameter named like the index itself
// (only rkms computes indexes: a client's value is never passed); a fragment; a malformed escape;
// more than 256 components.
func (p *Policy) RewriteQuery(target string, index func(spec *blindindex.Spec, value string) (string, error)) (string, bool, error) {
	if len(p.queries) == 0 {
		return target, false, nil
	}
	path, query, hasQuery := strings.Cut(target, "?")
	if strings.IndexByte(target, '#') >= 0 {
		return "", false, badInput("a fragment is not accepted in the request target of a lookup route")
	}
	if !hasQuery {
		return target, false, nil
	}
	parts := strings.Split(query, "&")
	if len(parts) > maxQueryParts {
		return "", false, badInput("the query has more than %d parameters", maxQueryParts)
	}
	seen := make([]bool, len(p.queries))
	changed := false
	for i, part := range parts {
		rawName, rawValue, _ := strings.Cut(part, "=")
		name, ok := formDecode(rawName)
		if !ok {
			return "", false, badInput("malformed percent escape in the query")
		}
		q, isIndex := p.queryMatch(name)
		switch {
		case isIndex:
			return "", false, badInput("query parameter %s is computed by rkms from its plaintext parameter: it cannot be sent", q.Spec.Name)
		case q != nil:
			k := q.index
			if seen[k] {
				return "", false, badInput("query parameter %s must be given once", q.Param)
			}
			seen[k] = true
			value, ok := formDecode(rawValue)
			if !ok {
				return "", false, badInput("malformed percent escape in the query")
			}
			idx, err := index(q.Spec, value)
			if err != nil {
				return "", false, err
			}
			parts[i] = q.Spec.Name + "=" + idx
			changed = true
		default:
			if q := p.looseQueryMatch(part); q != "" {
				return "", false, badInput("ambiguous query parameter: some application could read it as %s; send %s plainly", q, q)
			}
		}
	}
	if !changed {
		return target, false, nil
	}
	return path + "?" + strings.Join(parts, "&"), true, nil
}

// queryRef is a query index matched by a parameter name.
type queryRef struct {
	QueryIndex
	index int
}

// queryMatch finds the index_query entry whose parameter (or index name, isIndex) a decoded
// parameter name is: exactly, or under case folding unless the policy is case-sensitive.
func (p *Policy) queryMatch(name string) (*queryRef, bool) {
	eq := strings.EqualFold
	if p.caseSens {
		eq = func(a, b string) bool { return a == b }
	}
	for i, q := range p.queries {
		if eq(name, q.Param) {
			return &queryRef{q, i}, false
		}
	}
	for i, q := range p.queries {
		if eq(name, q.Spec.Name) {
			return &queryRef{q, i}, true
		}
	}
	return nil, false
}

// looseQueryMatch returns the index_query parameter (or index name) that a query component
// could stand for once read the loosest way an application might: percent escapes decoded
// twice, '+' as space, control characters dropped, ';' as a separator, "name[...]" as name, white space trimmed, case
// folded (tripName). "" when none.
func (p *Policy) looseQueryMatch(part string) string {
	loose := strings.Map(func(r rune) rune {
		switch {
		case r == '+':
			return ' '
		case r < 0x20 || r == 0x7f:
			return -1 // dropped, as some readers drop control characters
		}
		return r
	}, percentDecode(percentDecode(part)))
	for _, sub := range strings.FieldsFunc(loose, func(r rune) bool { return r == ';' || r == '&' }) {
		name, _, _ := strings.Cut(sub, "=")
		if i := strings.IndexByte(name, '['); i >= 0 {
			name = name[:i]
		}
		folded := string(tripName(nil, []byte(name)))
		for _, q := range p.queries {
			for _, n := range []string{q.Param, q.Spec.Name} {
				if folded == string(tripName(nil, []byte(n))) {
					return n
				}
			}
		}
	}
	return ""
}

// formDecode decodes application/x-www-form-urlencoded text: percent escapes, '+' as space.
// A '%' not followed by two hex digits is an error.
func formDecode(s string) (string, bool) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, true
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '+':
			b.WriteByte(' ')
		case '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return "", false
			}
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}
