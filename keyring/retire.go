package keyring

import (
	"golang.org/x/time/rate"

	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rkms/rkms/store"
)

// Rotation reasons, the values of the rotation metric's reason label.
const (
	ReasonAge   = "age"   // the current version reached Options.MaxAge (less a lead: Keyring.RotationDueAt)
	ReasonSeals = "seals" // the current version's seal reservations reached Options.MaxSeals
	ReasonAdmin = "admin" // an explicit Rotate
)

// ErrInvalidVersion: a lifecycle call named a version the record cannot take (a min decrypt
// version above the current version). The caller's fault; it is classed [ClassInvalid].
var ErrInvalidVersion = errors.New("invalid key version")

// cacheLife is the longest a replica may keep sealing under a current key it fetched: the cache
// TTL, one sweep interval, and MaxStale (stale-if-error serves past the TTL).
func (k *Keyring) cacheLife() time.Duration {
	if k.cache.disabled {
		return 0
	}
	return CacheWindow(k.opts.CacheTTL, k.opts.MaxStale)
}

// CacheWindow is the longest a replica keeps sealing under a current key it fetched, for a
// cache TTL and MaxStale: the TTL, one sweep interval, and MaxStale (stale-if-error serves past
// the TTL). Age rotation ([Options.MaxAge]) comes this much before MaxAge.
func CacheWindow(cacheTTL, maxStale time.Duration) time.Duration {
	if cacheTTL <= 0 {
		return 0
	}
	return cacheTTL + sweepInterval(cacheTTL) + max(maxStale, 0)
}

// CheckMaxAge refuses a max age (0: off) that would leave a version less than the cache window
// of use: it must be at least twice [CacheWindow]. [New] and the config loader both use it.
func CheckMaxAge(maxAge, window time.Duration) error {
	if maxAge < 0 {
		return fmt.Errorf("must not be negative; 0 disables (got %s)", maxAge)
	}
	if maxAge > 0 && maxAge < 2*window {
		return fmt.Errorf("%s must be at least twice the cache window %s (cache ttl, one sweep interval and max stale)", maxAge, window)
	}
	return nil
}

// checkRotation checks Options.MaxAge against this keyring's cache window.
func (k *Keyring) checkRotation() error {
	if err := CheckMaxAge(k.opts.MaxAge, k.cacheLife()); err != nil {
		return fmt.Errorf("max age: %w", err)
	}
	if err := CheckMaxAge(max(k.opts.Hierarchical.RotateEvery, 0), k.cacheLife()); err != nil {
		return fmt.Errorf("branch key rotate every: %w", err)
	}
	return nil
}

// RotationDueAt is when a version created at created is rotated by age: MaxAge after its
// creation less a lead, the longer of the cache window ([Keyring.cacheLife], so that no replica
// seals with it past MaxAge) and a tenth of MaxAge (so that a rotation that fails when it comes
// due, every KMS region down, is retried for that long before seals stop: 9 days at 90). Zero
// when age rotation is off.
func (k *Keyring) RotationDueAt(created time.Time) time.Time {
	return k.rotationDueAt(k.opts.MaxAge, created)
}

// maxAgeFor is the max age of id's versions: Hierarchical.RotateEvery for branch keys (in
// either mode, so that branch keys made in hierarchical mode keep rotating), MaxAge otherwise.
func (k *Keyring) maxAgeFor(id string) time.Duration {
	if IsBranchKeyID(id) {
		return max(k.opts.Hierarchical.RotateEvery, 0)
	}
	return k.opts.MaxAge
}

func (k *Keyring) rotationDueAt(maxAge time.Duration, created time.Time) time.Time {
	if maxAge <= 0 {
		return time.Time{}
	}
	return created.Add(maxAge - max(k.cacheLife(), maxAge/10))
}

// rotationDue says why rec's current version must be rotated now, or "".
func (k *Keyring) rotationDue(rec *store.Record) string {
	cur, ok := rec.Version(rec.Current)
	if !ok {
		return ""
	}
	if due := k.rotationDueAt(k.maxAgeFor(rec.ID), cur.Created); !due.IsZero() && !k.opts.Now().Before(due) {
		return ReasonAge
	}
	if m := k.opts.MaxSeals; m > 0 && cur.Seals > m-k.sealBlock() {
		return ReasonSeals
	}
	return ""
}

// pastMaxAge reports whether rec's current version is older than MaxAge itself: it must not seal
// any more, rotated or not.
func (k *Keyring) pastMaxAge(rec *store.Record) bool {
	cur, ok := rec.Version(rec.Current)
	maxAge := k.maxAgeFor(rec.ID)
	return ok && maxAge > 0 && !k.opts.Now().Before(cur.Created.Add(maxAge))
}

// loadDue handles a record whose current version is due for rotation in the read path (Get,
// Lookup): it rotates it (one replica wins the compare-and-swap) and returns the new key. If
// another replica rotated first it opens the record's new current version. If rotation fails
// and the version is not yet past MaxAge, it returns ok false: the caller opens the old version
// without caching it as current, so the next read tries again. Past MaxAge it fails closed.
func (k *Keyring) loadDue(ctx context.Context, id string, rec *store.Record, reason string, gen uint64) (DataKey, bool, error) {
	dk, fresh, err := k.rotate(ctx, id, reason, func(r *store.Record) bool { return k.rotationDue(r) != "" })
	switch {
	case err == nil && fresh == nil:
		return dk, true, nil
	case err == nil:
		dk, err := k.open(ctx, id, fresh, fresh.Current, gen)
		return dk, true, err
	case k.pastMaxAge(rec):
		return DataKey{}, true, fmt.Errorf("key %q version %d is past its max age and could not be rotated: %w", id, rec.Current, err)
	default:
		k.log.Warn("automatic key rotation failed; sealing with the old version for now", "key_id", id,
			"version", rec.Current, "reason", reason, "err", err)
		return DataKey{}, false, nil
	}
}

// retiredErr is the refusal of version v of rec (retired, destroyed or below the minimum), or nil.
func (k *Keyring) retiredErr(id string, rec *store.Record, ver store.Version) error {
	if ver.Number >= rec.MinDecryptVersion && !ver.IsRetired() {
		return nil
	}
	k.refusedRetired.Add(1)
	what := "retired"
	if ver.IsDestroyed() {
		what = "destroyed"
	}
	return fmt.Errorf("key %q version %d is %s (min decrypt version %d): %w", id, ver.Number, what, rec.MinDecryptVersion, ErrVersionRetired)
}

// SetMinDecryptVersion sets id's min decrypt version to v (0..current; 0 and 1 leave every
// version open). Versions below v that were not retired yet are retired now; versions at or above
// v that were retired but not destroyed are open again (un-retired). Destroyed versions stay
// destroyed whatever v says. The id is evicted from this keyring's cache at once; other replicas
// keep versions they have cached until their cache TTL passes. It returns the record's state
// after the change. Errors wrap ErrNotFound, ErrDeleted, ErrInvalidVersion (v above the current
// version), ErrInvalidID or ErrUnavailable.
func (k *Keyring) SetMinDecryptVersion(ctx context.Context, id string, v uint32) (KeyInfo, error) {
	if k.closed.Load() {
		return KeyInfo{}, ErrClosed
	}
	if err := ValidateID(id); err != nil {
		return KeyInfo{}, err
	}
	defer k.cache.remove(id)
	for range maxCASAttempts {
		rec, err := k.storeGet(ctx, id)
		if err != nil {
			return KeyInfo{}, fmt.Errorf("set min decrypt version: %w", err)
		}
		if v > rec.Current {
			return KeyInfo{}, fmt.Errorf("set min decrypt version of key %q to %d: above the current version %d: %w", id, v, rec.Current, ErrInvalidVersion)
		}
		rec = rec.Clone()
		retired, unretired := 0, 0
		now := k.opts.Now().UTC()
		for i := range rec.Versions {
			ver := &rec.Versions[i]
			switch {
			case ver.Number < v && ver.Retired.IsZero():
				ver.Retired = now
				retired++
			case ver.Number >= v && !ver.Retired.IsZero() && !ver.IsDestroyed():
				ver.Retired = time.Time{}
				unretired++
			}
		}
		rec.MinDecryptVersion = v
		err = k.storeWrite(ctx, rec, false)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return KeyInfo{}, fmt.Errorf("set min decrypt version: %w", err)
		}
		k.retired.Add(uint64(retired))
		k.log.Info("key min decrypt version set", "key_id", id, "min_decrypt_version", v, "retired", retired, "unretired", unretired)
		return k.info(rec), nil
	}
	return KeyInfo{}, fmt.Errorf("set min decrypt version of key %q: record kept changing: %w", id, ErrUnavailable)
}

// destroyDue reports whether some version of rec has been retired longer than the retire grace
// and still holds copies.
func (k *Keyring) destroyDue(rec *store.Record) bool {
	if k.opts.RetireGrace < 0 {
		return false
	}
	now := k.opts.Now()
	for _, v := range rec.Versions {
		if !v.Retired.IsZero() && !v.IsDestroyed() && !now.Before(v.Retired.Add(k.opts.RetireGrace)) {
			return true
		}
	}
	return false
}

// noticeLifecycle queues rec for the maintenance pass when a retired version's copies are due
// for destruction.
func (k *Keyring) noticeLifecycle(rec *store.Record) {
	if k.destroyDue(rec) || k.branchRetireDue(rec) > rec.MinDecryptVersion {
		k.enqueue(rec.ID)
	}
}

// MaintainResult is what one maintenance of a key did.
type MaintainResult struct {
	// Rotated is the version that became current, 0 when none did; Reason says why.
	Rotated uint32
	Reason  string
	// Destroyed lists the versions whose copies were deleted.
	Destroyed []uint32
	// Info is the key's state afterwards.
	Info KeyInfo
}

// Maintain runs id's version lifecycle now: it rotates the current version if it is due (by age
// or seal count) and destroys the copies of versions retired longer than Options.RetireGrace.
// The background loop does the same for keys read since they became due, and for every key
// each Options.MaintenanceInterval. Errors wrap ErrNotFound, ErrDeleted, ErrInvalidID or
// ErrUnavailable.
func (k *Keyring) Maintain(ctx context.Context, id string) (MaintainResult, error) {
	if k.closed.Load() {
		return MaintainResult{}, ErrClosed
	}
	if err := ValidateID(id); err != nil {
		return MaintainResult{}, err
	}
	return k.maintainID(ctx, id)
}

func (k *Keyring) maintainID(ctx context.Context, id string) (MaintainResult, error) {
	var res MaintainResult
	rec, err := k.storeGet(ctx, id)
	if err != nil {
		return res, fmt.Errorf("maintain key: %w", err)
	}
	if reason := k.rotationDue(rec); reason != "" {
		dk, fresh, err := k.rotate(ctx, id, reason, func(r *store.Record) bool { return k.rotationDue(r) != "" })
		if err != nil {
			return res, fmt.Errorf("maintain key: %w", err)
		}
		if fresh == nil {
			res.Rotated, res.Reason = dk.Version, reason
		}
	}
	if err := k.retireBranch(ctx, rec); err != nil {
		return res, fmt.Errorf("maintain key: %w", err)
	}
	if hasBranchWrapped(rec) {
		if _, err := k.rewrapID(ctx, id); err != nil {
			return res, fmt.Errorf("maintain key: %w", err)
		}
	}
	rec, res.Destroyed, err = k.destroy(ctx, id)
	if err != nil {
		return res, fmt.Errorf("maintain key: %w", err)
	}
	res.Info = k.info(rec)
	return res, nil
}

// destroy deletes the copies of id's versions retired longer than the grace, compare-and-swap,
// and returns the record and the versions destroyed.
func (k *Keyring) destroy(ctx context.Context, id string) (*store.Record, []uint32, error) {
	for range maxCASAttempts {
		rec, err := k.storeGet(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		if !k.destroyDue(rec) {
			return rec, nil, nil
		}
		rec = rec.Clone()
		now := k.opts.Now().UTC()
		var done []uint32
		for i := range rec.Versions {
			v := &rec.Versions[i]
			if !v.Retired.IsZero() && !v.IsDestroyed() && !now.Before(v.Retired.Add(k.opts.RetireGrace)) {
				v.Wrapped = map[string]store.Wrapped{}
				v.Missing = nil
				v.Destroyed = now
				done = append(done, v.Number)
			}
		}
		err = k.storeWrite(ctx, rec, false)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		k.cache.remove(id)
		k.destroyed.Add(uint64(len(done)))
		k.log.Info("retired key versions destroyed", "key_id", id, "versions", done)
		return rec, done, nil
	}
	return nil, nil, fmt.Errorf("destroy retired versions of key %q: record kept changing: %w", id, ErrUnavailable)
}

// maintainAll runs the maintenance of every live key in the store, page by page. A key that
// fails is logged and left for the next pass.
func (k *Keyring) maintainAll(ctx context.Context) {
	var pace *rate.Limiter
	if k.opts.MaintenanceRate > 0 {
		pace = rate.NewLimiter(rate.Limit(k.opts.MaintenanceRate), 1)
	}
	after := ""
	for ctx.Err() == nil {
		lctx, cancel := context.WithTimeout(ctx, k.opts.CallTimeout)
		p, err := k.st.List(lctx, store.ListOptions{After: after, Limit: store.MaxListLimit})
		cancel()
		if err != nil {
			k.log.Warn("key maintenance pass: list failed; will retry", "err", err)
			return
		}
		for _, e := range p.Entries {
			if e.Deleted {
				continue
			}
			if pace != nil && pace.Wait(ctx) != nil {
				return
			}
			if _, err := k.maintainID(ctx, e.ID); err != nil && !errors.Is(err, ErrNotFound) {
				k.log.Warn("key maintenance failed; will retry", "key_id", e.ID, "err", err)
			}
		}
		if p.Next == "" {
			return
		}
		after = p.Next
	}
}
