package envelope

import (
	"errors"
	"fmt"
	"slices"

	"github.com/rkms/rkms/secret"
)

// Errors returned by [Open] and [Parse]. Callers branch on them with errors.Is.
var (
	// ErrMalformed: the text is not a well-formed ciphertext of a known format version.
	ErrMalformed = errors.New("malformed ciphertext")
	// ErrUnsupportedVersion: the text is structurally a ciphertext but names a format version or
	// mode this build does not implement (for example one written by a newer release).
	ErrUnsupportedVersion = errors.New("unsupported ciphertext format")
	// ErrKeyMismatch: the key passed to Open is not the key id and version the header names.
	ErrKeyMismatch = errors.New("ciphertext names another key")
	// ErrAuthentication: the ciphertext does not verify under the key, label and context given.
	// Open returns it unwrapped; its message is exactly "authentication failed".
	ErrAuthentication = errors.New("authentication failed")
)

// Key is one version of a data key, as the keyring hands it out.
//
// Secret must hold [DataKeyLen] bytes. The primitives derived from it are cached on Secret with
// [secret.Key.Derive], so sealing and opening with a key that has been used before does no key
// derivation, and wiping Secret drops them.
type Key struct {
	ID      string
	Version uint32
	Secret  *secret.Key
}

// Seal encrypts plaintext, the exact JSON text of one field value, and appends the text form
// ("rkms:" and unpadded base64url, no quotes) to dst.
//
// label names the field (the same label for a field wherever it appears in a document) and
// context is optional caller data such as a tenant id; both are authenticated, and [Open] must
// be given the same ones. The key id must pass [ValidateKeyID] (an error wrapping [ErrInvalidKeyID]), the
// label 1..[MaxLabelLen] bytes, the context at most [MaxContextLen] bytes and the plaintext
// 1..[MaxPlaintextLen] bytes. Seal does not check that plaintext is JSON.
//
// Seal uses the spare capacity of dst as scratch space for the associated data. To seal in
// place, pass plaintext[:0] as dst; otherwise the spare capacity of dst must not overlap
// plaintext or context. On error it returns dst unchanged (its spare capacity may be written).
func Seal(dst []byte, key Key, mode Mode, label string, context, plaintext []byte) ([]byte, error) {
	if err := validateSealInputs(mode, label, context, plaintext); err != nil {
		return dst, err
	}
	s, err := key.suite(mode)
	if err != nil {
		return dst, fmt.Errorf("seal: %w", err)
	}
	hc := s.header.Load()
	if hc == nil || hc.keyID != key.ID || hc.keyVersion != key.Version {
		if err := ValidateKeyID(key.ID); err != nil {
			return dst, fmt.Errorf("seal: %w", err)
		}
		hc = newSealHeader(mode, key.ID, key.Version)
		s.header.Store(hc)
	}
	// Layout of dst's spare capacity: the text, then the associated data, then room for the
	// binary ciphertext (Tink's primitives return their own slice), encoded into the text last.
	// The text is longer than the plaintext, so sealing in place (dst = plaintext[:0]) reads the
	// plaintext before anything is written over it.
	base := len(dst)
	ctLen := len(plaintext) + mode.overhead()
	textLen := len(hc.text) + encodedLen(len(hc.tail)+ctLen)
	adLen := len(hc.header) + 8 + len(label) + len(context)
	dst = slices.Grow(dst, textLen+adLen+ctLen)
	ad := append(dst[base+textLen:base+textLen], hc.header...)
	ad = appendAD(ad, label, context)
	ctAt := base + textLen + len(ad)
	ct, err := s.sealTo(dst[ctAt:ctAt+ctLen], plaintext, ad)
	if err != nil {
		return dst[:base], fmt.Errorf("seal: %s encryption: %w", mode, err)
	}
	dst = append(dst, hc.text...)
	return appendBase64Concat(dst, hc.tail, ct), nil
}

// Open verifies and decrypts the text form of a ciphertext and appends the plaintext (the exact
// bytes given to [Seal]) to dst.
//
// It fails with an error wrapping [ErrMalformed] or [ErrUnsupportedVersion] when text is not a
// ciphertext it can decode (checked first, without cryptography), with an error wrapping
// [ErrKeyMismatch] when key's ID or Version differ from the header (use [Parse] to learn which
// key to fetch), and with [ErrAuthentication] itself when the ciphertext does not verify under
// key, label and context: wrong label or context, another data key, or any modification.
// Problems with key itself (no secret, a wiped secret, a secret of the wrong length) and a label
// or context that [Seal] would refuse are reported as other errors.
//
// Open reads all of its inputs before it writes to dst, so dst may share memory with them. On
// error it returns dst unchanged.
func Open(dst []byte, key Key, label string, context, text []byte) ([]byte, error) {
	h, err := parseText(text)
	if err != nil {
		return dst, err
	}
	if err := validateLabelContext(label, context); err != nil {
		return dst, fmt.Errorf("open: %w", err)
	}
	s, err := key.suite(h.mode)
	if err != nil {
		return dst, fmt.Errorf("open: %w", err)
	}
	// Scratch layout: the binary form, the associated data, then room for the plaintext (AES-GCM
	// decrypts there, so a failed Open never writes to dst or its spare capacity).
	adMax := h.headerLen + 8 + len(label) + len(context)
	ptMax := h.binaryLen - h.headerLen
	sb := getScratch(h.binaryLen + adMax + ptMax)
	defer putScratch(sb)
	scratch := *sb
	bin := scratch[:h.binaryLen]
	if !decodeBase64(bin, text[len(Prefix):]) {
		return dst, malformed("invalid base64")
	}
	keyID, keyVersion, err := h.readKey(bin[:h.headerLen])
	if err != nil {
		return dst, err
	}
	if string(keyID) != key.ID || keyVersion != key.Version {
		return dst, fmt.Errorf("%w: ciphertext names key %q version %d, got key %q version %d",
			ErrKeyMismatch, string(keyID), keyVersion, key.ID, key.Version)
	}
	ad := append(scratch[len(bin):len(bin)], bin[:h.headerLen]...)
	ad = appendAD(ad, label, context)
	ptAt := len(bin) + adMax
	pt, err := s.openTo(scratch[ptAt:ptAt+ptMax], bin[h.headerLen:], ad)
	if err != nil {
		return dst, ErrAuthentication
	}
	dst = append(dst, pt...)
	clear(pt)
	return dst, nil
}
