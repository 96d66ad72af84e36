package keyring

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/rkms/rkms/store"
)

// loopInterval is how often the background loop wakes: often enough to honour the breaker
// cooldown and the repair interval, never more than every 10ms or less than every second.
func loopInterval(o Options) time.Duration {
	d := min(o.BreakerCooldown/2, o.RepairInterval)
	return min(max(d, 10*time.Millisecond), time.Second)
}

// every calls f every interval until ctx ends; the first call comes one interval after start.
// The cache sweep and the maintenance pass each run in their own loop, so that slow repairs or
// probes never delay expiry, and a long maintenance pass never delays either.
func every(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// run is the background loop: breaker probes and repairs.
func (k *Keyring) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	lastRepair := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-k.kick:
			k.repairAll(ctx)
			lastRepair = time.Now()
		case <-t.C:
			k.probeDue(ctx)
			if time.Since(lastRepair) >= k.opts.RepairInterval {
				k.repairAll(ctx)
				lastRepair = time.Now()
			}
		}
	}
}

// probeDue makes one trial call to each region whose breaker cooldown has passed; a region that
// answers is closed again, which triggers a repair pass.
func (k *Keyring) probeDue(ctx context.Context) {
	var wg sync.WaitGroup
	for _, r := range k.h.dueForProbe() {
		wg.Go(func() {
			if err := k.h.probe(ctx, r); err != nil {
				k.log.Debug("kms region probe failed", "region", r.name, "err", err)
			}
		})
	}
	wg.Wait()
}

// triggerRepair asks the background loop for a repair pass now.
func (k *Keyring) triggerRepair() {
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// enqueue records that id's record lacks some region's copy.
func (k *Keyring) enqueue(id string) {
	k.pendingMu.Lock()
	k.pending[id] = struct{}{}
	k.pendingMu.Unlock()
}

// noticeMissing enqueues rec for repair if any of its versions lacks a configured region's copy
// (a region that was down at creation, or one added to the configuration since).
func (k *Keyring) noticeMissing(rec *store.Record) {
	if k.incomplete(rec) {
		k.enqueue(rec.ID)
	}
}

// incomplete reports whether some version of rec lacks a configured region's copy.
func (k *Keyring) incomplete(rec *store.Record) bool {
	for _, v := range rec.Versions {
		if v.IsDestroyed() || v.IsBranchWrapped() {
			continue // nothing left to copy, on purpose; or no KMS copies at all
		}
		for _, r := range k.setFor(rec.ID).regions {
			if _, ok := v.Wrapped[r.name]; !ok {
				return true
			}
		}
	}
	return false
}

// repairAll runs one repair pass over the pending ids.
func (k *Keyring) repairAll(ctx context.Context) {
	k.pendingMu.Lock()
	ids := make([]string, 0, len(k.pending))
	for id := range k.pending {
		ids = append(ids, id)
	}
	k.pendingMu.Unlock()
	slices.Sort(ids)
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		_, merr := k.maintainID(ctx, id)
		if merr != nil && !errors.Is(merr, ErrNotFound) {
			k.log.Warn("key maintenance failed; will retry", "key_id", id, "err", merr)
		}
		done, err := k.repairID(ctx, id)
		if err != nil {
			k.log.Warn("key repair failed; will retry", "key_id", id, "err", err)
		}
		if _, rerr := k.rewrapID(ctx, id); rerr != nil {
			k.log.Warn("key re-wrap failed; will retry", "key_id", id, "err", rerr)
			done = false
		}
		if done && (merr == nil || errors.Is(merr, ErrNotFound)) {
			k.pendingMu.Lock()
			delete(k.pending, id)
			k.pendingMu.Unlock()
		}
	}
}

// fill is the new copies computed for one version, tied to the copy they were made from.
type fill struct {
	number     uint32
	source     string // region whose copy was unwrapped
	sourceBlob []byte // that copy: the fill applies only while the record still holds it
	wraps      map[string]store.Wrapped
}

// repairID adds the missing regions' copies to id's record. It reports done when no configured
// region lacks a copy any more (or the record is gone).
func (k *Keyring) repairID(ctx context.Context, id string) (done bool, err error) {
	rec, err := k.storeGet(ctx, id)
	if errors.Is(err, ErrNotFound) { // absent, or deleted (a tombstone has nothing to repair)
		return true, nil
	}
	if err != nil {
		return false, err
	}
	complete := true
	var fills []fill
	for _, v := range rec.Versions {
		if v.IsDestroyed() || v.IsBranchWrapped() {
			continue
		}
		f, ok := k.planFill(ctx, id, v)
		complete = complete && ok
		if len(f.wraps) > 0 {
			fills = append(fills, f)
		}
	}
	if len(fills) == 0 {
		return complete, nil
	}
	for range maxCASAttempts {
		next, added := applyFills(rec.Clone(), fills)
		if added == 0 {
			// The record changed under us (another replica repaired it, or it holds another
			// key now): done if nothing is missing any more, else the next pass re-plans.
			return !k.incomplete(rec), nil
		}
		err := k.storeWrite(ctx, next, false)
		switch {
		case err == nil:
			k.repaired.Add(uint64(added))
			k.log.Info("key repaired", "key_id", id, "copies_added", added)
			return complete, nil
		case errors.Is(err, store.ErrNotFound):
			return true, nil
		case !errors.Is(err, store.ErrConflict):
			return false, err
		}
		if rec, err = k.storeGet(ctx, id); err != nil {
			if errors.Is(err, ErrNotFound) {
				return true, nil
			}
			return false, err
		}
	}
	return false, errors.New("record kept changing")
}

// planFill unwraps version v and wraps it in each usable region lacking a copy. ok is false when
// some configured region is still left without one.
func (k *Keyring) planFill(ctx context.Context, id string, v store.Version) (f fill, ok bool) {
	ok = true
	var targets []*regionState
	for _, r := range k.setFor(id).regions {
		if _, has := v.Wrapped[r.name]; has {
			continue
		}
		if !r.available() {
			ok = false
			continue
		}
		targets = append(targets, r)
	}
	if len(targets) == 0 {
		return f, ok
	}
	key, src, err := k.unwrap(ctx, id, v)
	if err != nil {
		k.log.Warn("key repair: cannot unwrap", "key_id", id, "version", v.Number, "err", err)
		return f, false
	}
	defer key.Wipe()
	f = fill{number: v.Number, source: src, sourceBlob: v.Wrapped[src].Blob, wraps: make(map[string]store.Wrapped)}
	for _, res := range k.encryptAll(ctx, key, targets, EncryptionContext(id, v.Number)) {
		if res.err != nil {
			ok = false
			continue
		}
		f.wraps[res.r.name] = res.w
	}
	return f, ok
}

// applyFills adds the fills' copies to rec, but only to versions that still hold the exact
// source copy each fill was made from: a record deleted and re-created in between holds a
// different data key, which a fill must never touch. It returns rec and the copies added.
func applyFills(rec *store.Record, fills []fill) (*store.Record, int) {
	added := 0
	for _, f := range fills {
		i := slices.IndexFunc(rec.Versions, func(v store.Version) bool { return v.Number == f.number })
		if i < 0 {
			continue
		}
		v := &rec.Versions[i]
		if src, ok := v.Wrapped[f.source]; !ok || !bytes.Equal(src.Blob, f.sourceBlob) {
			continue
		}
		for name, w := range f.wraps {
			if _, has := v.Wrapped[name]; !has {
				v.Wrapped[name] = w
				added++
			}
		}
		v.Missing = slices.DeleteFunc(v.Missing, func(name string) bool {
			_, has := v.Wrapped[name]
			return has
		})
	}
	return rec, added
}

// maintainLoop runs the maintenance pass over every key (rotation by age, destruction of retired
// versions) every interval, the first at a random moment within the first interval.
func (k *Keyring) maintainLoop(ctx context.Context, interval time.Duration) {
	first := time.NewTimer(rand.N(interval))
	select {
	case <-ctx.Done():
		first.Stop()
		return
	case <-first.C:
	}
	k.maintainAll(ctx)
	every(ctx, interval, func() { k.maintainAll(ctx) })
}
