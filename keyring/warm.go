package keyring

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// warmParallel is how many keys Warm loads at once.
const warmParallel = 8

// RecentIDs returns up to n key ids of the cache, most recently used first (entries kept past
// their TTL for MaxStale included). It returns ids only, never key material: a replica saves
// them so that its next start can [Keyring.Warm] the same keys.
func (k *Keyring) RecentIDs(n int) []string {
	if n <= 0 {
		return nil
	}
	return k.cache.recent(n)
}

// WarmResult counts what [Keyring.Warm] did.
type WarmResult struct {
	Loaded  int // keys opened and cached (or already cached)
	Missing int // ids with no key in the store (deleted since): skipped, never created
	Failed  int // ids whose key could not be opened (invalid id, store or regions unavailable)
}

// Warm opens the current version of each id's key into the cache, a few at a time, so that the
// first requests after a start find them there. It never creates a key: an id without a record
// is skipped. It returns when every id was tried or ctx ended; the error reports ctx's end or,
// if some keys failed, the first failure (Warm is best effort: a failed key is fetched on use).
func (k *Keyring) Warm(ctx context.Context, ids []string) (WarmResult, error) {
	if k.closed.Load() {
		return WarmResult{}, ErrClosed
	}
	var loaded, missing, failed atomic.Int64
	var firstErr error
	var errOnce sync.Once
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(warmParallel, len(ids)) {
		wg.Go(func() {
			for id := range work {
				err := k.warmOne(ctx, id)
				switch {
				case err == nil:
					loaded.Add(1)
				case errors.Is(err, ErrNotFound):
					missing.Add(1)
				default:
					failed.Add(1)
					errOnce.Do(func() { firstErr = err })
				}
			}
		})
	}
feed:
	for _, id := range ids {
		select {
		case work <- id:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	res := WarmResult{Loaded: int(loaded.Load()), Missing: int(missing.Load()), Failed: int(failed.Load())}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("warm cache: %d of %d ids tried: %w", res.Loaded+res.Missing+res.Failed, len(ids), err)
	}
	if firstErr != nil {
		return res, fmt.Errorf("warm cache: %d of %d keys failed, first: %w", res.Failed, len(ids), firstErr)
	}
	return res, nil
}

// warmOne caches id's current version unless it is cached already. ErrNotFound: no record.
func (k *Keyring) warmOne(ctx context.Context, id string) error {
	if _, ok := k.cache.current(id); ok {
		return nil
	}
	if err := ValidateID(id); err != nil {
		return err
	}
	// Its own flight key (NUL never occurs in an id, and "w" is not a version number): a
	// concurrent Get must not share a load that refuses to create.
	_, err := k.flight(ctx, id+"\x00w", id, func(ctx context.Context, id string) (DataKey, error) {
		gen := k.cache.generation()
		rec, err := k.storeGet(ctx, id) // a missing record: ErrNotFound, nothing created
		if err != nil {
			return DataKey{}, err
		}
		return k.open(ctx, id, rec, rec.Current, gen)
	})
	return err
}
