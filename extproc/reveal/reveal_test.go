package reveal

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite testdata/tokens.json from the code (review the diff)")

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in         string
		kind       Kind
		pre, suf   int
		email, bad bool
	}{
		{in: "full", kind: Full},
		{in: "redact", kind: Redact},
		{in: "token", kind: Token},
		{in: "ciphertext", kind: Ciphertext},
		{in: "mask:last4", kind: Mask, suf: 4},
		{in: "mask:first6last4", kind: Mask, pre: 6, suf: 4},
		{in: "mask:email", kind: Mask, email: true},
		{in: "mask:keep(0,0)", kind: Mask},
		{in: "mask:keep(2,3)", kind: Mask, pre: 2, suf: 3},
		{in: "mask:keep(64,64)", kind: Mask, pre: 64, suf: 64},
		{in: "mask:keep(65,0)", bad: true},
		{in: "mask:keep(0,65)", bad: true},
		{in: "mask:keep(01,2)", bad: true},
		{in: "mask:keep(-1,2)", bad: true},
		{in: "mask:keep(+1,2)", bad: true},
		{in: "mask:keep(1, 2)", bad: true},
		{in: "mask:keep(1,2", bad: true},
		{in: "mask:keep(1)", bad: true},
		{in: "mask:keep(1,2,3)", bad: true},
		{in: "mask:keep(,)", bad: true},
		{in: "mask:keep(999999999999999999999,1)", bad: true},
		{in: "mask:last5", bad: true},
		{in: "Full", bad: true},
		{in: "", bad: true},
		{in: "mask:", bad: true},
		{in: strings.Repeat("x", 1000), bad: true},
	} {
		a, err := Parse(tc.in)
		if tc.bad {
			if err == nil || !errors.Is(err, ErrSyntax) {
				t.Errorf("Parse(%q) = %+v, %v; want an ErrSyntax", tc.in, a, err)
			}
			if len(err.Error()) > 400 {
				t.Errorf("Parse(%.20q...) error is %d bytes long", tc.in, len(err.Error()))
			}
			continue
		}
		if err != nil || a.Kind != tc.kind || a.Prefix != tc.pre || a.Suffix != tc.suf || a.Email != tc.email || a.String() != tc.in {
			t.Errorf("Parse(%q) = %+v %q, %v", tc.in, a, a.String(), err)
		}
	}
}

// maskCase is one entry of testdata/masks.json: an action, a value's JSON text and the JSON
// text expected ("" when the value is not a string: the caller redacts).
type maskCase struct {
	Action string `json:"action"`
	Value  string `json:"value"`
	Want   string `json:"want"`
	Why    string `json:"why,omitempty"`
}

func TestMaskGolden(t *testing.T) {
	data, err := os.ReadFile("testdata/masks.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []maskCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 30 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		a, err := Parse(c.Action)
		if err != nil || a.Kind != Mask {
			t.Fatalf("%s: %v", c.Action, err)
		}
		got, ok := a.AppendMask([]byte("x"), []byte(c.Value))
		switch {
		case c.Want == "" && (ok || string(got) != "x"):
			t.Errorf("%s %s = %s, want not masked (redacted): %s", c.Action, c.Value, got[1:], c.Why)
		case c.Want != "" && (!ok || string(got[1:]) != c.Want):
			t.Errorf("%s %s = %s (%v), want %s: %s", c.Action, c.Value, got[1:], ok, c.Want, c.Why)
		case c.Want != "" && !json.Valid(got[1:]):
			t.Errorf("%s %s = %s: not valid JSON", c.Action, c.Value, got[1:])
		}
		if ok {
			checkMask(t, a, []byte(c.Value), got[1:])
		}
	}
}

// checkMask checks the promises of AppendMask for value raw and its output out: a valid JSON
// string of as many code points as the value, every code point either '*' or the value's code
// point at that place, and no more kept than the action says (never the whole value unless it
// is empty or all '*').
func checkMask(t testing.TB, a Action, raw, out []byte) {
	t.Helper()
	var in, got string
	if err := json.Unmarshal(raw, &in); err != nil {
		t.Fatalf("%s: input %q is not a JSON string: %v", a, raw, err)
	}
	if err := json.Unmarshal(out, &got); err != nil || !json.Valid(out) || !utf8.Valid(out) {
		t.Fatalf("%s %q: output %q is not a valid JSON string: %v", a, raw, out, err)
	}
	ir, gr := []rune(in), []rune(got)
	if len(ir) != len(gr) {
		t.Fatalf("%s %q: output %q has %d code points, want %d", a, raw, out, len(gr), len(ir))
	}
	kept := 0
	for i := range gr {
		switch {
		case gr[i] == MaskRune && ir[i] != MaskRune:
		case gr[i] == ir[i]:
			if ir[i] != MaskRune {
				kept++
			}
		default:
			t.Fatalf("%s %q: output %q code point %d is %q, want '*' or %q", a, raw, out, i, gr[i], ir[i])
		}
	}
	limit := a.Prefix + a.Suffix
	if a.Email {
		at := strings.LastIndexByte(in, '@')
		limit = 0
		if at >= 0 {
			limit = utf8.RuneCountInString(in[at:]) + 1
		}
	}
	if kept > limit {
		t.Fatalf("%s %q: output %q keeps %d code points, more than %d", a, raw, out, kept, limit)
	}
	// Every mask hides at least one code point of a non-empty value (a '*' of the value may be
	// the one: it hides nothing, but it reveals nothing either).
	if len(ir) > 0 && !strings.ContainsRune(in, MaskRune) && kept >= len(ir) {
		t.Fatalf("%s %q: output %q reveals the whole value", a, raw, out)
	}
}

// tokenVector is one entry of testdata/tokens.json.
type tokenVector struct {
	Root  string `json:"root"`
	KeyID string `json:"key_id"`
	Value string `json:"value"` // JSON text
	Token string `json:"token"` // JSON text; "" when the value cannot be tokenized
}

func TestTokenVectors(t *testing.T) {
	root := "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	inputs := []struct{ keyID, value string }{
		{"tenant-acme", `"123-45-6789"`},
		{"tenant-globex", `"123-45-6789"`},
		{"tenant-acme", `"123-45-678\u0039"`},
		{"tenant-acme", `123456789`},
		{"tenant-acme", `"123456789"`},
		{"tenant-acme", `1.2345678900e8`},
		{"tenant-acme", `"jane.doe@example.com"`},
		{"tenant-acme", `"Zoë"`},
		{"tenant-acme", `""`},
		{"tenant-acme", `true`},
		{"tenant-acme", `{"a":1}`},
		{"tenant-acme", `[1]`},
	}
	var got []tokenVector
	for _, in := range inputs {
		rb, _ := hex.DecodeString(root)
		k, err := DeriveTokenKey(rb, in.keyID)
		if err != nil {
			t.Fatal(err)
		}
		tok, ok := k.AppendToken(nil, []byte(in.value))
		v := tokenVector{Root: root, KeyID: in.keyID, Value: in.value}
		if ok {
			v.Token = string(tok)
			if len(tok) != TokenLen+2 || !strings.HasPrefix(string(tok), `"`+TokenPrefix) {
				t.Errorf("%s %s: token %s is not %q and %d characters", in.keyID, in.value, tok, TokenPrefix, TokenLen)
			}
		}
		got = append(got, v)
	}
	if *update {
		b, _ := json.MarshalIndent(got, "", " ")
		if err := os.WriteFile("testdata/tokens.json", append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile("testdata/tokens.json")
	if err != nil {
		t.Fatal(err)
	}
	var want []tokenVector
	if err := json.Unmarshal(data, &want); err != nil {
		t.Fatal(err)
	}
	for _, v := range want {
		rb, _ := hex.DecodeString(v.Root)
		k, err := DeriveTokenKey(rb, v.KeyID)
		if err != nil {
			t.Fatal(err)
		}
		tok, ok := k.AppendToken(nil, []byte(v.Value))
		if string(tok) != v.Token || ok != (v.Token != "") {
			t.Errorf("%s %s: token %s (%v), want %s", v.KeyID, v.Value, tok, ok, v.Token)
		}
	}
	byValue := map[string]string{}
	for _, v := range want {
		byValue[v.KeyID+" "+v.Value] = v.Token
	}
	if a, g := byValue[`tenant-acme "123-45-6789"`], byValue[`tenant-globex "123-45-6789"`]; a == "" || a == g {
		t.Errorf("tenants share a token for the same value: %s %s", a, g)
	}
	if byValue[`tenant-acme "123-45-6789"`] != byValue[`tenant-acme "123-45-678\u0039"`] {
		t.Error("an escaped string does not have its decoded text's token")
	}
	if n := byValue[`tenant-acme 123456789`]; n != byValue[`tenant-acme "123456789"`] || n != byValue[`tenant-acme 1.2345678900e8`] {
		t.Error("a number does not have its canonical text's token")
	}
}

func TestTokenKeyDistinct(t *testing.T) {
	root := bytes.Repeat([]byte{7}, 32)
	a, _ := DeriveTokenKey(root, "tenant-a")
	b, _ := DeriveTokenKey(root, "tenant-b")
	other, _ := DeriveTokenKey(bytes.Repeat([]byte{8}, 32), "tenant-a")
	ta, _ := a.AppendToken(nil, []byte(`"4111111111111111"`))
	tb, _ := b.AppendToken(nil, []byte(`"4111111111111111"`))
	to, _ := other.AppendToken(nil, []byte(`"4111111111111111"`))
	ta2, _ := a.AppendToken(nil, []byte(`"4111111111111111"`))
	if bytes.Equal(ta, tb) || bytes.Equal(ta, to) || !bytes.Equal(ta, ta2) {
		t.Errorf("tokens: a %s, b %s, other root %s, a again %s", ta, tb, to, ta2)
	}
	if bytes.Contains(ta, []byte("1111")) {
		t.Errorf("token %s shows digits of the value", ta)
	}
	if _, err := DeriveTokenKey(root[:15], "x"); err == nil {
		t.Error("a 15-byte root was accepted")
	}
	if s := a.String(); strings.Contains(s, "7") {
		t.Errorf("String = %q", s)
	}
}

// BenchmarkMask is one mask of a value alone (BenchmarkRevealRatio in package extproc measures
// it against a decryption). Compare runs with benchstat.
func BenchmarkMask(b *testing.B) {
	for _, bc := range []struct{ action, value string }{
		{"mask:last4", `"123-45-6789"`},
		{"mask:email", `"jane.doe@example.com"`},
		{"mask:last4", `"Zoë Ångström-Øster 😀"`},
		{"mask:last4", `"Zo\u00eb \"\u00c5ngstr\u00f6m\""`},
	} {
		a, _ := Parse(bc.action)
		b.Run(bc.action+"/"+bc.value, func(b *testing.B) {
			dst, raw := make([]byte, 0, 256), []byte(bc.value)
			b.ReportAllocs()
			for b.Loop() {
				dst, _ = a.AppendMask(dst[:0], raw)
			}
		})
	}
}
