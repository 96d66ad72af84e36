package blindindex

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"

	"github.com/rkms/rkms/envelope"
)

// RootKeyID is the keyring id of the index root. It starts with [envelope.ReservedKeyIDPrefix],
// so no policy can compute it from a request.
const RootKeyID = envelope.ReservedKeyIDPrefix + "index-root"

// RootVersion is the version of [RootKeyID] that indexes are derived from, whatever the current
// version: the root is never rotated, since rotating it would change every index.
const RootVersion = 1

// Bounds and default of an index's length in bits.
const (
	MinBits     = 8
	MaxBits     = 256
	DefaultBits = 32
)

// KeyLen is the length of a derived index key.
const KeyLen = 32

// info is the HKDF info prefix; the key id and the index name follow, length-prefixed.
const info = "rkms/v1 blind-index"

// ErrNotIndexable: the value is not a JSON string or number.
var ErrNotIndexable = errors.New("value is not a string or a number: it cannot be indexed")

// ErrNumberRange: a number whose canonical decimal text would be too long to index.
var ErrNumberRange = errors.New("number out of the indexable range")

// CheckBits reports whether bits is a valid index length.
func CheckBits(bits int) error {
	if bits < MinBits || bits > MaxBits || bits%8 != 0 {
		return fmt.Errorf("bits: %d is not a multiple of 8 in %d..%d", bits, MinBits, MaxBits)
	}
	return nil
}

// Key is a derived index key. Its String and LogValue never show the bytes.
type Key struct {
	mac hash.Hash // HMAC-SHA256 under the key; reset before each use
	sum []byte
}

// DeriveKey derives the index key of index name under data key id keyID from the root key
// material. The root's only other use is the reveal token keys (package
// github.com/rkms/rkms/extproc/reveal), under another HKDF info label.
func DeriveKey(root []byte, keyID, name string) (*Key, error) {
	if len(root) < 16 {
		return nil, errors.New("derive index key: root key shorter than 16 bytes")
	}
	if len(keyID) > 0xffff || len(name) > 0xffff {
		return nil, errors.New("derive index key: key id or name too long")
	}
	b := make([]byte, 0, len(info)+4+len(keyID)+len(name))
	b = append(b, info...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(keyID)))
	b = append(b, keyID...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(name)))
	b = append(b, name...)
	k, err := hkdf.Key(sha256.New, root, nil, string(b), KeyLen)
	if err != nil {
		return nil, fmt.Errorf("derive index key: %w", err)
	}
	defer clear(k)
	return &Key{mac: hmac.New(sha256.New, k)}, nil
}

func (k *Key) String() string { return "[redacted index key]" }

// Index appends to dst the index (base64url without padding, no quotes) of text, which must
// already be normalised, truncated to bits.
func (k *Key) Index(dst []byte, bits int, text []byte) []byte {
	k.mac.Reset()
	k.mac.Write(text)
	k.sum = k.mac.Sum(k.sum[:0])
	n := bits / 8
	return base64.RawURLEncoding.AppendEncode(dst, k.sum[:n])
}

// Spec is one declared index: the member name, its length and normalisation.
type Spec struct {
	Name string
	Bits int
	Norm Norm
}

// AppendJSON appends to dst the JSON text of the index of raw, a JSON string or number, under
// spec: a JSON string. Other values (null included: the caller decides what null gets) wrap
// [ErrNotIndexable]. The plaintext copies it makes are cleared before it returns.
func (k *Key) AppendJSON(dst []byte, spec *Spec, raw []byte) ([]byte, error) {
	text, err := Text(nil, raw)
	defer clear(text)
	if err != nil {
		return dst, err
	}
	norm := spec.Norm.Apply(text)
	defer clear(norm)
	dst = append(dst, '"')
	dst = k.Index(dst, spec.Bits, norm)
	return append(dst, '"'), nil
}

// AppendString appends the index (no quotes) of text, a string such as a query parameter's
// decoded value, under spec.
func (k *Key) AppendString(dst []byte, spec *Spec, text string) []byte {
	b := []byte(text)
	defer clear(b)
	norm := spec.Norm.Apply(b)
	defer clear(norm)
	return k.Index(dst, spec.Bits, norm)
}

// Text appends the text a JSON value raw is indexed on, before normalisation: a string's decoded
// text or a number's canonical decimal form. Other values wrap [ErrNotIndexable].
func Text(dst, raw []byte) ([]byte, error) {
	if len(raw) == 0 {
		return dst, ErrNotIndexable
	}
	switch c := raw[0]; {
	case c == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return dst, fmt.Errorf("%w: not a valid JSON string", ErrNotIndexable)
		}
		return append(dst, s...), nil
	case c == '-' || c >= '0' && c <= '9':
		return CanonicalNumber(dst, raw)
	}
	return dst, ErrNotIndexable
}
