package envelope

import (
	"bytes"
	"testing"

	"github.com/tink-crypto/tink-go/v2/aead/aesgcm"
	"github.com/tink-crypto/tink-go/v2/insecuresecretdataaccess"
	"github.com/tink-crypto/tink-go/v2/secretdata"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// tinkGCMFor builds Tink's AES-256-GCM (NO_PREFIX) primitive from key's randomized subkey: the
// primitive the format is specified against. The subkey comes from specKey (FORMAT.md section 4
// with the standard library's HKDF), not from the package's own derivation, so that a change to
// the package's subkey cannot move the expectation with it.
func tinkGCMFor(t *testing.T, key Key) tink.AEAD {
	t.Helper()
	var dek []byte
	if err := key.Secret.Use(func(b []byte) error { dek = bytes.Clone(b); return nil }); err != nil {
		t.Fatal(err)
	}
	sub := specKey(t, dek, Randomized)
	p, err := aesgcm.NewParameters(aesgcm.ParametersOpts{
		KeySizeInBytes: gcmKeyLen, IVSizeInBytes: gcmIVLen, TagSizeInBytes: gcmTagLen, Variant: aesgcm.VariantNoPrefix,
	})
	if err != nil {
		t.Fatal(err)
	}
	k, err := aesgcm.NewKey(secretdata.NewBytesFromData(sub, insecuresecretdataaccess.Token{}), 0, p)
	if err != nil {
		t.Fatal(err)
	}
	a, err := aesgcm.NewAEAD(k)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestRandomizedIsTinkAESGCM checks both directions against Tink's AES-GCM: what Seal writes
// after the header decrypts with Tink, and what Tink encrypts opens with Open.
func TestRandomizedIsTinkAESGCM(t *testing.T) {
	key := testKey("tenant-acme", 3, 9)
	a := tinkGCMFor(t, key)
	tests := []struct {
		name, label string
		context     []byte
		plaintext   []byte
	}{
		{"string", "ssn", nil, []byte(`"123-45-6789"`)},
		{"number with context", "age", []byte("tenant-acme"), []byte(`42`)},
		{"object, 1 KiB", "doc", []byte("c"), append(append([]byte(`{"a":"`), bytes.Repeat([]byte("x"), 1000)...), `"}`...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// FORMAT.md sections 3 and 5 by hand: version 1, mode 1, len("tenant-acme")-1 = 10,
			// the id, version 3 big-endian; then the length-prefixed label and context.
			header := append([]byte{1, 1, 10}, "tenant-acme\x00\x00\x00\x03"...)
			ad := specAD(header, tt.label, tt.context)

			bin := decodeBinary(t, mustSeal(t, key, Randomized, tt.label, tt.context, tt.plaintext))
			if !bytes.Equal(bin[:len(header)], header) {
				t.Fatalf("header = %x, want %x", bin[:len(header)], header)
			}
			got, err := a.Decrypt(bin[len(header):], ad)
			if err != nil || !bytes.Equal(got, tt.plaintext) {
				t.Fatalf("Tink Decrypt of Seal's output = %q, %v; want %q", got, err, tt.plaintext)
			}

			ct, err := a.Encrypt(tt.plaintext, ad)
			if err != nil {
				t.Fatal(err)
			}
			pt, err := Open(nil, key, tt.label, tt.context, encodeBinary(append(bytes.Clone(header), ct...)))
			if err != nil || !bytes.Equal(pt, tt.plaintext) {
				t.Fatalf("Open of Tink's ciphertext = %q, %v; want %q", pt, err, tt.plaintext)
			}
		})
	}
}

// TestFailedOpenInPlaceLeavesText checks that an Open that fails authentication writes nothing
// to dst's spare capacity, even when that capacity is the text itself.
func TestFailedOpenInPlaceLeavesText(t *testing.T) {
	key := testKey("tenant-acme", 1, 1)
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			text := mustSeal(t, key, mode, "f", nil, []byte(`"secret value"`))
			want := bytes.Clone(text)
			if _, err := Open(text[:0], key, "other-label", nil, text); err != ErrAuthentication {
				t.Fatalf("Open with the wrong label: %v, want ErrAuthentication", err)
			}
			if !bytes.Equal(text, want) {
				t.Fatalf("failed Open changed its input:\n got %s\nwant %s", text, want)
			}
		})
	}
}
