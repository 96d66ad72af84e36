package load

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/store"
)

// CountingStore counts every call made to a key store. Its store can be released (see
// [CountingStore.Release]) once the keys are cached.
type CountingStore struct {
	calls atomic.Uint64
	st    atomic.Pointer[keyring.Store]
}

var _ keyring.Store = (*CountingStore)(nil)

// NewCountingStore counts the calls made to st.
func NewCountingStore(st keyring.Store) *CountingStore {
	c := &CountingStore{}
	c.st.Store(&st)
	return c
}

// Calls returns the number of calls so far.
func (s *CountingStore) Calls() uint64 { return s.calls.Load() }

// Release drops the store: every later call fails with store.ErrUnavailable (and is counted).
// The in-memory store stands in for DynamoDB, which lives outside rkms; releasing it once the
// keys are cached leaves in the process what rkms itself holds.
func (s *CountingStore) Release() {
	var down keyring.Store = unavailableStore{}
	s.st.Store(&down)
}

func (s *CountingStore) store() keyring.Store {
	s.calls.Add(1)
	return *s.st.Load()
}

func (s *CountingStore) Get(ctx context.Context, id string) (*store.Record, error) {
	return s.store().Get(ctx, id)
}

func (s *CountingStore) Create(ctx context.Context, rec *store.Record) error {
	return s.store().Create(ctx, rec)
}

func (s *CountingStore) Update(ctx context.Context, rec *store.Record) error {
	return s.store().Update(ctx, rec)
}

func (s *CountingStore) Delete(ctx context.Context, id string) error {
	return s.store().Delete(ctx, id)
}

func (s *CountingStore) Ping(ctx context.Context) error { return s.store().Ping(ctx) }

func (s *CountingStore) List(ctx context.Context, opts store.ListOptions) (store.ListPage, error) {
	return s.store().List(ctx, opts)
}

// unavailableStore fails every call.
type unavailableStore struct{}

var _ keyring.Store = unavailableStore{}

func (unavailableStore) Get(context.Context, string) (*store.Record, error) {
	return nil, fmt.Errorf("load: store released: %w", store.ErrUnavailable)
}
func (unavailableStore) Create(context.Context, *store.Record) error {
	return fmt.Errorf("load: store released: %w", store.ErrUnavailable)
}
func (unavailableStore) Update(context.Context, *store.Record) error {
	return fmt.Errorf("load: store released: %w", store.ErrUnavailable)
}
func (unavailableStore) Delete(context.Context, string) error {
	return fmt.Errorf("load: store released: %w", store.ErrUnavailable)
}
func (unavailableStore) List(context.Context, store.ListOptions) (store.ListPage, error) {
	return store.ListPage{}, fmt.Errorf("load: store released: %w", store.ErrUnavailable)
}
func (unavailableStore) Ping(context.Context) error {
	return fmt.Errorf("load: store released: %w", store.ErrUnavailable)
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
