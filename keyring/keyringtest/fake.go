// Package keyringtest provides an in-memory stand-in for the keyring, for tests of the APIs that
// sit on top of it (the admin HTTP API and the gRPC key API). It is not for production: its keys
// are derived from their ids.
package keyringtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/secret"
)

// Fake implements the keyring's Get, Lookup, GetVersion, Create, List, Rotate, Delete and Ready
// in memory, with the keyring's tombstones: a deleted id is refused with keyring.ErrDeleted until
// Create with recreate. Set Fail to make every
// key operation return that error, NotReady to make Ready fail, Delay to make each key operation
// wait (honouring its context). Fields may be set before use; change them under no concurrency.
type Fake struct {
	Fail     error
	NotReady error
	Delay    time.Duration

	mu   sync.Mutex
	keys map[string][]byte
	vers map[string]uint32
	dead map[string]bool // deleted ids (tombstones)
}

// NewFake returns an empty Fake.
func NewFake() *Fake {
	return &Fake{keys: map[string][]byte{}, vers: map[string]uint32{}, dead: map[string]bool{}}
}

// Put stores id at version v, as if it had been created (and rotated) before.
func (f *Fake) Put(id string, v uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys[id] = keyBytes(id)
	f.vers[id] = v
}

func keyBytes(id string) []byte { return []byte(fmt.Sprintf("%032s", id))[:32] }

func (f *Fake) wait(ctx context.Context) error {
	if f.Delay == 0 {
		return nil
	}
	select {
	case <-time.After(f.Delay):
		return nil
	case <-ctx.Done():
		return fmt.Errorf("fake keyring: %w", ctx.Err())
	}
}

// Get returns id's current version, creating version 1 if absent.
func (f *Fake) Get(ctx context.Context, id string) (keyring.DataKey, error) {
	if err := f.wait(ctx); err != nil {
		return keyring.DataKey{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Fail != nil {
		return keyring.DataKey{}, f.Fail
	}
	if f.dead[id] {
		return keyring.DataKey{}, keyring.ErrDeleted
	}
	if _, ok := f.keys[id]; !ok {
		f.keys[id] = keyBytes(id)
		f.vers[id] = 1
	}
	return f.key(id, f.vers[id]), nil
}

func (f *Fake) key(id string, v uint32) keyring.DataKey {
	return keyring.DataKey{ID: id, Version: v, Secret: secret.New(append([]byte(nil), f.keys[id]...))}
}

// start waits for Delay and takes the lock; on success the caller must unlock.
func (f *Fake) start(ctx context.Context) error {
	if err := f.wait(ctx); err != nil {
		return err
	}
	f.mu.Lock()
	if f.Fail != nil {
		f.mu.Unlock()
		return f.Fail
	}
	return nil
}

// Lookup returns id's current version; it never creates.
func (f *Fake) Lookup(ctx context.Context, id string) (keyring.DataKey, error) {
	return f.GetVersion(ctx, id, 0)
}

// GetVersion returns version v of id (0: the current one; every version up to the current one
// exists, all with the same bytes); it never creates.
func (f *Fake) GetVersion(ctx context.Context, id string, v uint32) (keyring.DataKey, error) {
	if err := f.start(ctx); err != nil {
		return keyring.DataKey{}, err
	}
	defer f.mu.Unlock()
	switch cur, ok := f.vers[id]; {
	case f.dead[id]:
		return keyring.DataKey{}, keyring.ErrDeleted
	case !ok || v > cur:
		return keyring.DataKey{}, keyring.ErrNotFound
	case v == 0:
		v = cur
	}
	return f.key(id, v), nil
}

// Create creates version 1 of id: keyring.ErrExists when it has a key, keyring.ErrDeleted when
// it was deleted, unless recreate.
func (f *Fake) Create(ctx context.Context, id string, recreate bool) (keyring.DataKey, error) {
	if err := f.start(ctx); err != nil {
		return keyring.DataKey{}, err
	}
	defer f.mu.Unlock()
	if _, ok := f.keys[id]; ok {
		return keyring.DataKey{}, keyring.ErrExists
	}
	if f.dead[id] && !recreate {
		return keyring.DataKey{}, keyring.ErrDeleted
	}
	delete(f.dead, id)
	f.keys[id] = keyBytes(id)
	f.vers[id] = 1
	return f.key(id, 1), nil
}

// List pages through the ids (live and deleted) in order; the cursor is the last id listed.
func (f *Fake) List(ctx context.Context, prefix, after string, limit int) (keyring.ListPage, error) {
	if err := f.start(ctx); err != nil {
		return keyring.ListPage{}, err
	}
	defer f.mu.Unlock()
	var ids []string
	for id := range f.keys {
		ids = append(ids, id)
	}
	for id := range f.dead {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var p keyring.ListPage
	n := 0
	for _, id := range ids {
		if !strings.HasPrefix(id, prefix) || id <= after {
			continue
		}
		if n == limit {
			p.Next = after
			break
		}
		if f.dead[id] {
			p.Deleted = append(p.Deleted, id)
		} else {
			p.IDs = append(p.IDs, id)
		}
		after, n = id, n+1
	}
	return p, nil
}

// Rotate increments id's version, or returns keyring.ErrNotFound.
func (f *Fake) Rotate(ctx context.Context, id string) (uint32, error) {
	if err := f.wait(ctx); err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Fail != nil {
		return 0, f.Fail
	}
	if f.dead[id] {
		return 0, keyring.ErrDeleted
	}
	if _, ok := f.keys[id]; !ok {
		return 0, keyring.ErrNotFound
	}
	f.vers[id]++
	return f.vers[id], nil
}

// Delete removes id's key and remembers it as deleted, or returns keyring.ErrNotFound (absent) or
// keyring.ErrDeleted (deleted already).
func (f *Fake) Delete(ctx context.Context, id string) error {
	if err := f.wait(ctx); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Fail != nil {
		return f.Fail
	}
	if f.dead[id] {
		return keyring.ErrDeleted
	}
	if _, ok := f.keys[id]; !ok {
		return keyring.ErrNotFound
	}
	delete(f.keys, id)
	delete(f.vers, id)
	f.dead[id] = true
	return nil
}

// Ready returns NotReady.
func (f *Fake) Ready(context.Context) error { return f.NotReady }
