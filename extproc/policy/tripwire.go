package policy

import (
	"bytes"
	"cmp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/rkms/rkms/extproc/jsonfield"
)

// CiphertextMarker is the prefix of every rkms ciphertext (envelope.Prefix). A client never
// holds a ciphertext on its way in, so an inbound message carrying one outside the values the
// policy encrypts is an attempt to have a response decrypt it.
const CiphertextMarker = "rkms:"

// Guard checks one inbound body of a policy for tripwires. Make one per body with
// [Policy.Guard] and pass its Check method to [jsonfield.Plan.RewriteChecked] or
// [jsonfield.Plan.Inspect]. It is not safe for concurrent use.
type Guard struct {
	p       *Policy
	doc     []byte
	name    []byte   // folded member name
	allowed [][2]int // spans of the values the allow selectors select, found once per body
	found   bool     // allowed is computed for doc
}

// Guard returns the tripwire check for doc, a body of one of p's inbound directions.
func (p *Policy) Guard(doc []byte) Guard { return Guard{p: p, doc: doc} }

// Reset makes g check doc, a body of one of p's inbound directions, keeping its scratch
// memory: a caller that checks many bodies keeps one Guard (and one bound Check method).
func (g *Guard) Reset(p *Policy, doc []byte) {
	if cap(g.allowed) > maxKeptSpans { // a pooled guard keeps no more than a typical body's
		g.allowed = nil
	}
	g.p, g.doc, g.allowed, g.found = p, doc, g.allowed[:0], false
}

// maxKeptSpans bounds the allowed-span scratch a Guard keeps across bodies.
const maxKeptSpans = 1024

// Check is called for every member name and string value outside the selected values. It
// refuses, with an [*Error] naming the JSON path (never a value):
//   - a string or member name holding the ciphertext marker: the policy encrypts the values
//     that reach the application, so no ciphertext may come in anywhere else;
//   - a member named like one of the policy's fields (its label or the last member name of its
//     selector; escapes decoded, case folded) whose value the policy does not encrypt here and
//     that no allow selector covers: a shape the selectors do not foresee (a list where an
//     object was expected, a nested copy) must not carry tagged plaintext to the application.
func (g *Guard) Check(o *jsonfield.Outside) error {
	if containsMarker(o.Text) {
		if o.Name { // its path would quote the name
			return &Error{Reason: BadInput, Msg: "a ciphertext is not accepted as a member name: clients never send ciphertexts"}
		}
		return &Error{Reason: BadInput, Msg: "a ciphertext is not accepted at " + g.path(o.Offset) + ": clients never send ciphertexts"}
	}
	if !o.Name || o.Covered {
		return nil
	}
	label, tagged := g.taggedLabel(o.Text)
	if !tagged {
		return nil
	}
	if g.isAllowed(o.Offset) {
		return nil
	}
	return &Error{Reason: BadInput, Msg: "field " + g.path(o.Offset) + " has the name of tagged field " + label +
		" but is not encrypted by this policy: send it where the policy encrypts it"}
}

// containsMarker is bytes.Contains(s, []byte(CiphertextMarker)) for the short strings of a
// body, which it searches for the marker's last byte, the rarer ':', rather than the whole
// marker: that costs less than bytes.Index's setup on every string.
func containsMarker(s []byte) bool {
	const last = len(CiphertextMarker) - 1
	for len(s) > last {
		k := bytes.IndexByte(s[last:], CiphertextMarker[last])
		if k < 0 {
			return false
		}
		if string(s[k:k+last]) == CiphertextMarker[:last] {
			return true
		}
		s = s[k+1:]
	}
	return false
}

// isAllowed reports whether an allow selector covers the member whose name starts at off: the
// name lies inside an allowed value, or the member's value is one. The allowed values are
// found with one walk of the body, on the first tagged name that needs them, so a body with
// many allowed names costs one walk, not one per name.
func (g *Guard) isAllowed(off int) bool {
	if g.p.allow == nil {
		return false
	}
	if !g.found {
		g.found = true
		if _, err := g.p.allow.VisitAt(g.doc, func(_ *jsonfield.Field, at int, raw []byte) error {
			g.allowed = append(g.allowed, [2]int{at, at + len(raw)})
			return nil
		}); err != nil {
			g.allowed = g.allowed[:0]
		}
	}
	if len(g.allowed) == 0 {
		return false
	}
	val := valueAfterName(g.doc, off)
	for _, at := range [2]int{off, val} {
		// The spans are the outermost selected values, in document order and disjoint.
		i, _ := slices.BinarySearchFunc(g.allowed, at, func(sp [2]int, x int) int { return cmp.Compare(sp[0], x) })
		if i < len(g.allowed) && g.allowed[i][0] == at {
			return true
		}
		if i > 0 && at < g.allowed[i-1][1] {
			return true
		}
	}
	return false
}

// valueAfterName returns the offset of the value of the member whose name (a JSON string in
// a valid document) starts at off.
func valueAfterName(doc []byte, off int) int {
	i := off + 1
	for i < len(doc) && doc[i] != '"' {
		if doc[i] == '\\' {
			i++
		}
		i++
	}
	for i++; i < len(doc) && (doc[i] == ':' || doc[i] == ' ' || doc[i] == '\t' || doc[i] == '\n' || doc[i] == '\r'); i++ {
	}
	return i
}

// taggedLabel returns the label of the policy field a member name (decoded) is named like.
func (g *Guard) taggedLabel(name []byte) (string, bool) {
	if !isASCII(name) {
		g.name = tripNameRunes(g.name[:0], name)
	} else {
		// Most member names are ASCII and not tagged: most have a length no tagged name has.
		name = trimASCII(name)
		if g.p.taggedLens&lenBit(len(name)) == 0 {
			return "", false
		}
		g.name = upperASCII(g.name[:0], name)
	}
	label, ok := g.p.tagged[string(g.name)]
	return label, ok
}

// lenBit is the bit of Policy.taggedLens for a name of n bytes.
func lenBit(n int) uint64 { return 1 << min(n, 63) }

// tripName appends the form in which the tripwire compares member names: surrounding white
// space trimmed (some binders trim keys), then every rune mapped to upper case, to lower case
// and to the smallest rune of its case-folding orbit, so that names that .NET's, Java's or Go's
// case-insensitive comparisons take for a tagged name ("SSN", "ſsn", "emaıl") all compare
// equal to it. It is wider than the selectors' own folding on purpose: a near miss is refused.
// buf is scratch space, overwritten (folding in place is safe: a rune never folds to a longer
// encoding).
func tripName(buf, name []byte) []byte {
	if isASCII(name) {
		return tripNameASCII(buf, name)
	}
	return tripNameRunes(buf, name)
}

// tripNameASCII is tripName for a name of ASCII bytes only, the common case, without decoding
// runes: there, bytes.TrimSpace trims only ASCII white space, and upper-then-lower casing and
// folding map a-z to A-Z and leave every other byte as it is (FuzzTripName compares it with
// tripNameRunes).
func tripNameASCII(buf, name []byte) []byte { return upperASCII(buf, trimASCII(name)) }

// upperASCII appends name to buf[:0] with a-z mapped to A-Z.
func upperASCII(buf, name []byte) []byte {
	buf = buf[:0]
	for _, c := range name {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		buf = append(buf, c)
	}
	return buf
}

// trimASCII is bytes.TrimSpace for ASCII text: it trims \t, \n, \v, \f, \r and space.
func trimASCII(b []byte) []byte {
	for len(b) > 0 && isASCIISpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isASCIISpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isASCIISpace(c byte) bool { return c == ' ' || '\t' <= c && c <= '\r' }

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// tripNameRunes is tripName for any UTF-8 text.
func tripNameRunes(buf, name []byte) []byte {
	buf = buf[:0]
	for _, r := range string(bytes.TrimSpace(name)) {
		buf = utf8.AppendRune(buf, unicode.ToLower(unicode.ToUpper(r)))
	}
	return jsonfield.Fold(buf[:0], buf)
}

func (g *Guard) path(off int) string {
	p, err := jsonfield.PathAt(g.doc, off)
	if err != nil {
		return "(unknown path)"
	}
	return shortPath(p)
}

// CheckHeaders refuses, on a policy route, a request whose path, query or header values carry
// the ciphertext marker (plain, or with its colon percent-encoded): an application that echoes
// them into a decrypted response field would decrypt a stolen ciphertext for the client.
func CheckHeaders(h Headers) error {
	for i := range h.Len() {
		name, v := h.At(i)
		if hasMarker(v) {
			return badInput("a ciphertext is not accepted in the request's %s", headerWhere(name))
		}
	}
	return nil
}

func headerWhere(name string) string {
	if name == ":path" {
		return "path or query"
	}
	if !isToken(strings.TrimPrefix(name, ":")) || len(name) > 64 {
		return "headers"
	}
	return "header " + name
}

func hasMarker(v string) bool {
	if strings.Contains(v, CiphertextMarker) {
		return true
	}
	if strings.IndexByte(v, '%') < 0 {
		return false
	}
	d := percentDecode(percentDecode(v))
	return strings.Contains(d, CiphertextMarker)
}
