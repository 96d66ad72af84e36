package keyring

import (
	"context"
	"strconv"

	"github.com/rkms/rkms/secret"
	"github.com/rkms/rkms/store"
)

// Region is one KMS region (or software key) that can generate, wrap and unwrap data keys.
// Implementations: keyring/awskms (AWS KMS) and keyring/localkms (software, not for production).
//
// Every method must honour ctx and must wrap [ErrRegionUnavailable] when the region could not be
// reached, timed out, was throttled or failed internally, and [ErrRegionRejected] when it
// answered and refused. Errors must never contain key material. Errors that wrap neither are
// treated as unavailability.
type Region interface {
	// Name is the region's unique name, used as the key of store.Version.Wrapped.
	Name() string
	// KeyID is the KMS key (ARN or id) the region wraps under; it is stored beside each copy.
	KeyID() string
	// GenerateDataKey returns a fresh 32-byte data key and its ciphertext under the region's
	// key, bound to encCtx. The caller owns (and wipes) plaintext.
	GenerateDataKey(ctx context.Context, encCtx map[string]string) (plaintext, wrapped []byte, err error)
	// Encrypt wraps plaintext under the region's key, bound to encCtx. It must not retain plaintext.
	Encrypt(ctx context.Context, plaintext []byte, encCtx map[string]string) (wrapped []byte, err error)
	// Decrypt unwraps a ciphertext made by this region with the same encCtx. The caller owns
	// (and wipes) plaintext.
	Decrypt(ctx context.Context, wrapped []byte, encCtx map[string]string) (plaintext []byte, err error)
}

// Store is what the keyring needs from a key store; store.Store satisfies it. Errors are those
// of package store (ErrNotFound, ErrExists, ErrConflict, ErrUnavailable).
type Store interface {
	Get(ctx context.Context, id string) (*store.Record, error)
	Create(ctx context.Context, rec *store.Record) error
	Update(ctx context.Context, rec *store.Record) error
	Delete(ctx context.Context, id string) error
	List(ctx context.Context, opts store.ListOptions) (store.ListPage, error)
	Ping(ctx context.Context) error
}

var _ Store = store.Store(nil)

// DataKey is one version of a key id's plaintext data key. Secret belongs to the keyring's cache:
// use it right away and do not keep it; the keyring wipes it some seconds after the cache evicts
// it (see the package doc), after which it fails with secret.ErrWiped and a new Get is needed.
type DataKey struct {
	ID      string
	Version uint32
	Secret  *secret.Key
}

// DataKeySize is the size of every data key, in bytes (AES-256).
const DataKeySize = 32

// Encryption context keys bound to every wrap and unwrap.
const (
	ContextKeyID      = "rkms:key-id"
	ContextKeyVersion = "rkms:key-version"
)

// EncryptionContext returns the KMS encryption context for version v of key id:
// {"rkms:key-id": id, "rkms:key-version": "<v>"}. A copy wrapped for one id or version cannot be
// unwrapped as another.
func EncryptionContext(id string, v uint32) map[string]string {
	return map[string]string{ContextKeyID: id, ContextKeyVersion: strconv.FormatUint(uint64(v), 10)}
}
