package envelope

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidKeyID: a key id breaks the key id rule ([ValidateKeyID]). It is the one error of
// that rule: keyring.ErrInvalidID and the ext_proc policy's ErrInvalidKeyID are this value, so
// errors.Is matches it whichever layer refused the id. The caller's fault.
var ErrInvalidKeyID = errors.New("invalid key id")

// ValidateKeyID reports whether id is a valid key id: 1..[MaxKeyIDLen] bytes, each one of
// A-Z a-z 0-9 and . _ : / @ + = - (see [IsKeyIDByte]). The error wraps [ErrInvalidKeyID] and
// says which byte or length is wrong, without quoting the id.
//
// This is the one place the rule is written. The format owns it: a header holds the key id
// behind a one-byte length (so at most 256 bytes) and only these characters (FORMAT.md), and
// the keyring (keyring.ValidateID) and the ext_proc policies call this function.
func ValidateKeyID(id string) error {
	if len(id) == 0 {
		return fmt.Errorf("%w: empty", ErrInvalidKeyID)
	}
	if len(id) > MaxKeyIDLen {
		return fmt.Errorf("%w: %d bytes, at most %d allowed", ErrInvalidKeyID, len(id), MaxKeyIDLen)
	}
	if i := invalidKeyIDByte(id); i >= 0 {
		return fmt.Errorf("%w: byte 0x%02x at offset %d is not allowed", ErrInvalidKeyID, id[i], i)
	}
	return nil
}

// IsKeyIDByte reports whether c may appear in a key id: A-Z a-z 0-9 . _ : / @ + = -.
// Templates that build key ids from literal text check that text with it.
func IsKeyIDByte(c byte) bool {
	var ok uint64
	if c < 64 {
		ok = keyIDCharsLo >> c
	} else if c < 128 {
		ok = keyIDCharsHi >> (c - 64)
	}
	return ok&1 != 0
}

// Bit c of keyIDCharsLo (c < 64) or keyIDCharsHi (64 <= c < 128) is set when byte c may appear
// in a key id: [A-Za-z0-9._:/@+=-]. TestKeyIDChars checks them against that class.
const (
	keyIDCharsLo uint64 = 0x27ffe80000000000
	keyIDCharsHi uint64 = 0x07fffffe87ffffff
)

// validKeyID is [ValidateKeyID] without the error, for the decoder (a header's key id bytes)
// and the seal header cache.
func validKeyID[T string | []byte](id T) bool {
	return len(id) > 0 && len(id) <= MaxKeyIDLen && invalidKeyIDByte(id) < 0
}

// invalidKeyIDByte returns the offset of the first byte of id that [IsKeyIDByte] refuses, or -1.
func invalidKeyIDByte[T string | []byte](id T) int {
	for i := 0; i < len(id); i++ {
		if !IsKeyIDByte(id[i]) {
			return i
		}
	}
	return -1
}

// ReservedKeyIDPrefix starts the key ids rkms keeps for its own keys (the blind index root,
// "_rkms.index-root"). Key ids that a policy computes from a request may not start with it, in
// any ASCII case ([IsReservedKeyID]): otherwise a tenant whose claim is "_rkms.index-root" would
// make rkms seal and open with the index root.
const ReservedKeyIDPrefix = "_rkms."

// IsReservedKeyID reports whether id starts with [ReservedKeyIDPrefix], ignoring ASCII case. It
// is the one owner of the rule: the policies refuse such computed key ids, and the blind index
// root lives under one.
func IsReservedKeyID(id string) bool {
	return len(id) >= len(ReservedKeyIDPrefix) && strings.EqualFold(id[:len(ReservedKeyIDPrefix)], ReservedKeyIDPrefix)
}
