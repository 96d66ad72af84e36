package reveal

import (
	"bytes"
	"slices"
	"unicode/utf8"
)

// MaskRune replaces every code point a mask does not keep.
const MaskRune = '*'

// AppendMask appends to dst the JSON string of raw masked by a (a Mask action), and reports
// whether raw was a valid JSON string (quotes included). When it was not (a number, an object,
// an invalid string), dst is returned unchanged and the caller redacts. raw may alias dst's
// unused capacity only if it lies wholly before len(dst) (it is read while dst grows).
//
// The mask works on the decoded text and counts Unicode code points (not bytes, not grapheme
// clusters): each masked code point becomes one '*', so the output has as many code points as
// the value; kept code points are re-escaped ('"', '\\', control characters, U+2028, U+2029;
// an invalid UTF-8 byte or lone surrogate escape becomes U+FFFD). With keep(P,S) the first P
// and last S code points are kept, and a value of P+S code points or fewer is masked whole.
// With email, the value is split at its last '@': the first code point of the local part and
// the whole domain are kept when the local part has at least 2 code points; a local part of
// one code point is masked; a value without '@', with an empty local part or an empty domain
// is masked whole.
func (a Action) AppendMask(dst, raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return dst, false
	}
	s := raw[1 : len(raw)-1]
	switch strClass(s) {
	case classInvalid:
		return dst, false
	case classASCII: // code points are bytes, and need no escape
		at := -1
		if a.Email {
			at = bytes.LastIndexByte(s, '@')
		}
		lo, hi := a.span(len(s), at)
		dst = slices.Grow(dst, len(s)+2)
		dst = append(dst, '"')
		dst = append(dst, s[:lo]...)
		dst = appendStars(dst, hi-lo)
		dst = append(dst, s[hi:]...)
		return append(dst, '"'), true
	case classUTF8:
		return a.maskUnescaped(dst, s), true
	}
	// Escapes. Pass 1: validate, count code points and find the last '@'.
	n, at := 0, -1
	for i := 0; i < len(s); {
		r, next, ok := nextRune(s, i)
		if !ok {
			return dst, false
		}
		if r == '@' {
			at = n
		}
		n++
		i = next
	}
	lo, hi := a.span(n, at)
	dst = append(dst, '"')
	for i, k := 0, 0; i < len(s); k++ {
		r, next, _ := nextRune(s, i)
		i = next
		if k < lo || k >= hi {
			dst = appendRune(dst, r)
		} else {
			dst = append(dst, MaskRune)
		}
	}
	return append(dst, '"'), true
}

// Classes of the inside of a JSON string (strClass).
const (
	classASCII   = iota // printable ASCII without escapes
	classUTF8           // no escapes, some bytes >= 0x80
	classEscaped        // has a backslash (the escapes are checked by nextRune)
	classInvalid        // a control character or '"': not the inside of a JSON string
)

// byteClass is each byte's class for strClass: invalid, escape, non-ASCII or plain.
var byteClass = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c < 0x20 || c == '"':
			t[c] = classInvalid
		case c == '\\':
			t[c] = classEscaped
		case c >= utf8.RuneSelf:
			t[c] = classUTF8
		}
	}
	return t
}()

// strClass returns the class of s: invalid at a control character or '"' before any
// backslash, escaped at the first backslash (nextRune checks the rest: a '"' after a backslash
// may be an escaped one), else UTF-8 when a byte is not ASCII, else ASCII.
func strClass(s []byte) int {
	c := uint8(classASCII)
	for _, b := range s {
		if k := byteClass[b]; k > c {
			if k >= classEscaped {
				return int(k)
			}
			c = k
		}
	}
	return int(c)
}

const stars = "****************************************************************"

// appendStars appends n MaskRunes.
func appendStars(dst []byte, n int) []byte {
	for n > len(stars) {
		dst = append(dst, stars...)
		n -= len(stars)
	}
	return append(dst, stars[:n]...)
}

// span returns the code points a mask hides in a value of n code points whose last '@' is code
// point at (-1: none): those from lo to hi-1; the others are kept.
func (a Action) span(n, at int) (lo, hi int) {
	switch {
	case a.Email:
		if at <= 0 || at == n-1 {
			return 0, n
		}
		if at >= 2 { // the local part has at least two code points: keep its first
			return 1, at
		}
		return 0, at
	case n <= a.Prefix+a.Suffix:
		return 0, n
	}
	return a.Prefix, n - a.Suffix
}

// maskUnescaped is AppendMask for the inside s of a JSON string without escapes that holds
// non-ASCII bytes (strClass classUTF8). Invalid UTF-8 bytes count as one code point each (as
// utf8.RuneCount counts them) and are kept as U+FFFD.
func (a Action) maskUnescaped(dst, s []byte) []byte {
	at := -1
	if a.Email {
		if atByte := bytes.LastIndexByte(s, '@'); atByte >= 0 {
			at = utf8.RuneCount(s[:atByte])
		}
	}
	lo, hi := a.span(utf8.RuneCount(s), at)
	dst = append(dst, '"')
	i, k := 0, 0
	for ; k < lo; k++ {
		dst, i = appendKept(dst, s, i)
	}
	for ; k < hi; k++ { // skip the hidden code points
		if s[i] < utf8.RuneSelf {
			i++
		} else {
			_, size := utf8.DecodeRune(s[i:])
			i += size
		}
	}
	dst = appendStars(dst, hi-lo)
	for i < len(s) {
		dst, i = appendKept(dst, s, i)
	}
	return append(dst, '"')
}

// appendKept appends the code point of s at i, kept by a mask, and returns the index after it:
// as it is, but an invalid byte as U+FFFD and U+2028, U+2029 escaped. s holds no escapes, no
// control characters and no '"' (classUTF8).
func appendKept(dst, s []byte, i int) ([]byte, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return append(dst, c), i + 1
	}
	r, size := utf8.DecodeRune(s[i:])
	if r == utf8.RuneError || r == 0x2028 || r == 0x2029 {
		return appendRune(dst, r), i + size
	}
	return append(dst, s[i:i+size]...), i + size
}

// nextRune decodes the code point of the inside of a JSON string s at i, and returns the index
// after it. ok is false for what a JSON string cannot hold: a raw control character or '"', a
// bad escape, a trailing backslash. Invalid UTF-8 bytes and lone surrogate escapes decode to
// U+FFFD (as encoding/json does), one per byte or escape.
func nextRune(s []byte, i int) (r rune, next int, ok bool) {
	c := s[i]
	switch {
	case c < 0x20 || c == '"':
		return 0, i, false
	case c < utf8.RuneSelf && c != '\\':
		return rune(c), i + 1, true
	case c >= utf8.RuneSelf:
		r, size := utf8.DecodeRune(s[i:])
		return r, i + size, true
	}
	if i+1 >= len(s) {
		return 0, i, false
	}
	switch s[i+1] {
	case '"', '\\', '/':
		return rune(s[i+1]), i + 2, true
	case 'b':
		return '\b', i + 2, true
	case 'f':
		return '\f', i + 2, true
	case 'n':
		return '\n', i + 2, true
	case 'r':
		return '\r', i + 2, true
	case 't':
		return '\t', i + 2, true
	case 'u':
	default:
		return 0, i, false
	}
	r, ok = hex4(s, i+2)
	if !ok {
		return 0, i, false
	}
	next = i + 6
	if r >= 0xD800 && r < 0xDC00 { // a high surrogate: a low one must follow
		if next+1 < len(s) && s[next] == '\\' && s[next+1] == 'u' {
			if lo, ok := hex4(s, next+2); ok && lo >= 0xDC00 && lo < 0xE000 {
				return 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00), next + 6, true
			}
		}
		return utf8.RuneError, next, true
	}
	if r >= 0xDC00 && r < 0xE000 {
		return utf8.RuneError, next, true
	}
	return r, next, true
}

// hex4 decodes the 4 hex digits of s at i.
func hex4(s []byte, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range s[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

const hexDigits = "0123456789abcdef"

// appendRune appends r as the inside of a JSON string: escaped when JSON requires it (and for
// U+2028 and U+2029, which JavaScript would read as line ends), invalid code points as U+FFFD.
func appendRune(dst []byte, r rune) []byte {
	switch {
	case r == '"' || r == '\\':
		return append(dst, '\\', byte(r))
	case r == '\n':
		return append(dst, '\\', 'n')
	case r == '\r':
		return append(dst, '\\', 'r')
	case r == '\t':
		return append(dst, '\\', 't')
	case r < 0x20:
		return append(dst, '\\', 'u', '0', '0', hexDigits[r>>4], hexDigits[r&0xf])
	case r == 0x2028 || r == 0x2029:
		return append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
	case r < utf8.RuneSelf:
		return append(dst, byte(r))
	case !utf8.ValidRune(r):
		r = utf8.RuneError
	}
	return utf8.AppendRune(dst, r)
}

// appendText appends the decoded text of the inside of a JSON string s; ok is false when s is
// not one.
func appendText(dst, s []byte) ([]byte, bool) {
	for i := 0; i < len(s); {
		r, next, ok := nextRune(s, i)
		if !ok {
			return dst, false
		}
		if r < utf8.RuneSelf {
			dst = append(dst, byte(r))
		} else {
			dst = utf8.AppendRune(dst, r)
		}
		i = next
	}
	return dst, true
}
