package keyring

import (
	"context"
	"errors"
	"fmt"

	"github.com/rkms/rkms/store"
)

// Create creates id's key explicitly: version 1, generated and wrapped like a key that Get
// creates, within the same creation rate limit. Unlike Get it never returns an existing key: an
// id with a key fails with ErrExists. An id that was deleted (a tombstone) fails with ErrDeleted
// unless recreate is set; then its tombstone is replaced by the new key, numbered from version 1
// again (ciphertexts of the deleted key stay unreadable: their key is gone). Errors wrap
// ErrExists, ErrDeleted, ErrInvalidID, ErrUnavailable or ErrCreateLimited.
func (k *Keyring) Create(ctx context.Context, id string, recreate bool) (DataKey, error) {
	if k.closed.Load() {
		return DataKey{}, ErrClosed
	}
	if err := ValidateID(id); err != nil {
		return DataKey{}, err
	}
	dk, err := k.createExplicit(ctx, id, recreate)
	if err != nil {
		return DataKey{}, fmt.Errorf("create key %q: %w", id, err)
	}
	return dk, nil
}

func (k *Keyring) createExplicit(ctx context.Context, id string, recreate bool) (DataKey, error) {
	gen := k.cache.generation()
	for range maxCASAttempts {
		old, err := k.storeRead(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			old = nil
		case err != nil:
			return DataKey{}, err
		case !old.IsTombstone():
			return DataKey{}, ErrExists
		case !recreate:
			return DataKey{}, ErrDeleted
		}
		if err := k.allowCreate(id); err != nil {
			return DataKey{}, err
		}
		key, ver, err := k.newVersion(ctx, id, 1)
		if err != nil {
			return DataKey{}, err
		}
		rec := &store.Record{ID: id, Current: 1, Versions: []store.Version{ver}}
		if old != nil {
			rec.Revision = old.Revision
		}
		err = k.storeWrite(ctx, rec, old == nil)
		if errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			key.Wipe() // someone else wrote first: look again
			continue
		}
		if err != nil {
			key.Wipe()
			return DataKey{}, err
		}
		k.neg.remove(id)
		k.created.Add(1)
		if len(ver.Missing) > 0 {
			k.enqueue(id)
		}
		k.log.Info("key created", "key_id", id, "regions", len(ver.Wrapped), "recreated", old != nil)
		key = k.cache.put(gen, id, 1, 1, 0, key, k.origin(ver, ""))
		return DataKey{ID: id, Version: 1, Secret: key}, nil
	}
	return DataKey{}, fmt.Errorf("record kept changing: %w", ErrUnavailable)
}

// ListPage is one page of [Keyring.List].
type ListPage struct {
	// IDs are the live key ids of the page, sorted.
	IDs []string
	// Deleted are the page's deleted ids (tombstones), sorted.
	Deleted []string
	// Next is the cursor of the next page ([store.ListPage.Next]), empty at the end.
	Next string
}

// List returns one page of the key ids that start with prefix (empty: all), from the cursor after
// (empty: the first page), examining at most limit records (1..[store.MaxListLimit]). It never
// reads a key or calls KMS. A page can hold fewer than limit ids while more follow (tombstones
// are reported apart, and the DynamoDB store filters prefixes after reading); the listing ends
// when Next is empty. Order: see [store.ListPage]. Errors wrap ErrInvalidID (a prefix with
// characters no id has) or ErrUnavailable.
func (k *Keyring) List(ctx context.Context, prefix, after string, limit int) (ListPage, error) {
	if k.closed.Load() {
		return ListPage{}, ErrClosed
	}
	if prefix != "" {
		if err := ValidateID(prefix); err != nil {
			return ListPage{}, fmt.Errorf("list prefix: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, k.opts.CallTimeout)
	defer cancel()
	p, err := k.st.List(ctx, store.ListOptions{Prefix: prefix, After: after, Limit: limit})
	if err != nil {
		return ListPage{}, storeError("list key records", prefix, err)
	}
	out := ListPage{Next: p.Next}
	for _, e := range p.Entries {
		if e.Deleted {
			out.Deleted = append(out.Deleted, e.ID)
		} else {
			out.IDs = append(out.IDs, e.ID)
		}
	}
	return out, nil
}
