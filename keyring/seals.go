package keyring

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

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

// SealBlock is the most seals one ReserveSeals call may ask for (one reservation block: MaxSeals
// divided by 1024, between 1,000 and 1,000,000), or 0 when the keyring counts no seals
// (Options.MaxSeals zero).
func (k *Keyring) SealBlock() int {
	if k.opts.MaxSeals == 0 {
		return 0
	}
	return int(k.sealBlock())
}

// sealBlock is how many seals one reservation takes.
func (k *Keyring) sealBlock() uint64 {
	m := k.opts.MaxSeals
	return min(max(m/1024, minSealBlock), maxSealBlock, m)
}

// sealBudget is this replica's allowance of seals under one version of one key. One exists per
// key that seals (up to the cache's size), so it holds no pointer and is no object of its own:
// the budgets keep them in one pointer-free slice, which the garbage collector does not scan.
// As separate objects (with a mutex and a pointer each), 100,000 budgets were 10.6 ms of one
// collection's mark CPU (BenchmarkGCWarmKeyring), and rkms's collections are what the tail
// latency of its encrypt-only requests pays for (BENCHMARKS.md). Only budgets.mu guards a
// budget, and no reference to one leaves the lock: a dropped budget's slot can be reused for
// another key without a late update reaching it.
type sealBudget struct {
	avail   int64 // seals reserved in the store and not used yet
	version uint32
}

// pendingReservation is one reservation of a block under way for one version of a key; err is
// set before done is closed.
type pendingReservation struct {
	version uint32
	done    chan struct{}
	err     error // its failure, for the callers that waited on it
}

// budgets maps key ids to the budget of their current version. Bounded: past
// Options.CacheMaxKeys entries (or 10,000 with the cache off) an arbitrary one is dropped, and
// its unused seals with it (which only makes its rotation come earlier).
type budgets struct {
	mu      sync.Mutex
	index   map[string]int32 // key id (the key cache's copy when cached) -> its slot
	slots   []sealBudget
	free    []int32
	pending map[string]*pendingReservation // reservations under way (few), by key id
	max     int
	// canonical returns the string to keep as id's map key (the key cache's copy: see
	// cache.canonical); nil: id itself.
	canonical func(id string) string
}

func newBudgets(max int, canonical func(string) string) budgets {
	return budgets{index: make(map[string]int32), pending: make(map[string]*pendingReservation), max: max, canonical: canonical}
}

// slot returns the slot of id's budget for version v, starting one (dropping an arbitrary
// budget past max) when id has none or one of an older version. bs.mu must be held. Errors
// wrap ErrSealLimit: v is older than the version this replica counts for id (it was rotated:
// the caller must take the current key again).
func (bs *budgets) slot(id string, v uint32) (int32, error) {
	i, ok := bs.index[id]
	switch {
	case ok && bs.slots[i].version == v:
		return i, nil
	case ok && bs.slots[i].version > v:
		return 0, fmt.Errorf("key %q version %d was rotated: %w", id, v, ErrSealLimit)
	case ok: // an older version's budget: the new version starts from nothing
		bs.slots[i] = sealBudget{version: v}
		return i, nil
	}
	if len(bs.index) >= bs.max {
		for drop, j := range bs.index {
			delete(bs.index, drop)
			bs.free = append(bs.free, j)
			break
		}
	}
	if n := len(bs.free); n > 0 {
		i = bs.free[n-1]
		bs.free = bs.free[:n-1]
	} else {
		bs.slots = append(bs.slots, sealBudget{})
		i = int32(len(bs.slots) - 1)
	}
	bs.slots[i] = sealBudget{version: v}
	if bs.canonical != nil {
		id = bs.canonical(id) // lock order: budgets, then cache
	}
	bs.index[id] = i
	return i, nil
}

// take takes need seals of version v of id when its budget holds them. It returns the
// reservation to start (start true: the caller starts it; when the budget falls under low
// seals, ahead of need) or, when it took none, the one to wait for.
func (bs *budgets) take(id string, v uint32, need, low int64) (p *pendingReservation, start, took bool, err error) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	i, err := bs.slot(id, v)
	if err != nil {
		return nil, false, false, err
	}
	b := &bs.slots[i]
	if b.avail >= need {
		b.avail -= need
		if b.avail >= low {
			return nil, false, true, nil
		}
		p, start = bs.reservation(id, v)
		return p, start, true, nil
	}
	p, start = bs.reservation(id, v)
	return p, start, false, nil
}

// reservation returns the reservation under way for version v of id, or a new one (start
// true) when there is none. bs.mu must be held.
func (bs *budgets) reservation(id string, v uint32) (*pendingReservation, bool) {
	if p := bs.pending[id]; p != nil && p.version == v {
		return p, false
	}
	p := &pendingReservation{version: v, done: make(chan struct{})}
	bs.pending[id] = p
	return p, true
}

// has reports whether version v of id has need seals left.
func (bs *budgets) has(id string, v uint32, need int64) bool {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	i, ok := bs.index[id]
	return ok && bs.slots[i].version == v && bs.slots[i].avail >= need
}

// add adds n reserved seals to version v of id's budget; nothing when the budget was dropped
// or moved to another version meanwhile (the seals are lost, which only makes the rotation
// come earlier).
func (bs *budgets) add(id string, v uint32, n int64) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if i, ok := bs.index[id]; ok && bs.slots[i].version == v {
		bs.slots[i].avail += n
	}
}

// finish ends p, a reservation for id: err is its outcome; spent says its version may reserve
// no more (it is rotated, or must be), and the version's budget is dropped so that the next
// seal starts one for the new version.
func (bs *budgets) finish(id string, p *pendingReservation, err error, spent bool) {
	bs.mu.Lock()
	p.err = err
	if bs.pending[id] == p {
		delete(bs.pending, id)
	}
	if i, ok := bs.index[id]; ok && spent && bs.slots[i].version == p.version {
		delete(bs.index, id)
		bs.slots[i] = sealBudget{}
		bs.free = append(bs.free, i)
	}
	bs.mu.Unlock()
	close(p.done)
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
	need := int64(n)
	half := int64(k.sealBlock() / 2)
	for {
		p, start, took, err := k.budgets.take(id, v, need, half)
		if start {
			k.refill(id, p) // ahead of need, or for it: in the background
		}
		switch {
		case err != nil:
			return err
		case took:
			return nil
		}
		select {
		case <-p.done:
		case <-ctx.Done():
			return fmt.Errorf("wait for a seal reservation of key %q: %w: %w", id, ErrUnavailable, ctx.Err())
		}
		if p.err != nil && !k.budgets.has(id, v, need) {
			return p.err
		}
	}
}

// refill runs p, a reservation of one block for version p.version of id, in the background;
// p.done is closed when it ends, its err set before.
func (k *Keyring) refill(id string, p *pendingReservation) {
	id = strings.Clone(id) // the caller's string may be a view of a request (kept past it here)
	// Not in k.loops: Close may be waiting on it already. The reservation ends with k.bg.
	go func() {
		err := k.reserve(k.bg, id, p.version)
		k.budgets.finish(id, p, err, errors.Is(err, ErrSealLimit))
	}()
}

// reserve adds one block to the stored seal count of version of id (compare-and-swap) and to
// its budget.
// When the block would pass MaxSeals, or the version is no longer current, it rotates the key
// (if no replica did) and returns ErrSealLimit.
func (k *Keyring) reserve(ctx context.Context, id string, version uint32) error {
	block := k.sealBlock()
	for range maxCASAttempts {
		rec, err := k.storeGet(ctx, id)
		if err != nil {
			return fmt.Errorf("reserve seals: %w", err)
		}
		rec = rec.Clone()
		i := -1
		for j, v := range rec.Versions {
			if v.Number == version {
				i = j
			}
		}
		if i < 0 || rec.Current != version || k.pastMaxAge(rec) {
			k.cache.remove(id) // this replica's current is stale: read the store again
			return fmt.Errorf("key %q version %d is not current: %w", id, version, ErrSealLimit)
		}
		ver := &rec.Versions[i]
		if ver.Seals > k.opts.MaxSeals-block {
			k.cache.remove(id)
			_, _, err := k.rotate(ctx, id, ReasonSeals, func(r *store.Record) bool { return r.Current == version })
			if err != nil {
				k.log.Warn("seal limit reached and rotation failed", "key_id", id, "version", version, "err", err)
			}
			return fmt.Errorf("key %q version %d: %w", id, version, ErrSealLimit)
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
		k.budgets.add(id, version, int64(block))
		return nil
	}
	return fmt.Errorf("reserve seals of key %q: record kept changing: %w", id, ErrUnavailable)
}
