package envelope

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/tink-crypto/tink-go/v2/aead/aesgcm"
	"github.com/tink-crypto/tink-go/v2/daead"
	"github.com/tink-crypto/tink-go/v2/daead/aessiv"
	"github.com/tink-crypto/tink-go/v2/insecuresecretdataaccess"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/secretdata"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// DataKeyLen is the length of the data key a [Key] must hold.
const DataKeyLen = 32

// HKDF-SHA256 info strings, one per mode; the salt is empty. Changing either breaks every
// ciphertext of that mode.
const (
	infoRandomized    = "rkms/v1 aes-256-gcm"
	infoDeterministic = "rkms/v1 aes-siv-cmac-512"
)

const (
	gcmKeyLen = 32
	sivKeyLen = 64
	// maxPooledScratch bounds the scratch buffers kept for reuse, so that one huge field does
	// not pin a megabyte per key.
	maxPooledScratch = 64 << 10
)

// deriveTag names a per-mode derivation memoized on a [secret.Key].
type deriveTag Mode

// suite is the primitive of one mode derived from one data key. It is built once per key and
// mode by [Key.suite] and cached on the key's secret.
//
// Randomized mode is Tink's aead/aesgcm primitive (AES-256-GCM, 12-byte random nonce, 16-byte
// tag, NO_PREFIX variant: nonce || ciphertext || tag); deterministic mode is Tink's AES-SIV.
type suite struct {
	aead  tink.AEAD              // Randomized
	daead tink.DeterministicAEAD // Deterministic
	// header caches the header Seal last wrote with this suite. A data key normally belongs
	// to one key id and version, so it is built once; Seal rebuilds it if the key differs.
	header atomic.Pointer[sealHeader]
}

// scratchPool holds Open's scratch buffers (*[]byte), shared by all keys: a pool per key would
// pin a buffer and a per-P pool array per cached key, and the runtime clears every pool during
// each garbage collection's stop-the-world phase, so 100,000 per-key pools cost memory and pause
// time. The buffers only ever hold ciphertext and associated data (Open clears the plaintext it
// decrypts there before putting a buffer back); this is the package's only mutable state.
var scratchPool sync.Pool

// getScratch returns a buffer of length n.
func getScratch(n int) *[]byte {
	sb, _ := scratchPool.Get().(*[]byte)
	if sb == nil {
		sb = new([]byte)
	}
	if cap(*sb) < n {
		*sb = make([]byte, max(n, 512))
	}
	*sb = (*sb)[:n]
	return sb
}

func putScratch(sb *[]byte) {
	if cap(*sb) > maxPooledScratch {
		return
	}
	scratchPool.Put(sb)
}

// sealTo encrypts plaintext and returns the ciphertext. Tink's primitives return a new slice;
// out is unused and kept so that callers size one buffer whatever the primitive.
func (s *suite) sealTo(_, plaintext, ad []byte) ([]byte, error) {
	if s.daead != nil {
		return s.daead.EncryptDeterministically(plaintext, ad)
	}
	return s.aead.Encrypt(plaintext, ad)
}

// openTo decrypts ciphertext and returns the plaintext (a new slice, see sealTo).
func (s *suite) openTo(_, ciphertext, ad []byte) ([]byte, error) {
	if s.daead != nil {
		return s.daead.DecryptDeterministically(ciphertext, ad)
	}
	return s.aead.Decrypt(ciphertext, ad)
}

// suite returns the key's primitive for mode, deriving and caching it on first use.
func (k Key) suite(mode Mode) (*suite, error) {
	if k.Secret == nil {
		return nil, errNoSecret
	}
	fn := newRandomizedSuite
	if mode == Deterministic {
		fn = newDeterministicSuite
	}
	v, err := k.Secret.Derive(deriveTag(mode), fn)
	if err != nil {
		return nil, fmt.Errorf("derive %s key from data key %q version %d: %w", mode, k.ID, k.Version, err)
	}
	return v.(*suite), nil
}

// subkey derives n bytes from the data key with HKDF-SHA256 under info (empty salt).
func subkey(dataKey []byte, info string, n int) ([]byte, error) {
	if len(dataKey) != DataKeyLen {
		return nil, fmt.Errorf("data key is %d bytes, want %d", len(dataKey), DataKeyLen)
	}
	out, err := hkdf.Key(sha256.New, dataKey, nil, info, n)
	if err != nil {
		return nil, fmt.Errorf("hkdf: %w", err)
	}
	return out, nil
}

func newRandomizedSuite(dataKey []byte) (any, error) {
	sub, err := subkey(dataKey, infoRandomized, gcmKeyLen)
	if err != nil {
		return nil, err
	}
	defer clear(sub)
	params, err := aesgcm.NewParameters(aesgcm.ParametersOpts{
		KeySizeInBytes: gcmKeyLen,
		IVSizeInBytes:  gcmIVLen,
		TagSizeInBytes: gcmTagLen,
		Variant:        aesgcm.VariantNoPrefix,
	})
	if err != nil {
		return nil, fmt.Errorf("aes-gcm parameters: %w", err)
	}
	key, err := aesgcm.NewKey(secretdata.NewBytesFromData(sub, insecuresecretdataaccess.Token{}), 0, params)
	if err != nil {
		return nil, errors.New("aes-gcm key: invalid key") // Tink's message is not needed here
	}
	a, err := aesgcm.NewAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("aes-gcm primitive: %w", err)
	}
	return &suite{aead: a}, nil
}

func newDeterministicSuite(dataKey []byte) (any, error) {
	sub, err := subkey(dataKey, infoDeterministic, sivKeyLen)
	if err != nil {
		return nil, err
	}
	defer clear(sub)
	params, err := aessiv.NewParameters(sivKeyLen, aessiv.VariantNoPrefix)
	if err != nil {
		return nil, fmt.Errorf("aes-siv parameters: %w", err)
	}
	key, err := aessiv.NewKey(secretdata.NewBytesFromData(sub, insecuresecretdataaccess.Token{}), 0, params)
	if err != nil {
		return nil, errors.New("aes-siv key: invalid key")
	}
	// aessiv builds its primitive only through a keyset: a one-key set, primary, no prefix.
	km := keyset.NewManager()
	id, err := km.AddKey(key)
	if err != nil {
		return nil, fmt.Errorf("aes-siv keyset: %w", err)
	}
	if err := km.SetPrimary(id); err != nil {
		return nil, fmt.Errorf("aes-siv keyset: %w", err)
	}
	h, err := km.Handle()
	if err != nil {
		return nil, fmt.Errorf("aes-siv keyset: %w", err)
	}
	d, err := daead.New(h)
	if err != nil {
		return nil, fmt.Errorf("aes-siv primitive: %w", err)
	}
	return &suite{daead: d}, nil
}
