package keyring

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"golang.org/x/time/rate"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/store"
)

// rewrapPlan is one version's new branch wrap, tied to the wrap it replaces.
type rewrapPlan struct {
	number uint32
	old    []byte
	branch store.BranchWrap
}

// rewrapID re-wraps every branch-wrapped version of id that is under an older branch key
// version (or another branch key) than its target's current version, with a compare-and-swap:
// a version is changed only while the record still holds the exact wrap the new one was made
// from, so a rewrap racing a rotation, a deletion or a re-creation of id never writes a key the
// record does not hold. It returns how many versions it re-wrapped.
func (k *Keyring) rewrapID(ctx context.Context, id string) (int, error) {
	if envelope.IsReservedKeyID(id) {
		return 0, nil
	}
	for range maxCASAttempts {
		rec, err := k.storeGet(ctx, id)
		if errors.Is(err, ErrNotFound) { // absent or deleted: nothing to re-wrap
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		plans, err := k.planRewrap(ctx, rec)
		if err != nil || len(plans) == 0 {
			return 0, err
		}
		next := rec.Clone()
		n := 0
		for _, p := range plans {
			for i := range next.Versions {
				v := &next.Versions[i]
				if v.Number == p.number && v.IsBranchWrapped() && bytes.Equal(v.Branch.Blob, p.old) {
					v.Branch = p.branch
					n++
				}
			}
		}
		err = k.storeWrite(ctx, next, false)
		switch {
		case err == nil:
			k.rewrapped.Add(uint64(n))
			k.log.Info("key re-wrapped under the current branch key", "key_id", id, "versions", n)
			return n, nil
		case errors.Is(err, store.ErrNotFound):
			return 0, nil
		case !errors.Is(err, store.ErrConflict):
			return 0, err
		}
	}
	return 0, fmt.Errorf("re-wrap key %q: record kept changing: %w", id, ErrUnavailable)
}

// planRewrap opens each version of rec due for a re-wrap and wraps it under its target branch
// key's current version.
func (k *Keyring) planRewrap(ctx context.Context, rec *store.Record) ([]rewrapPlan, error) {
	var plans []rewrapPlan
	for _, v := range rec.Versions {
		if !v.IsBranchWrapped() {
			continue
		}
		target := k.rewrapTarget(rec.ID, v)
		bk, err := k.Get(ctx, target)
		if err != nil {
			return nil, fmt.Errorf("re-wrap key %q: branch key %q: %w", rec.ID, target, err)
		}
		if target == v.Branch.KeyID && bk.Version <= v.Branch.Version {
			continue
		}
		dek, err := k.unwrapBranch(ctx, rec.ID, v)
		if err != nil {
			return nil, fmt.Errorf("re-wrap: %w", err)
		}
		var blob []byte
		err = dek.Use(func(d []byte) error {
			return bk.Secret.Use(func(b []byte) error {
				var err error
				blob, err = WrapKey(b, d, WrapBinding{ID: rec.ID, Version: v.Number, BranchID: target, BranchVersion: bk.Version})
				return err
			})
		})
		dek.Wipe()
		if err != nil {
			return nil, fmt.Errorf("re-wrap key %q version %d: %w", rec.ID, v.Number, err)
		}
		k.localWraps.Add(1)
		plans = append(plans, rewrapPlan{number: v.Number, old: v.Branch.Blob,
			branch: store.BranchWrap{KeyID: target, Version: bk.Version, Blob: blob}})
	}
	return plans, nil
}

// RewrapAll re-wraps every record of the store that is under an older branch key version (the
// background pass that follows a branch rotation on the replica that rotated, paced by
// Hierarchical.RewrapRate). It returns the records re-wrapped; a record that fails is logged and
// left for the next pass (or its next read). [Stats] shows the progress.
func (k *Keyring) RewrapAll(ctx context.Context) (int, error) {
	if k.closed.Load() {
		return 0, ErrClosed
	}
	if !k.rewrapRunning.CompareAndSwap(false, true) {
		return 0, nil // a pass is under way
	}
	defer k.rewrapRunning.Store(false)
	k.rewrapPasses.Add(1)
	var pace *rate.Limiter
	if r := k.opts.Hierarchical.RewrapRate; r > 0 {
		pace = rate.NewLimiter(rate.Limit(r), 1)
	}
	total, after := 0, ""
	for {
		lctx, cancel := context.WithTimeout(ctx, k.opts.CallTimeout)
		p, err := k.st.List(lctx, store.ListOptions{After: after, Limit: store.MaxListLimit})
		cancel()
		if err != nil {
			return total, fmt.Errorf("re-wrap pass: %w", storeError("list key records", "", err))
		}
		for _, e := range p.Entries {
			if e.Deleted || envelope.IsReservedKeyID(e.ID) {
				continue
			}
			if pace != nil {
				if err := pace.Wait(ctx); err != nil {
					return total, fmt.Errorf("re-wrap pass: %w", err)
				}
			}
			k.rewrapScanned.Add(1)
			n, err := k.rewrapID(ctx, e.ID)
			if err != nil {
				k.log.Warn("key re-wrap failed; will retry on read or next pass", "key_id", e.ID, "err", err)
			}
			if n > 0 {
				total++
			}
		}
		if p.Next == "" {
			k.rewrapDone.Add(1)
			return total, nil
		}
		after = p.Next
	}
}

// startRewrap runs RewrapAll in the background (after this keyring rotated a branch key).
func (k *Keyring) startRewrap() {
	if k.closed.Load() || !k.background {
		return
	}
	k.loops.Go(func() {
		if _, err := k.RewrapAll(k.bg); err != nil && k.bg.Err() == nil {
			k.log.Warn("branch re-wrap pass failed; records are re-wrapped on read and by the maintenance pass", "err", err)
		}
	})
}

// branchRetireDue returns the min decrypt version a branch key record must have: the newest
// version created at least Hierarchical.RetireGrace ago (every version below it has been
// replaced for longer than the grace), or the record's own when none is.
func (k *Keyring) branchRetireDue(rec *store.Record) uint32 {
	g := k.opts.Hierarchical.RetireGrace
	if !IsBranchKeyID(rec.ID) || g < 0 {
		return rec.MinDecryptVersion
	}
	now, m := k.opts.Now(), rec.MinDecryptVersion
	for _, v := range rec.Versions {
		if v.Number > m && v.Number <= rec.Current && !now.Before(v.Created.Add(g)) {
			m = v.Number
		}
	}
	return m
}

// retireBranch retires the versions of branch key id replaced longer than the grace ago.
func (k *Keyring) retireBranch(ctx context.Context, rec *store.Record) error {
	m := k.branchRetireDue(rec)
	if m <= rec.MinDecryptVersion {
		return nil
	}
	if _, err := k.SetMinDecryptVersion(ctx, rec.ID, m); err != nil {
		return fmt.Errorf("retire branch key versions below %d: %w", m, err)
	}
	k.branchRetired.Add(1)
	k.log.Warn("branch key versions retired; tenant records still under them no longer open", "key_id", rec.ID, "min_decrypt_version", m)
	return nil
}
