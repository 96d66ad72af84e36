package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
)

// Branch wrap format (hierarchical mode), specified in WRAP.md:
//
//	blob = format (1 byte, 0x01) || nonce (12 bytes) || AES-256-GCM(branch key, nonce, data key, ad)
//	ad   = "rkms/branch-wrap" || format || u16 len(id) || id || u32 version
//	       || u16 len(branch id) || branch id || u32 branch version      (big endian)
//
// The blob is always 1+12+32+16 = 61 bytes.
const (
	// WrapFormatV1 is the first (and only) branch wrap format byte.
	WrapFormatV1   = 0x01
	wrapNonceSize  = 12
	wrapTagSize    = 16
	wrapHeaderSize = 1 + wrapNonceSize
	// WrappedKeySize is the length of every branch-wrapped data key of format 1.
	WrappedKeySize = wrapHeaderSize + DataKeySize + wrapTagSize
	wrapADLabel    = "rkms/branch-wrap"
)

// ErrWrapAuth is the one error of a branch-wrapped data key that does not open: a damaged blob,
// an unknown format, or one made for another id, version, branch key or branch version (the
// error says "authentication failed" and nothing more).
var ErrWrapAuth = errors.New("branch-wrapped key: authentication failed")

// WrapBinding is what a branch-wrapped data key is bound to: the tenant key's id and version and
// the branch key's id and version. Opening under any other binding fails.
type WrapBinding struct {
	ID            string
	Version       uint32
	BranchID      string
	BranchVersion uint32
}

// wrapAD returns the associated data of b for format f.
func wrapAD(f byte, b WrapBinding) []byte {
	ad := make([]byte, 0, len(wrapADLabel)+1+2+len(b.ID)+4+2+len(b.BranchID)+4)
	ad = append(ad, wrapADLabel...)
	ad = append(ad, f)
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(b.ID)))
	ad = append(ad, b.ID...)
	ad = binary.BigEndian.AppendUint32(ad, b.Version)
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(b.BranchID)))
	ad = append(ad, b.BranchID...)
	ad = binary.BigEndian.AppendUint32(ad, b.BranchVersion)
	return ad
}

func wrapAEAD(branchKey []byte) (cipher.AEAD, error) {
	if len(branchKey) != DataKeySize {
		return nil, fmt.Errorf("branch key has %d bytes, want %d", len(branchKey), DataKeySize)
	}
	block, err := aes.NewCipher(branchKey)
	if err != nil {
		return nil, fmt.Errorf("branch key: %w", err)
	}
	return cipher.NewGCM(block)
}

// WrapKey wraps a 32-byte data key under a 32-byte branch key, bound to b, with a fresh random
// nonce (crypto/rand). It is the format of WRAP.md; the keyring calls it with keys it holds.
func WrapKey(branchKey, dataKey []byte, b WrapBinding) ([]byte, error) {
	var nonce [wrapNonceSize]byte
	_, _ = rand.Read(nonce[:]) // crypto/rand.Read never fails (Go 1.24+)
	return wrapKeyNonce(branchKey, dataKey, nonce[:], b)
}

func wrapKeyNonce(branchKey, dataKey, nonce []byte, b WrapBinding) ([]byte, error) {
	if len(dataKey) != DataKeySize {
		return nil, fmt.Errorf("wrap data key: %d bytes, want %d", len(dataKey), DataKeySize)
	}
	if err := checkBinding(b); err != nil {
		return nil, err
	}
	aead, err := wrapAEAD(branchKey)
	if err != nil {
		return nil, fmt.Errorf("wrap data key: %w", err)
	}
	out := make([]byte, 0, WrappedKeySize)
	out = append(out, WrapFormatV1)
	out = append(out, nonce...)
	return aead.Seal(out, nonce, dataKey, wrapAD(WrapFormatV1, b)), nil
}

// UnwrapKey opens a blob made by [WrapKey] under branchKey for binding b and returns the data
// key (the caller owns and wipes it). Every refusal is [ErrWrapAuth], except a branch key of the
// wrong size or a binding no record can have.
func UnwrapKey(branchKey, blob []byte, b WrapBinding) ([]byte, error) {
	if err := checkBinding(b); err != nil {
		return nil, err
	}
	if len(blob) != WrappedKeySize || blob[0] != WrapFormatV1 {
		return nil, ErrWrapAuth
	}
	aead, err := wrapAEAD(branchKey)
	if err != nil {
		return nil, fmt.Errorf("unwrap data key: %w", err)
	}
	dk, err := aead.Open(nil, blob[1:wrapHeaderSize], blob[wrapHeaderSize:], wrapAD(blob[0], b))
	if err != nil {
		return nil, ErrWrapAuth
	}
	return dk, nil
}

// checkBinding refuses bindings whose fields do not fit the associated data's encoding.
func checkBinding(b WrapBinding) error {
	if len(b.ID) == 0 || len(b.ID) > MaxIDLen || len(b.BranchID) == 0 || len(b.BranchID) > MaxIDLen ||
		b.Version == 0 || b.BranchVersion == 0 {
		return fmt.Errorf("branch wrap binding: empty or over-long id, or version 0: %w", ErrInvalidID)
	}
	return nil
}
