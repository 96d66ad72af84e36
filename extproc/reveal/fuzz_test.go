package reveal

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics, accepts only what it can print back, and keeps its bounds.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"full", "mask:last4", "mask:keep(2,3)", "mask:keep(64,64)", "mask:keep(65,1)", "mask:keep(1,", "mask:email", "token"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(s)
		if err != nil {
			if a.Kind != 0 {
				t.Fatalf("Parse(%q) failed but returned kind %v", s, a.Kind)
			}
			return
		}
		if a.String() != s {
			t.Fatalf("Parse(%q).String() = %q", s, a.String())
		}
		if a.Prefix < 0 || a.Suffix < 0 || a.Prefix > MaxKeep || a.Suffix > MaxKeep {
			t.Fatalf("Parse(%q) = keep(%d,%d), out of 0..%d", s, a.Prefix, a.Suffix, MaxKeep)
		}
	})
}

// FuzzMask: masking any JSON text with any mask never panics; a string gives a valid JSON
// string that keeps no more code points than the action says, in place; anything else is left
// to the caller (redacted).
func FuzzMask(f *testing.F) {
	for _, s := range []string{`"123-45-6789"`, `"jane@example.com"`, `"\ud83d\ude00\u0041"`, `"é́"`, `12`, `"a\"@b"`, `"\u2028"`, "\"\xff\xfe\"", `"\ud800\udc00\udc00"`} {
		f.Add("mask:last4", s)
		f.Add("mask:email", s)
		f.Add("mask:keep(1,1)", s)
	}
	f.Fuzz(func(t *testing.T, action, raw string) {
		a, err := Parse(action)
		if err != nil || a.Kind != Mask {
			a = Action{Kind: Mask, Prefix: len(action) % 5, Suffix: len(raw) % 5, name: "mask:fuzz"}
		}
		out, ok := a.AppendMask([]byte("pre"), []byte(raw))
		if string(out[:3]) != "pre" {
			t.Fatalf("AppendMask changed dst's prefix: %q", out)
		}
		var s string
		isString := json.Unmarshal([]byte(raw), &s) == nil && strings.HasPrefix(strings.TrimSpace(raw), `"`) && raw[0] == '"' && raw[len(raw)-1] == '"'
		if !ok {
			if len(out) != 3 {
				t.Fatalf("AppendMask(%q) = %q, not ok but wrote", raw, out)
			}
			if isString {
				t.Fatalf("AppendMask(%q): a valid JSON string was not masked", raw)
			}
			return
		}
		if !isString {
			t.Fatalf("AppendMask(%q) = %q: masked what is not a JSON string", raw, out)
		}
		checkMask(t, a, []byte(raw), out[3:])
	})
}

// FuzzToken: tokenizing any JSON text never panics and gives a fixed-length token or nothing.
func FuzzToken(f *testing.F) {
	f.Add(`"123-45-6789"`)
	f.Add(`1e5`)
	f.Add(`"\ud800"`)
	k, err := DeriveTokenKey(make([]byte, 32), "tenant")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		out, ok := k.AppendToken(nil, []byte(raw))
		if ok != (len(out) > 0) || ok && (len(out) != TokenLen+2 || !json.Valid(out)) {
			t.Fatalf("AppendToken(%q) = %q, %v", raw, out, ok)
		}
	})
}
