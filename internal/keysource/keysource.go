// Package keysource adapts the keyring to the ext_proc server: it hands out keyring data keys as
// envelope keys and translates the keyring's error classes into the ones extproc maps to HTTP
// statuses. It is the only place that knows both packages, so neither imports the other.
package keysource

import (
	"context"
	"errors"
	"fmt"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/keyring"
)

// Keyring serves extproc.Keys from a keyring.
type Keyring struct{ K *keyring.Keyring }

var (
	_ extproc.Keys        = Keyring{}
	_ extproc.SealCounter = Keyring{}
)

// Current returns the current version of id, creating the key on first use. A deleted id is
// never re-created: it is extproc.ErrKeyUnknown (403), as for a policy that does not create keys.
func (a Keyring) Current(ctx context.Context, id string) (envelope.Key, error) {
	dk, err := a.K.Get(ctx, id)
	if errors.Is(err, keyring.ErrDeleted) {
		return envelope.Key{}, fmt.Errorf("%w: %w", extproc.ErrKeyUnknown, err)
	}
	if err != nil {
		return envelope.Key{}, Classify(err)
	}
	return envelope.Key{ID: dk.ID, Version: dk.Version, Secret: dk.Secret}, nil
}

// Lookup returns the current version of id; it never creates. An absent key is
// extproc.ErrKeyUnknown (the keyring's ErrNotFound means that here, not a missing version), and
// so is a deleted one (keyring.ErrDeleted wraps ErrNotFound).
func (a Keyring) Lookup(ctx context.Context, id string) (envelope.Key, error) {
	dk, err := a.K.Lookup(ctx, id)
	if errors.Is(err, keyring.ErrNotFound) {
		return envelope.Key{}, fmt.Errorf("%w: %w", extproc.ErrKeyUnknown, err)
	}
	if err != nil {
		return envelope.Key{}, Classify(err)
	}
	return envelope.Key{ID: dk.ID, Version: dk.Version, Secret: dk.Secret}, nil
}

// Version returns version v of id; it never creates.
func (a Keyring) Version(ctx context.Context, id string, v uint32) (envelope.Key, error) {
	dk, err := a.K.GetVersion(ctx, id, v)
	if err != nil {
		return envelope.Key{}, Classify(err)
	}
	return envelope.Key{ID: dk.ID, Version: dk.Version, Secret: dk.Secret}, nil
}

// ReserveSeals counts n seals under version v of id against the keyring's seal limit
// (keyring.rotation.max_seals): a version that may seal no more is extproc.ErrKeySealLimit, and
// also ErrKeyUnavailable, so that a body that already took the current key again fails with 503.
func (a Keyring) ReserveSeals(ctx context.Context, id string, v uint32, n int) error {
	err := a.K.ReserveSeals(ctx, id, v, n)
	if errors.Is(err, keyring.ErrSealLimit) {
		return fmt.Errorf("%w: %w: %w", extproc.ErrKeySealLimit, extproc.ErrKeyUnavailable, err)
	}
	if err != nil {
		return Classify(err)
	}
	return nil
}

// Classify wraps a keyring error in the extproc error class it belongs to (the cause stays in
// the chain for logs; extproc never shows it to clients). It maps [keyring.ClassOf]: the
// unavailable, canceled and internal classes all mean here that the key cannot be had now.
func Classify(err error) error {
	switch keyring.ClassOf(err) {
	case keyring.ClassInvalid:
		return fmt.Errorf("%w: %w", extproc.ErrInvalidKeyID, err)
	case keyring.ClassNotFound, keyring.ClassDeleted:
		// A deleted id's ciphertexts fail like any that do not open (Version); Current and
		// Lookup turn a deleted id into ErrKeyUnknown before they get here.
		return fmt.Errorf("%w: %w", extproc.ErrKeyNotFound, err)
	case keyring.ClassRetired:
		// Below the key's min decrypt version, or destroyed: a refusal the client sees as such.
		return fmt.Errorf("%w: %w", extproc.ErrKeyRetired, err)
	case keyring.ClassLimited:
		return &extproc.CreateLimitedError{RetryAfter: keyring.RetryAfter(err), Err: err}
	default:
		// Unavailable regions or store, or every region refusing: the key cannot be had now.
		return fmt.Errorf("%w: %w", extproc.ErrKeyUnavailable, err)
	}
}
