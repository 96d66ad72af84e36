// Package keyringtest provides an in-memory stand-in for the keyring, for tests of the APIs that
// sit on top of it (the admin HTTP API and the gRPC key API). It is not for production: its keys
// are derived from their ids.
package keyringtest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/secret"
)

// Fake implements the keyring's Get, Rotate, Delete and Ready in memory. Set Fail to make every
// key operation return that error, NotReady to make Ready fail, Delay to make each key operation
// wait (honouring its context). Fields may be set before use; change them under no concurrency.
type Fake struct {
	Fail     error
	NotReady error
	Delay    time.Duration

	mu   sync.Mutex
	keys map[string][]byte
	vers map[string]uint32
}

// NewFake returns an empty Fake.
func NewFake() *Fake { return &Fake{keys: map[string][]byte{}, vers: map[string]uint32{}} }

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
	if _, ok := f.keys[id]; !ok {
		f.keys[id] = keyBytes(id)
		f.vers[id] = 1
	}
	return keyring.DataKey{ID: id, Version: f.vers[id], Secret: secret.New(append([]byte(nil), f.keys[id]...))}, nil
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
	if _, ok := f.keys[id]; !ok {
		return 0, keyring.ErrNotFound
	}
	f.vers[id]++
	return f.vers[id], nil
}

// Delete removes id, or returns keyring.ErrNotFound.
func (f *Fake) Delete(ctx context.Context, id string) error {
	if err := f.wait(ctx); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Fail != nil {
		return f.Fail
	}
	if _, ok := f.keys[id]; !ok {
		return keyring.ErrNotFound
	}
	delete(f.keys, id)
	return nil
}

// Ready returns NotReady.
func (f *Fake) Ready(context.Context) error { return f.NotReady }
