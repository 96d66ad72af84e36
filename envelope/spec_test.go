package envelope

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/tink-crypto/tink-go/v2/daead/subtle"

	"github.com/rkms/rkms/secret"
)

// specKey follows FORMAT.md section 4 with the standard library's HKDF, independently of the
// package's own derivation.
func specKey(t *testing.T, dek []byte, mode Mode) []byte {
	t.Helper()
	info, n := "rkms/v1 aes-256-gcm", 32
	if mode == Deterministic {
		info, n = "rkms/v1 aes-siv-cmac-512", 64
	}
	k, err := hkdf.Key(sha256.New, dek, nil, info, n)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// specAD follows FORMAT.md section 5.
func specAD(header []byte, label string, context []byte) []byte {
	ad := bytes.Clone(header)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(label)))
	ad = append(ad, label...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(context)))
	return append(ad, context...)
}

func specPrimitives(t *testing.T, dek []byte) (cipher.AEAD, *subtle.AESSIV) {
	t.Helper()
	block, err := aes.NewCipher(specKey(t, dek, Randomized))
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	siv, err := subtle.NewAESSIV(specKey(t, dek, Deterministic))
	if err != nil {
		t.Fatal(err)
	}
	return gcm, siv
}

// TestSpecDecrypt opens Seal's output by following FORMAT.md by hand with crypto/cipher and
// Tink's raw AES-SIV, and seals by hand for Open: the document and the code agree.
func TestSpecDecrypt(t *testing.T) {
	dek := bytes.Repeat([]byte{0x42}, 32)
	key := Key{ID: "tenant-acme", Version: 0x01020304, Secret: secret.New(bytes.Clone(dek))}
	gcm, siv := specPrimitives(t, dek)
	label, ctx := "ssn", []byte("tenant=acme")
	pt := []byte(`"123-45-6789"`)

	for _, mode := range modes {
		t.Run("open by hand/"+mode.String(), func(t *testing.T) {
			text := mustSeal(t, key, mode, label, ctx, pt)
			if !strings.HasPrefix(string(text), "rkms:") {
				t.Fatalf("no prefix: %q", text)
			}
			bin, err := base64.RawURLEncoding.Strict().DecodeString(string(text[5:]))
			if err != nil {
				t.Fatal(err)
			}
			wantHeader := append([]byte{1, byte(mode), 10}, "tenant-acme\x01\x02\x03\x04"...)
			if !bytes.Equal(bin[:len(wantHeader)], wantHeader) {
				t.Fatalf("header = %x, want %x", bin[:len(wantHeader)], wantHeader)
			}
			ad := specAD(wantHeader, label, ctx)
			body := bin[len(wantHeader):]
			var got []byte
			if mode == Randomized {
				got, err = gcm.Open(nil, body[:12], body[12:], ad)
			} else {
				got, err = siv.DecryptDeterministically(body, ad)
			}
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("decrypt by hand = %q, %v", got, err)
			}
		})
		t.Run("seal by hand/"+mode.String(), func(t *testing.T) {
			header := append([]byte{1, byte(mode), 10}, "tenant-acme\x01\x02\x03\x04"...)
			ad := specAD(header, label, ctx)
			var body []byte
			if mode == Randomized {
				nonce := make([]byte, 12)
				if _, err := rand.Read(nonce); err != nil {
					t.Fatal(err)
				}
				body = gcm.Seal(nonce, nonce, pt, ad)
			} else {
				var err error
				if body, err = siv.EncryptDeterministically(pt, ad); err != nil {
					t.Fatal(err)
				}
			}
			text := "rkms:" + base64.RawURLEncoding.EncodeToString(append(header, body...))
			got, err := Open(nil, key, label, ctx, []byte(text))
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("Open of a hand-sealed text = %q, %v", got, err)
			}
			if mode == Deterministic {
				if sealed := mustSeal(t, key, mode, label, ctx, pt); string(sealed) != text {
					t.Fatalf("Seal = %q, hand-sealed = %q", sealed, text)
				}
			}
		})
	}
}

// TestSizes checks the size table of FORMAT.md section 8.
func TestSizes(t *testing.T) {
	key := testKey("tenant-acme", 1, 1)
	tests := []struct {
		mode     Mode
		n        int
		wantText int
	}{
		{Randomized, 13, 84},
		{Randomized, 64, 152},
		{Randomized, 4096, 5528},
		{Deterministic, 13, 68},
		{Deterministic, 64, 136},
		{Deterministic, 4096, 5512},
	}
	for _, tt := range tests {
		text := mustSeal(t, key, tt.mode, "f", nil, bytes.Repeat([]byte("1"), tt.n))
		if len(text) != tt.wantText {
			t.Errorf("%s, %d-byte plaintext: text is %d bytes, FORMAT.md says %d", tt.mode, tt.n, len(text), tt.wantText)
		}
	}
	if MaxTextLen != 1398495 || minTextLen != 39 {
		t.Errorf("MaxTextLen = %d, minTextLen = %d; FORMAT.md says 1398495 and 39", MaxTextLen, minTextLen)
	}
	// The longest and the shortest texts an encoder makes are exactly at the limits, and a
	// decoder takes them (section 7: it accepts exactly the texts an encoder can produce).
	long := Key{ID: strings.Repeat("k", MaxKeyIDLen), Secret: key.Secret}
	short := Key{ID: "k", Secret: key.Secret}
	for _, tc := range []struct {
		name string
		key  Key
		mode Mode
		pt   []byte
		want int
	}{
		{"longest", long, Randomized, bytes.Repeat([]byte("1"), MaxPlaintextLen), MaxTextLen},
		{"shortest", short, Deterministic, []byte("1"), minTextLen},
	} {
		text := mustSeal(t, tc.key, tc.mode, "f", nil, tc.pt)
		if len(text) != tc.want {
			t.Errorf("%s text is %d bytes, want %d", tc.name, len(text), tc.want)
		}
		if h, err := Parse(text); err != nil || h.KeyID != tc.key.ID {
			t.Errorf("Parse of the %s text: %+v, %v", tc.name, h, err)
		}
		if pt, err := Open(nil, tc.key, "f", nil, text); err != nil || !bytes.Equal(pt, tc.pt) {
			t.Errorf("Open of the %s text: %v", tc.name, err)
		}
	}
}
