package load

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/store"
)

// Keys adapts a keyring to extproc.Keys, the way `rkms serve` wires it.
type Keys struct{ Keyring *keyring.Keyring }

var _ extproc.Keys = Keys{}

// Current returns the current version of id (get-or-create).
func (a Keys) Current(ctx context.Context, id string) (envelope.Key, error) {
	dk, err := a.Keyring.Get(ctx, id)
	if err != nil {
		return envelope.Key{}, keysError(err)
	}
	return envelope.Key{ID: dk.ID, Version: dk.Version, Secret: dk.Secret}, nil
}

// Version returns version v of id (never creates).
func (a Keys) Version(ctx context.Context, id string, v uint32) (envelope.Key, error) {
	dk, err := a.Keyring.GetVersion(ctx, id, v)
	if err != nil {
		return envelope.Key{}, keysError(err)
	}
	return envelope.Key{ID: dk.ID, Version: dk.Version, Secret: dk.Secret}, nil
}

func keysError(err error) error {
	switch {
	case errors.Is(err, keyring.ErrInvalidID):
		return fmt.Errorf("%w: %w", extproc.ErrInvalidKeyID, err)
	case errors.Is(err, keyring.ErrNotFound):
		return fmt.Errorf("%w: %w", extproc.ErrKeyNotFound, err)
	default:
		return fmt.Errorf("%w: %w", extproc.ErrKeyUnavailable, err)
	}
}

// CountingStore counts every call made to a key store.
type CountingStore struct {
	keyring.Store
	calls atomic.Uint64
}

var _ keyring.Store = (*CountingStore)(nil)

// Calls returns the number of calls so far.
func (s *CountingStore) Calls() uint64 { return s.calls.Load() }

func (s *CountingStore) Get(ctx context.Context, id string) (*store.Record, error) {
	s.calls.Add(1)
	return s.Store.Get(ctx, id)
}

func (s *CountingStore) Create(ctx context.Context, rec *store.Record) error {
	s.calls.Add(1)
	return s.Store.Create(ctx, rec)
}

func (s *CountingStore) Update(ctx context.Context, rec *store.Record) error {
	s.calls.Add(1)
	return s.Store.Update(ctx, rec)
}

func (s *CountingStore) Delete(ctx context.Context, id string) error {
	s.calls.Add(1)
	return s.Store.Delete(ctx, id)
}

func (s *CountingStore) Ping(ctx context.Context) error {
	s.calls.Add(1)
	return s.Store.Ping(ctx)
}

// CountingRegion counts every call made to a KMS region.
type CountingRegion struct {
	keyring.Region
	calls atomic.Uint64
}

var _ keyring.Region = (*CountingRegion)(nil)

// Calls returns the number of calls so far.
func (r *CountingRegion) Calls() uint64 { return r.calls.Load() }

func (r *CountingRegion) GenerateDataKey(ctx context.Context, encCtx map[string]string) ([]byte, []byte, error) {
	r.calls.Add(1)
	return r.Region.GenerateDataKey(ctx, encCtx)
}

func (r *CountingRegion) Encrypt(ctx context.Context, plaintext []byte, encCtx map[string]string) ([]byte, error) {
	r.calls.Add(1)
	return r.Region.Encrypt(ctx, plaintext, encCtx)
}

func (r *CountingRegion) Decrypt(ctx context.Context, wrapped []byte, encCtx map[string]string) ([]byte, error) {
	r.calls.Add(1)
	return r.Region.Decrypt(ctx, wrapped, encCtx)
}
