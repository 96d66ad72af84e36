package blindindex

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// vector is one entry of testdata/vectors.json, computed by an independent implementation
// (Python's hmac and hashlib, HKDF written out from RFC 5869).
type vector struct {
	Root      string   `json:"root"`
	KeyID     string   `json:"key_id"`
	Name      string   `json:"name"`
	Bits      int      `json:"bits"`
	Normalize []string `json:"normalize"`
	Value     string   `json:"value"`
	Index     string   `json:"index"`
}

func TestVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(raw, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 10 {
		t.Fatalf("only %d vectors", len(vs))
	}
	for i, v := range vs {
		t.Run(fmt.Sprintf("%d_%s_%s", i, v.KeyID, v.Name), func(t *testing.T) {
			root, err := hex.DecodeString(v.Root)
			if err != nil {
				t.Fatal(err)
			}
			n, err := ParseNorm(v.Normalize)
			if err != nil {
				t.Fatal(err)
			}
			k, err := DeriveKey(root, v.KeyID, v.Name)
			if err != nil {
				t.Fatal(err)
			}
			got, err := k.AppendJSON(nil, &Spec{Name: v.Name, Bits: v.Bits, Norm: n}, []byte(v.Value))
			if err != nil {
				t.Fatal(err)
			}
			if want := `"` + v.Index + `"`; string(got) != want {
				t.Errorf("index %s, want %s", got, want)
			}
		})
	}
}

// TestDerivationSeparates: the key id and the name are length-prefixed, so ("ab", "c") and
// ("a", "bc") get different keys; different tenants get different indexes of equal values.
func TestDerivationSeparates(t *testing.T) {
	root := make([]byte, 32)
	idx := func(keyID, name string) string {
		k, err := DeriveKey(root, keyID, name)
		if err != nil {
			t.Fatal(err)
		}
		return string(k.AppendString(nil, &Spec{Bits: 256}, "123-45-6789"))
	}
	seen := map[string]string{}
	for _, p := range [][2]string{{"ab", "c"}, {"a", "bc"}, {"t1", "ssn_idx"}, {"t2", "ssn_idx"}, {"t1", "email_idx"}} {
		got := idx(p[0], p[1])
		if prev, dup := seen[got]; dup {
			t.Errorf("%v and %s share an index", p, prev)
		}
		seen[got] = fmt.Sprint(p)
	}
	if idx("t1", "ssn_idx") != idx("t1", "ssn_idx") {
		t.Error("index is not deterministic")
	}
	if _, err := DeriveKey(root[:8], "t1", "x"); err == nil {
		t.Error("short root accepted")
	}
	k, _ := DeriveKey(root, "t1", "x")
	if s := fmt.Sprint(k); strings.Contains(s, "0") || !strings.Contains(s, "redacted") {
		t.Errorf("key prints as %q", s)
	}
}

func TestBitsTruncate(t *testing.T) {
	k, _ := DeriveKey(make([]byte, 32), "t1", "x")
	full := k.AppendString(nil, &Spec{Bits: 256}, "v")
	for _, bits := range []int{8, 16, 32, 64, 128, 256} {
		got := k.AppendString(nil, &Spec{Bits: bits}, "v")
		if want := (bits/8*8 + 5) / 6; len(got) != want {
			t.Errorf("bits %d: %d characters, want %d", bits, len(got), want)
		}
		if bits%24 == 0 && !strings.HasPrefix(string(full), string(got)) {
			t.Errorf("bits %d: %s is not a prefix of %s", bits, got, full)
		}
	}
	for _, tc := range []struct {
		bits int
		ok   bool
	}{{8, true}, {256, true}, {32, true}, {0, false}, {7, false}, {12, false}, {264, false}, {-8, false}} {
		if err := CheckBits(tc.bits); (err == nil) != tc.ok {
			t.Errorf("CheckBits(%d) = %v", tc.bits, err)
		}
	}
}

func TestCanonicalNumber(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0", "0"}, {"-0", "0"}, {"0.0", "0"}, {"0e999999999", "0"}, {"-0.000e-5", "0"},
		{"100", "100"}, {"1e2", "100"}, {"1E+2", "100"}, {"100.0", "100"}, {"10e1", "100"},
		{"1.50", "1.5"}, {"-12E-1", "-1.2"}, {"0.001", "0.001"}, {"1e-3", "0.001"},
		{"123456789012345678901234567890", "123456789012345678901234567890"},
		{"12.345e1", "123.45"}, {"12.345e5", "1234500"}, {"5e-1", "0.5"},
	} {
		got, err := CanonicalNumber(nil, []byte(tc.in))
		if err != nil || string(got) != tc.want {
			t.Errorf("CanonicalNumber(%s) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "-", "01", "1.", ".5", "1e", "1e+", "+1", "1x", "0x10", "--1", "1.2.3"} {
		if _, err := CanonicalNumber(nil, []byte(in)); !errors.Is(err, ErrNotIndexable) {
			t.Errorf("CanonicalNumber(%q): %v, want ErrNotIndexable", in, err)
		}
	}
	for _, in := range []string{"1e1025", "1e-1025", "1e99999999999999999999", "1" + strings.Repeat("0", 1100)} {
		if _, err := CanonicalNumber(nil, []byte(in)); !errors.Is(err, ErrNumberRange) {
			t.Errorf("CanonicalNumber(%.20s): %v, want ErrNumberRange", in, err)
		}
	}
}

func TestText(t *testing.T) {
	for _, raw := range []string{"null", "true", "{}", "[1]", ""} {
		if _, err := Text(nil, []byte(raw)); !errors.Is(err, ErrNotIndexable) {
			t.Errorf("Text(%s): %v", raw, err)
		}
	}
	got, err := Text(nil, []byte(`"a\u00e9\n"`))
	if err != nil || string(got) != "aé\n" {
		t.Errorf("Text = %q, %v", got, err)
	}
}

func TestNorm(t *testing.T) {
	for _, tc := range []struct {
		norm     []string
		in, want string
	}{
		{nil, " A-1 ", " A-1 "},
		{[]string{"trim"}, "\u00a0 A-1\t\n", "A-1"},
		{[]string{"lower"}, "ÉCOLE Ada", "école ada"},
		{[]string{"digits"}, "123-45-6789", "123456789"},
		{[]string{"digits"}, "abc", ""},
		{[]string{"nfc"}, "Jose\u0301", "José"},
		{[]string{"lower", "trim", "nfc"}, " E\u0301 ", "é"}, // fixed order: nfc, trim, lower
	} {
		n, err := ParseNorm(tc.norm)
		if err != nil {
			t.Fatal(err)
		}
		in := []byte(tc.in)
		if got := n.Apply(in); string(got) != tc.want {
			t.Errorf("%v(%q) = %q, want %q", tc.norm, tc.in, got, tc.want)
		}
		if string(in) != tc.in {
			t.Errorf("%v modified its input", tc.norm)
		}
	}
	for _, bad := range [][]string{{"upper"}, {"trim", "trim"}, {""}} {
		if _, err := ParseNorm(bad); err == nil {
			t.Errorf("ParseNorm(%q) accepted", bad)
		}
	}
	if n, _ := ParseNorm([]string{"digits", "nfc"}); n.String() != "nfc,digits" {
		t.Errorf("String = %q", n.String())
	}
}

// FuzzCanonicalNumber: the canonical text of a number is itself a number whose canonical text
// is the same, and it denotes the same value (checked on integers by comparing digits).
func FuzzCanonicalNumber(f *testing.F) {
	for _, s := range []string{"0", "-0", "1e2", "100.0", "1.50", "-12E-1", "0.001e3", "1e1025", "01", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := CanonicalNumber(nil, []byte(in))
		if err != nil {
			if json.Valid([]byte(in)) && isJSONNumber(in) && !errors.Is(err, ErrNumberRange) {
				t.Fatalf("valid number %q refused: %v", in, err)
			}
			return
		}
		if !isJSONNumber(in) {
			t.Fatalf("%q is not a JSON number but gave %q", in, got)
		}
		again, err := CanonicalNumber(nil, got)
		if err != nil || string(again) != string(got) {
			t.Fatalf("canonical %q of %q is not stable: %q, %v", got, in, again, err)
		}
		if len(got) > maxNumberText+3 {
			t.Fatalf("canonical text of %d bytes", len(got))
		}
	})
}

func isJSONNumber(s string) bool {
	var n json.Number
	return strings.TrimSpace(s) == s && json.Valid([]byte(s)) && json.Unmarshal([]byte(s), &n) == nil && len(s) > 0 && (s[0] == '-' || s[0] >= '0' && s[0] <= '9')
}

// BenchmarkDerive measures deriving an index key (once per body and index), against computing
// one index: rkms derives per body rather than caching derived keys across requests.
// Compare runs with benchstat.
func BenchmarkDerive(b *testing.B) {
	root := make([]byte, 32)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DeriveKey(root, "tenant-acme", "ssn_idx"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIndex(b *testing.B) {
	k, _ := DeriveKey(make([]byte, 32), "tenant-acme", "ssn_idx")
	spec := &Spec{Bits: 32, Norm: Digits}
	raw := []byte(`"123-45-6789"`)
	var dst []byte
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = k.AppendJSON(dst[:0], spec, raw)
	}
}
