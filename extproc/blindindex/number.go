package blindindex

import (
	"fmt"
	"strings"
)

// maxNumberText bounds the canonical text of a number (digits plus the zeros an exponent adds).
const maxNumberText = 1024

// CanonicalNumber appends the canonical decimal text of raw, a JSON number: no exponent, no
// leading zeros, no trailing zeros after the point, no point without a fraction, "0" for any
// zero (-0, 0.0, 0e5). It is exact (no floating point): 1e2, 100.0 and 100 all give "100",
// 1.50 gives "1.5", -12E-1 gives "-1.2". A number whose canonical text would exceed 1024 bytes
// wraps [ErrNumberRange]; text that is not a JSON number wraps [ErrNotIndexable].
func CanonicalNumber(dst, raw []byte) ([]byte, error) {
	bad := fmt.Errorf("%w: not a JSON number", ErrNotIndexable)
	i := 0
	neg := i < len(raw) && raw[i] == '-'
	if neg {
		i++
	}
	intStart := i
	for i < len(raw) && isDigit(raw[i]) {
		i++
	}
	intPart := raw[intStart:i]
	if len(intPart) == 0 || len(intPart) > 1 && intPart[0] == '0' {
		return dst, bad
	}
	var frac []byte
	if i < len(raw) && raw[i] == '.' {
		i++
		s := i
		for i < len(raw) && isDigit(raw[i]) {
			i++
		}
		if frac = raw[s:i]; len(frac) == 0 {
			return dst, bad
		}
	}
	exp := 0
	expBig := false
	if i < len(raw) && (raw[i] == 'e' || raw[i] == 'E') {
		i++
		eneg := false
		if i < len(raw) && (raw[i] == '+' || raw[i] == '-') {
			eneg = raw[i] == '-'
			i++
		}
		s := i
		for i < len(raw) && isDigit(raw[i]) {
			if exp = exp*10 + int(raw[i]-'0'); exp > maxNumberText {
				exp, expBig = maxNumberText+1, true
			}
			i++
		}
		if i == s {
			return dst, bad
		}
		if eneg {
			exp = -exp
		}
	}
	if i != len(raw) {
		return dst, bad
	}
	// The value is 0.digits x 10^point.
	digits := make([]byte, 0, len(intPart)+len(frac))
	digits = append(append(digits, intPart...), frac...)
	point := len(intPart) + exp
	for len(digits) > 0 && digits[0] == '0' {
		digits = digits[1:]
		point--
	}
	for len(digits) > 0 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
	}
	if len(digits) == 0 {
		return append(dst, '0'), nil
	}
	if expBig || point > maxNumberText || point < -maxNumberText || len(digits)+max(point, -point) > maxNumberText {
		return dst, ErrNumberRange
	}
	if neg {
		dst = append(dst, '-')
	}
	switch {
	case point <= 0:
		dst = append(dst, "0."...)
		dst = append(dst, strings.Repeat("0", -point)...)
		dst = append(dst, digits...)
	case point >= len(digits):
		dst = append(dst, digits...)
		dst = append(dst, strings.Repeat("0", point-len(digits))...)
	default:
		dst = append(dst, digits[:point]...)
		dst = append(dst, '.')
		dst = append(dst, digits[point:]...)
	}
	return dst, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
