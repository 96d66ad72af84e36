package envelope

import (
	"bytes"
	"encoding/base64"
	"testing"

	"github.com/rkms/rkms/secret"
)

// testKey makes a key whose data key bytes are seed, seed+1, ... so tests are reproducible.
func testKey(id string, version uint32, seed byte) Key {
	b := make([]byte, DataKeyLen)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return Key{ID: id, Version: version, Secret: secret.New(b)}
}

// withSecretOf returns a key named id/version that holds the same data key bytes as k.
func withSecretOf(t testing.TB, id string, version uint32, k Key) Key {
	t.Helper()
	var b []byte
	if err := k.Secret.Use(func(s []byte) error { b = bytes.Clone(s); return nil }); err != nil {
		t.Fatal(err)
	}
	return Key{ID: id, Version: version, Secret: secret.New(b)}
}

func mustSeal(t testing.TB, key Key, mode Mode, label string, context, plaintext []byte) []byte {
	t.Helper()
	ct, err := Seal(nil, key, mode, label, context, plaintext)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return ct
}

// decodeBinary returns the binary form of a text, with no validation beyond base64.
func decodeBinary(t testing.TB, text []byte) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(string(text[len(Prefix):]))
	if err != nil {
		t.Fatalf("decode %q: %v", text, err)
	}
	return b
}

func encodeBinary(b []byte) []byte {
	return []byte(Prefix + base64.RawURLEncoding.EncodeToString(b))
}

// rewriteHeader replaces the header of a sealed text with one for another key id and version.
func rewriteHeader(t testing.TB, text []byte, id string, version uint32) []byte {
	t.Helper()
	bin := decodeBinary(t, text)
	oldHeader := headerFixedLen + int(bin[2]) + 1
	nb := appendHeader(nil, Mode(bin[1]), id, version)
	return encodeBinary(append(nb, bin[oldHeader:]...))
}
