package envelope

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// binaryOf builds a binary form from parts, without any validation.
func binaryOf(version, mode byte, id string, keyVersion uint32, ctLen int) []byte {
	b := []byte{version, mode, byte(len(id) - 1)}
	b = append(b, id...)
	b = append(b, byte(keyVersion>>24), byte(keyVersion>>16), byte(keyVersion>>8), byte(keyVersion))
	return append(b, make([]byte, ctLen)...)
}

func TestParseAndOpenReject(t *testing.T) {
	key := testKey("tenant-acme", 1, 1)
	valid := mustSeal(t, key, Randomized, "ssn", nil, []byte(`"123-45-6789"`))
	validStr := string(valid)
	body := validStr[len(Prefix):]
	// A body whose length is 2 mod 4 ends in a character with 4 unused bits.
	short := string(mustSeal(t, key, Randomized, "ssn", nil, []byte(`"1"`)))
	if (len(short)-len(Prefix))%4 == 0 {
		t.Fatalf("test setup: want a body with a partial last quantum, got length %d", len(short)-len(Prefix))
	}
	lastBitsSet := short[:len(short)-1] + string(short[len(short)-1]+1)

	tests := []struct {
		name string
		text string
		want error
	}{
		{"empty", "", ErrMalformed},
		{"prefix only", "rkms:", ErrMalformed},
		{"other prefix", "RKMS:" + body, ErrMalformed},
		{"quoted", `"` + validStr + `"`, ErrMalformed},
		{"leading space", " " + validStr, ErrMalformed},
		{"trailing quote", validStr + `"`, ErrMalformed},
		{"trailing space", validStr + " ", ErrMalformed},
		{"trailing newline", validStr + "\n", ErrMalformed},
		{"CRLF inside", validStr[:20] + "\r\n" + validStr[20:], ErrMalformed},
		{"padding", short + strings.Repeat("=", 4-(len(short)-len(Prefix))%4), ErrMalformed},
		{"standard alphabet +", validStr[:30] + "+" + validStr[31:], ErrMalformed},
		{"standard alphabet /", validStr[:30] + "/" + validStr[31:], ErrMalformed},
		{"invalid character in header", validStr[:6] + "*" + validStr[7:], ErrMalformed},
		{"invalid last character", validStr[:len(validStr)-1] + "!", ErrMalformed},
		{"length 1 mod 4", string(encodeBinary(binaryOf(1, 1, "k", 1, 31))) + "A", ErrMalformed},
		{"non-canonical last character", lastBitsSet, ErrMalformed},
		{"too short", string(encodeBinary(binaryOf(1, 1, "k", 1, 28))), ErrMalformed},
		{"too short deterministic", string(encodeBinary(binaryOf(1, 2, "k", 1, 16))), ErrMalformed},
		{"too long", string(encodeBinary(binaryOf(1, 1, "k", 1, 28+MaxPlaintextLen+1))), ErrMalformed},
		{"too long deterministic", string(encodeBinary(binaryOf(1, 2, "k", 1, 16+MaxPlaintextLen+1))), ErrMalformed},
		{"longer than MaxTextLen", Prefix + strings.Repeat("A", MaxTextLen), ErrMalformed},
		{"key id with space", string(encodeBinary(binaryOf(1, 1, "a b", 1, 40))), ErrMalformed},
		{"key id with quote", string(encodeBinary(binaryOf(1, 1, `a"`, 1, 40))), ErrMalformed},
		{"key id with NUL", string(encodeBinary(binaryOf(1, 1, "a\x00", 1, 40))), ErrMalformed},
		{"key id longer than data", string(encodeBinary(append([]byte{1, 1, 255}, bytes.Repeat([]byte("a"), 40)...))), ErrMalformed},
		{"format version 0", string(encodeBinary(binaryOf(0, 1, "k", 1, 40))), ErrUnsupportedVersion},
		{"format version 2", string(encodeBinary(binaryOf(2, 1, "k", 1, 40))), ErrUnsupportedVersion},
		{"format version 255", string(encodeBinary(binaryOf(255, 1, "k", 1, 40))), ErrUnsupportedVersion},
		{"mode 0", string(encodeBinary(binaryOf(1, 0, "k", 1, 40))), ErrUnsupportedVersion},
		{"mode 3", string(encodeBinary(binaryOf(1, 3, "k", 1, 40))), ErrUnsupportedVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := Parse([]byte(tt.text))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse error = %v, want %v", err, tt.want)
			}
			if h != (Header{}) {
				t.Fatalf("Parse returned a header with its error: %+v", h)
			}
			got, err := Open([]byte("keep"), key, "ssn", nil, []byte(tt.text))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open error = %v, want %v", err, tt.want)
			}
			if string(got) != "keep" {
				t.Fatalf("Open changed dst on error: %q", got)
			}
		})
	}
}

func TestParseAcceptsEveryKeyIDCharacter(t *testing.T) {
	const allowed = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:/@+=-"
	key := testKey(allowed, 42, 1)
	text := mustSeal(t, key, Deterministic, "f", nil, []byte("1"))
	h, err := Parse(text)
	if err != nil || h.KeyID != allowed || h.KeyVersion != 42 {
		t.Fatalf("Parse = %+v, %v", h, err)
	}
	for c := range 256 {
		if strings.IndexByte(allowed, byte(c)) >= 0 {
			continue
		}
		bad := string(encodeBinary(binaryOf(1, 2, "a"+string(rune(c))[:1], 1, 20)))
		if c >= 0x80 {
			bad = string(encodeBinary(binaryOf(1, 2, string([]byte{'a', byte(c)}), 1, 20)))
		}
		if _, err := Parse([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("key id byte %#x: Parse error = %v, want ErrMalformed", c, err)
		}
	}
}

func TestIsCiphertext(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"rkms:", true},
		{"rkms:anything", true},
		{"rkms", false},
		{"", false},
		{`"rkms:x"`, false},
		{"RKMS:x", false},
		{" rkms:x", false},
	}
	for _, tt := range tests {
		if got := IsCiphertext([]byte(tt.in)); got != tt.want {
			t.Errorf("IsCiphertext(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestAppendBase64Concat(t *testing.T) {
	for la := range 8 {
		for lb := range 8 {
			a := bytes.Repeat([]byte{0xa5}, la)
			b := bytes.Repeat([]byte{0x3c}, lb)
			got := string(appendBase64Concat([]byte("x"), a, b))
			want := "x" + string(encodeBinary(append(bytes.Clone(a), b...)))[len(Prefix):]
			if got != want {
				t.Errorf("len(a)=%d len(b)=%d: got %q, want %q", la, lb, got, want)
			}
		}
	}
}

func TestBase64URLPairs(t *testing.T) {
	if len(base64URLPairs) != 2*4096 {
		t.Fatalf("pair table has %d bytes, want 8192", len(base64URLPairs))
	}
	for v := range 4096 {
		want := string([]byte{base64URLAlphabet[v>>6], base64URLAlphabet[v&63]})
		if got := base64URLPairs[2*v : 2*v+2]; got != want {
			t.Fatalf("pair %d = %q, want %q", v, got, want)
		}
	}
}

func TestAppendBase64MatchesStandardLibrary(t *testing.T) {
	src := make([]byte, 300)
	for i := range src {
		src[i] = byte(i*151 + i>>3) // every byte value, in no simple order
	}
	for n := range len(src) + 1 {
		for _, prefix := range []string{"", "rkms:"} {
			got := string(appendBase64([]byte(prefix), src[:n]))
			want := prefix + base64.RawURLEncoding.EncodeToString(src[:n])
			if got != want {
				t.Fatalf("%d bytes: got %q, want %q", n, got, want)
			}
		}
	}
}

func TestKeyIDChars(t *testing.T) {
	for c := range 256 {
		b := byte(c)
		want := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("._:/@+=-", b) >= 0
		if got := validKeyID([]byte{b}); got != want {
			t.Errorf("byte %#x: valid = %v, want %v", c, got, want)
		}
	}
}

func TestBase64URLValues(t *testing.T) {
	for c := range 256 {
		want := byte(0xff)
		if i := strings.IndexByte(base64URLAlphabet, byte(c)); i >= 0 {
			want = byte(i)
		}
		if got := base64URLValues[c]; got != want {
			t.Errorf("value of byte %#x = %#x, want %#x", c, got, want)
		}
	}
}

// TestDecodeBase64MatchesStandardLibrary checks decodeBase64 against the standard library on
// every length and on every single-byte corruption of a short text.
func TestDecodeBase64MatchesStandardLibrary(t *testing.T) {
	src := make([]byte, 300)
	for i := range src {
		src[i] = byte(i*151 + i>>3)
	}
	for n := range len(src) + 1 {
		text := []byte(base64.RawURLEncoding.EncodeToString(src[:n]))
		out := make([]byte, decodedLen(len(text)))
		if !decodeBase64(out, text) || !bytes.Equal(out, src[:n]) {
			t.Fatalf("%d bytes: decoded %x, want %x", n, out, src[:n])
		}
	}
	text := []byte(base64.RawURLEncoding.EncodeToString(src[:20]))
	out := make([]byte, decodedLen(len(text)))
	for i := range text {
		for c := range 256 {
			bad := bytes.Clone(text)
			bad[i] = byte(c)
			enc := base64.RawURLEncoding.Strict()
			if i == len(text)-1 {
				enc = base64.RawURLEncoding // the unused bits are checkLastQuantum's job
			}
			_, stdErr := enc.Decode(make([]byte, 30), bad)
			stdOK := stdErr == nil && c != '\r' && c != '\n' // which the standard decoder skips
			if got := decodeBase64(out, bad); got != stdOK {
				t.Fatalf("byte %d set to %#x: decodeBase64 = %v, strict standard decoder = %v", i, c, got, stdOK)
			}
		}
	}
}
