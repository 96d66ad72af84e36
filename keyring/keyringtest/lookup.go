package keyringtest

import (
	"context"

	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/secret"
)

// Lookup returns id's current version like Get, but never creates it: keyring.ErrNotFound when
// absent.
func (f *Fake) Lookup(ctx context.Context, id string) (keyring.DataKey, error) {
	if err := f.wait(ctx); err != nil {
		return keyring.DataKey{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Fail != nil {
		return keyring.DataKey{}, f.Fail
	}
	if _, ok := f.keys[id]; !ok {
		return keyring.DataKey{}, keyring.ErrNotFound
	}
	return keyring.DataKey{ID: id, Version: f.vers[id], Secret: secret.New(append([]byte(nil), f.keys[id]...))}, nil
}
