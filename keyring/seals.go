package keyring

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/rkms/rkms/store"
)

// Seal-count rotation (Options.MaxSeals). Every replica reserves seals in blocks before it uses
// them: a compare-and-swap that adds the block to store.Version.Seals, refused when the stored
// total plus the block would pass MaxSeals (the version is rotated instead). So the seals made
// under a version by all replicas together never exceed MaxSeals; the version is rotated early by
// at most the blocks other replicas hold unused.

// Bounds of the reservation block: MaxSeals/1024, within these, and never above MaxSeals.
const (
	minSealBlock = 1_000
	maxSealBlock = 1_000_000
)

// sealBlock is how many seals one reservation takes.
func (k *Keyring) sealBlock() uint64 {
	m := k.opts.MaxSeals
	return min(max(m/1024, minSealBlock), maxSealBlock, m)
}

// sealBudget is this replica's allowance of seals under one version of one key. One exists per
// key that seals (up to the cache's size), so it is kept small (32 bytes): the key id is the
// budgets map's key, and what only a reservation under way needs lives in a pendingReservation.
type sealBudget struct {
	avail   atomic.Int64 // seals reserved in the store and not used yet
	version uint32

	mu      sync.Mutex
	spent   bool                // the version may reserve no more: it is rotated, or must be
	pending *pendingReservation // the reservation under way; nil when none is
}

// pendingReservation is one reservation of a block under way; err is set before done is closed.
type pendingReservation struct {
	done chan struct{}
	err  error // its failure, for the callers that waited on it
}

// budgets maps key ids to the budget of their current version. Bounded: past
// Options.CacheMaxKeys entries (or 10,000 with the cache off) an arbitrary one is dropped, and
// its unused seals with it (which only makes its rotation come earlier).
type budgets struct {
	mu  sync.Mutex
	m   map[string]*sealBudget
	max int
	// canonical returns the string to keep as id's map key (the key cache's copy: see
	// cache.canonical); nil: id itself.
	canonical func(id string) string
}

// get returns the budget of version v of id, and false when v is older than the version this
// replica counts for id (it was rotated: the caller must take the current key again).
func (bs *budgets) get(id string, v uint32) (*sealBudget, bool) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b := bs.m[id]
	switch {
	case b != nil && b.version == v:
		return b, true
	case b != nil && b.version > v:
		return nil, false
	}
	if len(bs.m) >= bs.max {
		for drop := range bs.m {
			delete(bs.m, drop)
			break
		}
	}
	b = &sealBudget{version: v}
	if bs.canonical != nil {
		id = bs.canonical(id) // lock order: budgets, then cache
	}
	bs.m[id] = b
	return b, true
}

// drop forgets b, the budget of id (spent), so that the next seal of id starts a budget for
// the new version.
func (bs *budgets) drop(id string, b *sealBudget) {
	bs.mu.Lock()
	if bs.m[id] == b {
		delete(bs.m, id)
	}
	bs.mu.Unlock()
}

// ReserveSeals must be called before n values are sealed under version v of id (the version Get
// or Lookup returned). It returns at once while this replica holds reserved seals, and starts
// reserving the next block in the background when half of the block is used. When none are
// left it waits, within ctx, for the reservation under way. Errors wrap ErrSealLimit when the
// version may seal no more (it has been, or is being, rotated: Get the current key again, once)
// and ErrUnavailable when the store could not be reached or ctx ended first. With
// Options.MaxSeals zero it does nothing.
func (k *Keyring) ReserveSeals(ctx context.Context, id string, v uint32, n int) error {
	if k.opts.MaxSeals == 0 || n <= 0 {
		return nil
	}
	if k.closed.Load() {
		return ErrClosed
	}
	if uint64(n) > k.sealBlock() {
		return fmt.Errorf("reserve %d seals of key %q: more than one block (%d): %w", n, id, k.sealBlock(), ErrSealLimit)
	}
	b, ok := k.budgets.get(id, v)
	if !ok {
		return fmt.Errorf("key %q version %d was rotated: %w", id, v, ErrSealLimit)
	}
	need := int64(n)
	half := int64(k.sealBlock() / 2)
	for {
		left := b.avail.Load()
		if left >= need {
			if !b.avail.CompareAndSwap(left, left-need) {
				continue
			}
			if left-need < half {
				k.refill(id, b) // ahead of need, in the background
			}
			return nil
		}
		p, err := k.refill(id, b)
		if err != nil {
			return err
		}
		select {
		case <-p.done:
		case <-ctx.Done():
			return fmt.Errorf("wait for a seal reservation of key %q: %w: %w", id, ErrUnavailable, ctx.Err())
		}
		if p.err != nil && b.avail.Load() < need {
			return p.err
		}
	}
}

// refill starts a reservation for b, the budget of id, unless one is under way, and returns it
// (its done channel is closed when it ends, its err set before); or the error that says b is
// spent.
func (k *Keyring) refill(id string, b *sealBudget) (*pendingReservation, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.spent {
		return nil, fmt.Errorf("key %q version %d: %w", id, b.version, ErrSealLimit)
	}
	if b.pending != nil {
		return b.pending, nil
	}
	p := &pendingReservation{done: make(chan struct{})}
	b.pending = p
	// Not in k.loops: Close may be waiting on it already. The reservation ends with k.bg.
	go func() {
		err := k.reserve(k.bg, id, b)
		spent := errors.Is(err, ErrSealLimit)
		b.mu.Lock()
		p.err = err
		b.pending = nil
		b.spent = b.spent || spent
		b.mu.Unlock()
		if spent {
			k.budgets.drop(id, b)
		}
		close(p.done)
	}()
	return p, nil
}

// reserve adds one block to the stored seal count of b's version (b is the budget of id) (compare-and-swap) and to b.
// When the block would pass MaxSeals, or the version is no longer current, it rotates the key
// (if no replica did) and returns ErrSealLimit.
func (k *Keyring) reserve(ctx context.Context, id string, b *sealBudget) error {
	block := k.sealBlock()
	for range maxCASAttempts {
		rec, err := k.storeGet(ctx, id)
		if err != nil {
			return fmt.Errorf("reserve seals: %w", err)
		}
		rec = rec.Clone()
		i := -1
		for j, v := range rec.Versions {
			if v.Number == b.version {
				i = j
			}
		}
		if i < 0 || rec.Current != b.version || k.pastMaxAge(rec) {
			k.cache.remove(id) // this replica's current is stale: read the store again
			return fmt.Errorf("key %q version %d is not current: %w", id, b.version, ErrSealLimit)
		}
		ver := &rec.Versions[i]
		if ver.Seals > k.opts.MaxSeals-block {
			k.cache.remove(id)
			_, _, err := k.rotate(ctx, id, ReasonSeals, func(r *store.Record) bool { return r.Current == b.version })
			if err != nil {
				k.log.Warn("seal limit reached and rotation failed", "key_id", id, "version", b.version, "err", err)
			}
			return fmt.Errorf("key %q version %d: %w", id, b.version, ErrSealLimit)
		}
		ver.Seals += block
		err = k.storeWrite(ctx, rec, false)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reserve seals: %w", err)
		}
		k.sealReservations.Add(1)
		b.avail.Add(int64(block))
		return nil
	}
	return fmt.Errorf("reserve seals of key %q: record kept changing: %w", id, ErrUnavailable)
}
