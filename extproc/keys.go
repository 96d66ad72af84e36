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
