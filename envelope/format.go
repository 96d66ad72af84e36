package envelope

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Prefix starts the text form of every ciphertext.
const Prefix = "rkms:"

// FormatVersion is the binary format version this package writes (and the only one it reads).
const FormatVersion uint8 = 1

// Size limits, all in bytes. Seal refuses inputs beyond them and decoders reject anything that
// could only come from inputs beyond them. See FORMAT.md.
const (
	MaxKeyIDLen     = 256     // key ids are 1..MaxKeyIDLen bytes of [A-Za-z0-9._:/@+=-]
	MaxLabelLen     = 256     // labels are 1..MaxLabelLen bytes
	MaxContextLen   = 4096    // contexts are 0..MaxContextLen bytes
	MaxPlaintextLen = 1 << 20 // plaintexts are 1..MaxPlaintextLen bytes
	// MaxTextLen is the longest text form a decoder accepts: a randomized ciphertext of a
	// MaxPlaintextLen plaintext under a MaxKeyIDLen key id.
	MaxTextLen = len(Prefix) + (8*maxBinaryLen+5)/6
)

const (
	headerFixedLen = 7 // version, mode, key id length - 1, key version (uint32)
	maxHeaderLen   = headerFixedLen + MaxKeyIDLen
	gcmIVLen       = 12
	gcmTagLen      = 16
	sivTagLen      = 16
	gcmOverhead    = gcmIVLen + gcmTagLen
	sivOverhead    = sivTagLen
	maxBinaryLen   = maxHeaderLen + gcmOverhead + MaxPlaintextLen
	// minBinaryLen is the shortest binary form of any mode: a deterministic
	// ciphertext of a 1-byte plaintext under a 1-byte key id.
	minBinaryLen = headerFixedLen + 1 + sivOverhead + 1
	minTextLen   = len(Prefix) + (8*minBinaryLen+5)/6
	// headerBufLen holds the decoded base64 quanta that cover the longest header.
	headerBufLen = (maxHeaderLen + 2) / 3 * 3
)

// Mode selects the AEAD that protects a field.
type Mode uint8

const (
	// Randomized is AES-256-GCM with a random 96-bit nonce: sealing the same value twice gives
	// different ciphertexts. It is the mode to use unless equality lookups are needed.
	Randomized Mode = 1
	// Deterministic is AES-SIV (RFC 5297, 512-bit key): the same key version, label, context and
	// plaintext always give the same ciphertext, so encrypted values can be compared for equality.
	Deterministic Mode = 2
)

// String returns "randomized", "deterministic", or "mode(N)" for an unknown value.
func (m Mode) String() string {
	switch m {
	case Randomized:
		return "randomized"
	case Deterministic:
		return "deterministic"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// MarshalText implements encoding.TextMarshaler; it fails for unknown modes.
func (m Mode) MarshalText() ([]byte, error) {
	if !m.valid() {
		return nil, fmt.Errorf("marshal envelope mode: unknown mode %d", uint8(m))
	}
	return []byte(m.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler for "randomized" and "deterministic".
func (m *Mode) UnmarshalText(text []byte) error {
	switch string(text) {
	case "randomized":
		*m = Randomized
	case "deterministic":
		*m = Deterministic
	default:
		return fmt.Errorf("unmarshal envelope mode: %q is not \"randomized\" or \"deterministic\"", text)
	}
	return nil
}

func (m Mode) valid() bool { return m == Randomized || m == Deterministic }

// overhead is the AEAD expansion of the mode: ciphertext length minus plaintext length.
func (m Mode) overhead() int {
	if m == Deterministic {
		return sivOverhead
	}
	return gcmOverhead
}

// Header is the public part of a ciphertext: which format, mode and key version sealed it.
type Header struct {
	FormatVersion uint8
	Mode          Mode
	KeyID         string
	KeyVersion    uint32
}

// IsCiphertext reports whether text starts with [Prefix]. It is a cheap test that says which
// values a decoder should try, not whether they are valid: use [Parse] or [Open] for that.
func IsCiphertext(text []byte) bool {
	return len(text) >= len(Prefix) && string(text[:len(Prefix)]) == Prefix
}

// Parse strictly decodes the text form of a ciphertext without any cryptography and returns its
// header. It accepts exactly the texts whose structure [Open] accepts. Errors wrap
// [ErrMalformed] or [ErrUnsupportedVersion].
func Parse(text []byte) (Header, error) {
	var buf [headerBufLen]byte
	h, keyID, keyVersion, err := parseHeader(text, &buf)
	if err != nil {
		return Header{}, err
	}
	return Header{
		FormatVersion: h.version,
		Mode:          h.mode,
		KeyID:         string(keyID),
		KeyVersion:    keyVersion,
	}, nil
}

// KeyVersionFor is [Parse] for a caller that knows which key id to expect: it returns the key
// version of text if text names keyID, and otherwise an error wrapping [ErrKeyMismatch] (or, as
// Parse, [ErrMalformed] or [ErrUnsupportedVersion]). It allocates nothing when text names keyID.
func KeyVersionFor(text []byte, keyID string) (uint32, error) {
	var buf [headerBufLen]byte
	_, id, keyVersion, err := parseHeader(text, &buf)
	if err != nil {
		return 0, err
	}
	if string(id) != keyID {
		return 0, fmt.Errorf("%w: ciphertext names key %q, want %q", ErrKeyMismatch, string(id), keyID)
	}
	return keyVersion, nil
}

// parseHeader does Parse's work, decoding the header into buf; keyID aliases buf.
func parseHeader(text []byte, buf *[headerBufLen]byte) (h rawHeader, keyID []byte, keyVersion uint32, err error) {
	h, err = parseText(text)
	if err != nil {
		return h, nil, 0, err
	}
	// Decode the whole quanta that cover the header, then check that the rest of the text is
	// base64 too.
	body := text[len(Prefix):]
	quanta := (h.headerLen + 2) / 3
	if !decodeBase64(buf[:quanta*3], body[:quanta*4]) {
		return h, nil, 0, malformed("invalid base64")
	}
	keyID, keyVersion, err = h.readKey(buf[:h.headerLen])
	if err != nil {
		return h, nil, 0, err
	}
	if err := checkBase64Body(body[quanta*4:]); err != nil {
		return h, nil, 0, err
	}
	return h, keyID, keyVersion, nil
}

// rawHeader is what parseText learns from a text before the body is decoded.
type rawHeader struct {
	version   uint8
	mode      Mode
	headerLen int // bytes of binary header
	binaryLen int // bytes of the whole binary form
}

func malformed(what string) error { return fmt.Errorf("%w: %s", ErrMalformed, what) }

// parseText checks everything about text that needs only its length, first base64 group and
// last character: prefix, length bounds, the unused bits of the last character, format version,
// mode, and the ciphertext length the key id length implies. The caller decodes the header with
// the rest of the body (which checks the remaining characters) and calls readKey.
func parseText(text []byte) (rawHeader, error) {
	if !IsCiphertext(text) {
		return rawHeader{}, malformed("missing " + Prefix + " prefix")
	}
	if len(text) > MaxTextLen {
		return rawHeader{}, malformed("too long")
	}
	if len(text) < minTextLen {
		return rawHeader{}, malformed("too short")
	}
	body := text[len(Prefix):]
	if err := checkLastQuantum(body); err != nil {
		return rawHeader{}, err
	}
	var first [3]byte
	if !decodeBase64(first[:], body[:4]) {
		return rawHeader{}, malformed("invalid base64")
	}
	h := rawHeader{
		version:   first[0],
		mode:      Mode(first[1]),
		headerLen: headerFixedLen + int(first[2]) + 1,
		binaryLen: decodedLen(len(body)),
	}
	if h.version != FormatVersion {
		return rawHeader{}, fmt.Errorf("%w: format version %d", ErrUnsupportedVersion, h.version)
	}
	if !h.mode.valid() {
		return rawHeader{}, fmt.Errorf("%w: mode %d", ErrUnsupportedVersion, first[1])
	}
	ctLen := h.binaryLen - h.headerLen
	if ctLen < h.mode.overhead()+1 {
		return rawHeader{}, malformed("ciphertext too short")
	}
	if ctLen > h.mode.overhead()+MaxPlaintextLen {
		return rawHeader{}, malformed("ciphertext too long")
	}
	return h, nil
}

// readKey returns the key id (aliasing header) and key version from the decoded header bytes,
// h.headerLen of them.
func (h *rawHeader) readKey(header []byte) ([]byte, uint32, error) {
	idLen := h.headerLen - headerFixedLen
	keyID := header[3 : 3+idLen]
	if !validKeyID(keyID) {
		return nil, 0, malformed("invalid key id")
	}
	return keyID, binary.BigEndian.Uint32(header[3+idLen:]), nil
}

// checkLastQuantum rejects lengths no encoder produces and a last character whose unused low
// bits are set: with decodeBase64's alphabet check, that makes the decoding strict, so exactly
// one text decodes to a given binary form.
func checkLastQuantum(body []byte) error {
	var mask byte
	switch len(body) % 4 {
	case 0:
		return nil
	case 1:
		return malformed("invalid base64 length")
	case 2:
		mask = 0x0f
	case 3:
		mask = 0x03
	}
	v := base64URLValues[body[len(body)-1]]
	if v == 0xff {
		return malformed("invalid base64")
	}
	if v&mask != 0 {
		return malformed("non-canonical base64")
	}
	return nil
}

// checkBase64Body decodes body in chunks into a stack buffer to validate every character.
func checkBase64Body(body []byte) error {
	const chunk = 256 // characters; a multiple of 4
	var buf [chunk / 4 * 3]byte
	for len(body) > 0 {
		n := min(chunk, len(body))
		if !decodeBase64(buf[:decodedLen(n)], body[:n]) {
			return malformed("invalid base64")
		}
		body = body[n:]
	}
	return nil
}

// sealHeader is the constant part of every text Seal writes under one key version and mode.
type sealHeader struct {
	keyID      string
	keyVersion uint32
	header     []byte // binary header
	text       []byte // Prefix and the base64 of the header's whole 3-byte groups
	tail       []byte // the 0..2 header bytes after those groups
}

// newSealHeader builds the header for a valid key id.
func newSealHeader(mode Mode, keyID string, keyVersion uint32) *sealHeader {
	h := appendHeader(make([]byte, 0, headerFixedLen+len(keyID)), mode, keyID, keyVersion)
	n := len(h) - len(h)%3
	return &sealHeader{
		keyID:      keyID,
		keyVersion: keyVersion,
		header:     h,
		text:       appendBase64([]byte(Prefix), h[:n]),
		tail:       h[n:],
	}
}

// appendHeader appends the binary header. The key id must already be valid.
func appendHeader(b []byte, mode Mode, keyID string, keyVersion uint32) []byte {
	b = append(b, FormatVersion, byte(mode), byte(len(keyID)-1))
	b = append(b, keyID...)
	return binary.BigEndian.AppendUint32(b, keyVersion)
}

// appendAD appends the associated data that follow the binary header: the label and the
// context, each after its length as a big-endian uint32.
func appendAD(b []byte, label string, context []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(label)))
	b = append(b, label...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(context)))
	return append(b, context...)
}

// encodedLen is the unpadded base64 length of n bytes.
func encodedLen(n int) int { return (8*n + 5) / 6 }

// validateSealInputs checks what Seal needs before any cryptography; the key id is checked
// when Seal builds the header.
func validateSealInputs(mode Mode, label string, context, plaintext []byte) error {
	if mode.valid() && len(label) > 0 && len(label) <= MaxLabelLen && len(context) <= MaxContextLen &&
		len(plaintext) > 0 && len(plaintext) <= MaxPlaintextLen {
		return nil
	}
	return sealInputError(mode, label, context, plaintext)
}

// sealInputError says which of Seal's inputs is invalid.
func sealInputError(mode Mode, label string, context, plaintext []byte) error {
	if !mode.valid() {
		return fmt.Errorf("seal: unknown mode %d", uint8(mode))
	}
	if err := validateLabelContext(label, context); err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	return fmt.Errorf("seal: plaintext is %d bytes, want 1..%d", len(plaintext), MaxPlaintextLen)
}

func validateLabelContext(label string, context []byte) error {
	if len(label) == 0 || len(label) > MaxLabelLen {
		return fmt.Errorf("label is %d bytes, want 1..%d", len(label), MaxLabelLen)
	}
	if len(context) > MaxContextLen {
		return fmt.Errorf("context is %d bytes, want at most %d", len(context), MaxContextLen)
	}
	return nil
}

var errNoSecret = errors.New("key has no secret")
