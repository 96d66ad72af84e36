package blindindex

import (
	"bytes"
	"fmt"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Norm is a set of normalisations applied, in this fixed order whatever the order they are
// listed in, to the text of a value before it is indexed:
//
//   - nfc: Unicode canonical composition (NFC), so that "é" typed as e + U+0301 equals U+00E9.
//   - trim: leading and trailing Unicode white space removed.
//   - lower: every letter mapped to lower case (Unicode simple mapping, strings.ToLower).
//   - digits: everything but the ASCII digits 0-9 removed ("123-45-6789" and "123 45 6789"
//     both give "123456789"). Other letters vanish too: use it only on numeric identifiers.
//
// Without normalisation the index is of the exact text.
type Norm uint8

// The normalisations, in the order they apply.
const (
	NFC Norm = 1 << iota
	Trim
	Lower
	Digits
)

var normNames = []struct {
	n    Norm
	name string
}{{NFC, "nfc"}, {Trim, "trim"}, {Lower, "lower"}, {Digits, "digits"}}

// ParseNorm reads a normalize list. Unknown or repeated names are errors.
func ParseNorm(names []string) (Norm, error) {
	var n Norm
	for i, s := range names {
		found := false
		for _, nn := range normNames {
			if nn.name == s {
				if n&nn.n != 0 {
					return 0, fmt.Errorf("normalize[%d]: %q is listed twice", i, s)
				}
				n |= nn.n
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("normalize[%d]: unknown normalisation %q (want nfc, trim, lower or digits)", i, s)
		}
	}
	return n, nil
}

// String lists the normalisations in the order they apply.
func (n Norm) String() string {
	var out []string
	for _, nn := range normNames {
		if n&nn.n != 0 {
			out = append(out, nn.name)
		}
	}
	return strings.Join(out, ",")
}

// Apply returns text normalised. It may return text itself, or a new slice (which the caller
// clears when done, as it holds plaintext); text is not modified.
func (n Norm) Apply(text []byte) []byte {
	out := text
	own := false
	set := func(b []byte) {
		if own {
			clear(out)
		}
		out, own = b, true
	}
	if n&NFC != 0 && !norm.NFC.IsNormal(out) {
		set(norm.NFC.Bytes(out))
	}
	if n&Trim != 0 {
		out = bytes.TrimFunc(out, unicode.IsSpace) // a subslice: ownership unchanged
	}
	if n&Lower != 0 {
		set(bytes.ToLower(out))
	}
	if n&Digits != 0 {
		d := make([]byte, 0, len(out))
		for _, c := range out {
			if c >= '0' && c <= '9' {
				d = append(d, c)
			}
		}
		set(d)
	}
	return out
}
