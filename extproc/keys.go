package extproc

import (
	"context"

	"github.com/rkms/rkms/envelope"
)

// Keys gives the server the data keys it seals and opens fields with. The wiring code adapts the
// keyring to it (extproc does not import the keyring).
type Keys interface {
	// Current returns the current version of key id, creating the key if it does not exist yet.
	// Errors wrap ErrKeyUnavailable when the key service cannot answer now, ErrInvalidKeyID
	// when id breaks the key id rule, and ErrKeyCreateLimited (as a *CreateLimitedError that
	// says when to retry) when the key would have to be created and the creation rate limit
	// says no.
	Current(ctx context.Context, id string) (envelope.Key, error)
	// Lookup returns the current version of key id like Current, but never creates the key
	// (policies with create: admin_only). Errors wrap ErrKeyUnknown when id has no key, and
	// ErrKeyUnavailable and ErrInvalidKeyID as for Current.
	Lookup(ctx context.Context, id string) (envelope.Key, error)
	// Version returns version v of key id. It never creates a key. Errors wrap ErrKeyNotFound
	// when the key or the version does not exist, and ErrKeyUnavailable as for Current.
	Version(ctx context.Context, id string, v uint32) (envelope.Key, error)
}

// SealCounter is implemented by [Keys] whose key versions may only seal a bounded number of
// values (the keyring's keyring.rotation.max_seals). The server checks for it once per body and
// then calls ReserveSeals before every value it seals, so the hot path stays one call without
// allocation; Keys without it seal without counting.
type SealCounter interface {
	// ReserveSeals must return nil before n values are sealed under version v of key id (the
	// key Current or Lookup returned). Errors wrap ErrKeySealLimit when the version may seal
	// no more (it was rotated: the server takes the current key again, once), and
	// ErrKeyUnavailable when the reservation could not be made within ctx.
	ReserveSeals(ctx context.Context, id string, v uint32, n int) error
}
