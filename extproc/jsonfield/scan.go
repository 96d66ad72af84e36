package jsonfield

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// The scanning primitives below work on the raw document and report offsets; none of them
// allocates. Error messages never quote document bytes.

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

func syntaxErr(off int, msg string) error { return &SyntaxError{Offset: off, Msg: msg} }

// skipWS returns the offset of the first byte at or after i that is not JSON whitespace.
func skipWS(doc []byte, i int) int {
	for ; i < len(doc); i++ {
		if c := doc[i]; c > ' ' || (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			return i
		}
	}
	return i
}

// scanString validates the string starting at doc[i] == '"' and returns the offset just past its
// closing quote, and whether it contains escape sequences.
func scanString(doc []byte, i int) (end int, esc bool, err error) {
	start := i
	i++
	n := len(doc)
	for {
		// Skip runs of plain bytes eight at a time: a word is plain when none of its bytes is
		// below 0x20, a quote, a backslash or non-ASCII. The lowest flagged byte is exact
		// (borrows only propagate upwards), so jump straight to it.
		for i+8 <= n {
			x := binary.LittleEndian.Uint64(doc[i:])
			if mask := (quoteOrBackslash(x) | (x-0x20*lsb)&^x | x) & msb; mask != 0 {
				i += bits.TrailingZeros64(mask) >> 3
				break
			}
			i += 8
		}
		if i >= n {
			return 0, false, syntaxErr(start, "unterminated string")
		}
		switch c := doc[i]; {
		case c == '"':
			return i + 1, esc, nil
		case c == '\\':
			esc = true
			if i+1 >= n {
				return 0, false, syntaxErr(start, "unterminated string")
			}
			switch doc[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if _, ok := hex4(doc, i+2); !ok {
					return 0, false, syntaxErr(i, "invalid \\u escape in string")
				}
				i += 6
			default:
				return 0, false, syntaxErr(i, "invalid escape sequence in string")
			}
		case c < 0x20:
			return 0, false, syntaxErr(i, "control character in string")
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(doc[i:])
			if r == utf8.RuneError && size == 1 {
				return 0, false, syntaxErr(i, "invalid UTF-8 in string")
			}
			i += size
		default:
			i++
		}
	}
}

// quoteOrBackslash flags (in the top bit of each byte, among other bits) the bytes of x that are
// '"' or '\\'. The lowest flagged byte is exact: borrows only propagate upwards.
func quoteOrBackslash(x uint64) uint64 {
	q := x ^ ('"' * lsb)
	b := x ^ ('\\' * lsb)
	return (q-lsb)&^q | (b-lsb)&^b
}

// stringEnd is scanString for a document already validated: it returns the offset just past the
// closing quote of the string starting at doc[i] == '"', and whether it has escape sequences.
func stringEnd(doc []byte, i int) (end int, esc bool) {
	i++
	for {
		for i+8 <= len(doc) {
			if mask := quoteOrBackslash(binary.LittleEndian.Uint64(doc[i:])) & msb; mask != 0 {
				i += bits.TrailingZeros64(mask) >> 3
				break
			}
			i += 8
		}
		switch doc[i] {
		case '"':
			return i + 1, esc
		case '\\':
			esc = true
			i += 2 // the escaped byte; the hex digits of \uXXXX are plain
		default:
			i++
		}
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanNumber validates the number starting at doc[i] and returns the offset just past it.
// Whatever follows is checked by the caller (it must be a delimiter).
func scanNumber(doc []byte, i int) (int, error) {
	start := i
	n := len(doc)
	if doc[i] == '-' {
		i++
	}
	switch {
	case i < n && doc[i] == '0':
		i++
	case i < n && doc[i] >= '1' && doc[i] <= '9':
		i++
		for i < n && isDigit(doc[i]) {
			i++
		}
	default:
		return 0, syntaxErr(start, "invalid number")
	}
	if i < n && doc[i] == '.' {
		i++
		if i >= n || !isDigit(doc[i]) {
			return 0, syntaxErr(start, "invalid number")
		}
		for i < n && isDigit(doc[i]) {
			i++
		}
	}
	if i < n && (doc[i] == 'e' || doc[i] == 'E') {
		i++
		if i < n && (doc[i] == '+' || doc[i] == '-') {
			i++
		}
		if i >= n || !isDigit(doc[i]) {
			return 0, syntaxErr(start, "invalid number")
		}
		for i < n && isDigit(doc[i]) {
			i++
		}
	}
	return i, nil
}

// scanScalar validates the string, number or literal starting at doc[i] (i < len(doc)) and returns
// the offset just past it. It reports "expected a value" for anything else, including { and [.
func scanScalar(doc []byte, i int) (int, error) {
	switch c := doc[i]; {
	case c == '"':
		end, _, err := scanString(doc, i)
		return end, err
	case c == '-' || isDigit(c):
		return scanNumber(doc, i)
	case c == 't':
		return scanLiteral(doc, i, "true")
	case c == 'f':
		return scanLiteral(doc, i, "false")
	case c == 'n':
		return scanLiteral(doc, i, "null")
	default:
		return 0, syntaxErr(i, "expected a value")
	}
}

func scanLiteral(doc []byte, i int, lit string) (int, error) {
	if len(doc)-i < len(lit) || string(doc[i:i+len(lit)]) != lit {
		return 0, syntaxErr(i, "invalid literal")
	}
	return i + len(lit), nil
}

// afterKey validates the ':' that follows an object key ending at end and returns the offset of
// the member's value.
func afterKey(doc []byte, end int) (int, error) {
	i := skipWS(doc, end)
	if i >= len(doc) || doc[i] != ':' {
		return 0, syntaxErr(i, "expected : after object key")
	}
	i = skipWS(doc, i+1)
	if i >= len(doc) {
		return 0, syntaxErr(i, "unexpected end of input")
	}
	return i, nil
}

// skip is skipValue on the scanner's document, reusing its container stack.
func (sc *scanner) skip(i, depth int, rec *recorder) (int, error) {
	end, kinds, err := skipValue(sc.doc, i, depth, sc.maxDepth, sc.kinds, rec)
	sc.kinds = kinds
	return end, err
}

// skipValue validates the value starting at doc[i] (not whitespace) and returns the offset just
// past it. depth is the number of containers already open around it. kinds is scratch space for
// the container stack, returned (perhaps grown) for reuse. It does no matching, so it is the fast
// path for every part of the document that no selector can reach. When rec is not nil, it records
// every string it passes.
func skipValue(doc []byte, i, depth, maxDepth int, kinds []byte, rec *recorder) (int, []byte, error) {
	n := len(doc)
	kinds = kinds[:0]
	var err error
	for {
		// i is at the first byte of a value.
		if i >= n {
			return 0, kinds, syntaxErr(i, "unexpected end of input")
		}
		c := doc[i]
		if c == '{' || c == '[' {
			if depth++; depth > maxDepth {
				return 0, kinds, depthErr(i, maxDepth)
			}
			i = skipWS(doc, i+1)
			if i < n && doc[i] == c+2 { // '{'+2 == '}', '['+2 == ']'
				i++
				depth--
			} else {
				kinds = append(kinds, c)
				if c == '{' {
					if i, err = skipKey(doc, i, rec); err != nil {
						return 0, kinds, err
					}
				} else if i >= n {
					return 0, kinds, syntaxErr(i, "unexpected end of input")
				}
				continue
			}
		} else if c == '"' {
			start := i
			var esc bool
			if i, esc, err = scanString(doc, i); err != nil {
				return 0, kinds, err
			}
			if rec != nil {
				rec.add(start, i, strFlags(esc, false, false))
			}
		} else if i, err = scanScalar(doc, i); err != nil {
			return 0, kinds, err
		}
		// After a value: close containers until one has another element.
		for {
			if len(kinds) == 0 {
				return i, kinds, nil
			}
			i = skipWS(doc, i)
			if i >= n {
				return 0, kinds, syntaxErr(i, "unexpected end of input")
			}
			k := kinds[len(kinds)-1]
			c := doc[i]
			if c == ',' {
				i = skipWS(doc, i+1)
				if k == '{' {
					if i, err = skipKey(doc, i, rec); err != nil {
						return 0, kinds, err
					}
				}
				break
			}
			if c != k+2 {
				return 0, kinds, delimErr(doc, i, k)
			}
			kinds = kinds[:len(kinds)-1]
			depth--
			i++
		}
	}
}

// skipKey validates an object key at doc[i] and the ':' after it, and returns the offset of the
// member's value. When rec is not nil, it records the key.
func skipKey(doc []byte, i int, rec *recorder) (int, error) {
	if i >= len(doc) || doc[i] != '"' {
		return 0, syntaxErr(i, "expected string for object key")
	}
	end, esc, err := scanString(doc, i)
	if err != nil {
		return 0, err
	}
	if rec != nil {
		rec.add(i, end, strFlags(esc, true, false))
	}
	return afterKey(doc, end)
}

func delimErr(doc []byte, i int, kind byte) error {
	if i >= len(doc) {
		return syntaxErr(i, "unexpected end of input")
	}
	if kind == '{' {
		return syntaxErr(i, "expected , or } after object member")
	}
	return syntaxErr(i, "expected , or ] after array element")
}
