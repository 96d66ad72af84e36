package admin

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/keyring/keyringtest"
)

// mixedToken has letters of both cases, so that a comparison that folds case is caught.
const mixedToken = "Xy7-kQ2m-PLAIN-token-Zz"

// tokenVariants are near misses of tok that must all be refused: another case, one character
// changed, cut, extended, or with a character inside replaced by a space.
func tokenVariants(tok string) map[string]string {
	flip := func(s string) string {
		b := []byte(s)
		for i, c := range b {
			switch {
			case 'a' <= c && c <= 'z':
				b[i] = c - 32
			case 'A' <= c && c <= 'Z':
				b[i] = c + 32
			}
		}
		return string(b)
	}
	last := tok[len(tok)-1]
	return map[string]string{
		"upper case":          strings.ToUpper(tok),
		"lower case":          strings.ToLower(tok),
		"case swapped":        flip(tok),
		"first letter folded": flip(tok[:1]) + tok[1:],
		"last byte changed":   tok[:len(tok)-1] + string(last^1),
		"cut by one":          tok[:len(tok)-1],
		"one byte more":       tok + "x",
		"space inside":        tok[:3] + " " + tok[4:],
	}
}

// TestTokenComparedExactly: the admin token is compared byte for byte (only the "Bearer"
// scheme is case-insensitive, as HTTP defines it).
func TestTokenComparedExactly(t *testing.T) {
	h, err := newHandler(keyringtest.NewFake(), keyservice.Options{Token: mixedToken}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	do := func(auth string) int {
		req := httptest.NewRequest("GET", "/key?id=alice", nil)
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	for _, scheme := range []string{"Bearer ", "bearer ", "BEARER "} {
		if got := do(scheme + mixedToken); got != 200 {
			t.Fatalf("%q with the exact token: %d, want 200", scheme, got)
		}
	}
	for name, v := range tokenVariants(mixedToken) {
		if v == mixedToken {
			t.Fatalf("variant %s equals the token", name)
		}
		if got := do("Bearer " + v); got != 401 {
			t.Errorf("token %s (%q): %d, want 401", name, v, got)
		}
	}
}
