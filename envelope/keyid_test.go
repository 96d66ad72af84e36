package envelope_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/secret"
)

// TestValidateKeyID is the table of the key id rule; keyring and the ext_proc policies call
// ValidateKeyID, so this is the one place it is tested in full.
func TestValidateKeyID(t *testing.T) {
	tests := []struct {
		name, id string
		wantErr  string // "" when valid
	}{
		{"simple", "customer-42", ""},
		{"all punctuation", "a.b_c:d/e@f+g=h-i", ""},
		{"one byte", "x", ""},
		{"max length", strings.Repeat("a", envelope.MaxKeyIDLen), ""},
		{"empty", "", "invalid key id: empty"},
		{"too long", strings.Repeat("a", envelope.MaxKeyIDLen+1), "invalid key id: 257 bytes, at most 256 allowed"},
		{"space", "a b", "invalid key id: byte 0x20 at offset 1 is not allowed"},
		{"nul", "a\x00b", "invalid key id: byte 0x00 at offset 1 is not allowed"},
		{"unicode", "clé", "invalid key id: byte 0xc3 at offset 2 is not allowed"},
		{"comma", "a,b", "invalid key id: byte 0x2c at offset 1 is not allowed"},
		{"star", "a*", "invalid key id: byte 0x2a at offset 1 is not allowed"},
		{"newline", "a\n", "invalid key id: byte 0x0a at offset 1 is not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := envelope.ValidateKeyID(tt.id)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateKeyID(%q) = %v, want nil", tt.id, err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr || !errors.Is(err, envelope.ErrInvalidKeyID) {
				t.Fatalf("ValidateKeyID(%q) = %v, want %q wrapping ErrInvalidKeyID", tt.id, err, tt.wantErr)
			}
		})
	}
}

// TestIsKeyIDByteAgreesWithValidateKeyID: the byte class templates check literals with is the
// class ValidateKeyID applies.
func TestIsKeyIDByteAgreesWithValidateKeyID(t *testing.T) {
	for c := range 256 {
		b := byte(c)
		if got, want := envelope.IsKeyIDByte(b), envelope.ValidateKeyID(string([]byte{b})) == nil; got != want {
			t.Errorf("byte %#x: IsKeyIDByte = %v, ValidateKeyID accepts = %v", c, got, want)
		}
	}
}

// TestSealRefusesInvalidKeyIDWithTheRulesError: Seal applies the same rule and error.
func TestSealRefusesInvalidKeyIDWithTheRulesError(t *testing.T) {
	key := envelope.Key{ID: "a b", Version: 1, Secret: secret.New(make([]byte, envelope.DataKeyLen))}
	_, err := envelope.Seal(nil, key, envelope.Randomized, "ssn", nil, []byte(`1`))
	if !errors.Is(err, envelope.ErrInvalidKeyID) {
		t.Fatalf("Seal with key id %q: %v, want an error wrapping ErrInvalidKeyID", key.ID, err)
	}
}
