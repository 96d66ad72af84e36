package keyring

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/rkms/rkms/secret"
	"github.com/rkms/rkms/store"
)

// unwrap opens ver's data key in the first usable region holding a copy, falling back to the
// others in health and latency order. It returns the key and the region that opened it.
//
// A version wrapped under a branch key (hierarchical mode) is opened locally instead, under the
// branch key that opens like any key; the region returned is then "".
func (k *Keyring) unwrap(ctx context.Context, id string, ver store.Version) (*secret.Key, string, error) {
	if ver.IsBranchWrapped() {
		key, err := k.unwrapBranch(ctx, id, ver)
		return key, "", err
	}
	encCtx := EncryptionContext(id, ver.Number)
	// The copies name their regions; every configured region (shared or a tenant's own) is in
	// the registry, so records of both kinds open, and a tenant's copies are only ever in its
	// own regions.
	usable, skipped := k.h.ordered(k.h.regions)
	var errs RegionErrors
	for _, r := range usable {
		w, ok := ver.Wrapped[r.name]
		if !ok {
			continue
		}
		var pt []byte
		err := k.h.call(ctx, r, opDecrypt, func(ctx context.Context) error {
			var err error
			pt, err = r.Decrypt(ctx, w.Blob, encCtx)
			return err
		})
		if err == nil && len(pt) != DataKeySize {
			clear(pt)
			err = fmt.Errorf("%w: unwrapped key has %d bytes, want %d", ErrRegionRejected, len(pt), DataKeySize)
		}
		if err == nil {
			return k.newSecret(pt), r.name, nil
		}
		if ctx.Err() != nil {
			return nil, "", fmt.Errorf("unwrap key %q version %d: %w: %w", id, ver.Number, ErrUnavailable, err)
		}
		errs.add(r.name, opDecrypt.String(), err)
	}
	for _, r := range skipped {
		if _, ok := ver.Wrapped[r.name]; ok {
			errs.add(r.name, opDecrypt.String(), errBreakerOpen)
		}
	}
	what := fmt.Sprintf("unwrap key %q version %d", id, ver.Number)
	if len(errs.Errors) == 0 {
		return nil, "", fmt.Errorf("%s: no configured region holds a copy", what)
	}
	return nil, "", errs.classify(what)
}

// newVersion makes version n of id: under a branch key in hierarchical mode, else by KMS in the
// regions id is wrapped under (a tenant's own, or the shared ones).
func (k *Keyring) newVersion(ctx context.Context, id string, n uint32) (*secret.Key, store.Version, error) {
	if k.hierarchical(id) {
		return k.newBranchVersion(ctx, id, n)
	}
	return k.newKMSVersion(ctx, id, n, k.setFor(id))
}

// newKMSVersion generates a data key for version n of id in one region of set (falling back to
// the next) and wraps it in every other usable region of set in parallel. It fails, wiping the
// key, when fewer than the set's MinRegions copies exist.
func (k *Keyring) newKMSVersion(ctx context.Context, id string, n uint32, set *regionSet) (*secret.Key, store.Version, error) {
	encCtx := EncryptionContext(id, n)
	usable, skipped := k.h.ordered(set.regions)
	var errs RegionErrors
	var missing []string
	for _, r := range skipped {
		errs.add(r.name, opGenerate.String(), errBreakerOpen)
		missing = append(missing, r.name)
	}
	wrapped := make(map[string]store.Wrapped, len(set.regions))
	var key *secret.Key
	var rest []*regionState
	for i, r := range usable {
		var pt, blob []byte
		err := k.h.call(ctx, r, opGenerate, func(ctx context.Context) error {
			var err error
			pt, blob, err = r.GenerateDataKey(ctx, encCtx)
			return err
		})
		if err == nil && (len(pt) != DataKeySize || len(blob) == 0) {
			clear(pt)
			err = fmt.Errorf("%w: generated key has %d bytes, want %d", ErrRegionRejected, len(pt), DataKeySize)
		}
		if err != nil {
			errs.add(r.name, opGenerate.String(), err)
			missing = append(missing, r.name)
			continue
		}
		key = k.newSecret(pt)
		wrapped[r.name] = store.Wrapped{KeyID: r.KeyID(), Blob: blob}
		rest = usable[i+1:]
		break
	}
	if key == nil {
		return nil, store.Version{}, fmt.Errorf("no region generated a data key, %d required: %w: %w", set.minRegions, ErrUnavailable, &errs)
	}
	for _, res := range k.encryptAll(ctx, key, rest, encCtx) {
		if res.err != nil {
			errs.add(res.r.name, opEncrypt.String(), res.err)
			missing = append(missing, res.r.name)
			continue
		}
		wrapped[res.r.name] = res.w
	}
	if len(wrapped) < set.minRegions {
		key.Wipe()
		return nil, store.Version{}, fmt.Errorf("%d of %d regions wrapped the data key, %d required: %w: %w",
			len(wrapped), len(set.regions), set.minRegions, ErrUnavailable, &errs)
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		k.log.Warn("key version stored without some regions' copies; repair pending",
			"key_id", id, "version", n, "missing", missing, "cause", errs.Error())
	}
	return key, store.Version{
		Number:  n,
		Created: k.opts.Now().UTC().Truncate(1e9),
		Wrapped: wrapped,
		Missing: missing,
	}, nil
}

type encryptResult struct {
	r   *regionState
	w   store.Wrapped
	err error
}

// encryptAll wraps key in each region in parallel, each call with its own deadline.
func (k *Keyring) encryptAll(ctx context.Context, key *secret.Key, regions []*regionState, encCtx map[string]string) []encryptResult {
	out := make([]encryptResult, len(regions))
	if len(regions) == 0 {
		return out
	}
	err := key.Use(func(pt []byte) error {
		var wg sync.WaitGroup
		for i, r := range regions {
			wg.Go(func() {
				var blob []byte
				err := k.h.call(ctx, r, opEncrypt, func(ctx context.Context) error {
					var err error
					blob, err = r.Encrypt(ctx, pt, encCtx)
					return err
				})
				if err == nil && len(blob) == 0 {
					err = fmt.Errorf("%w: empty ciphertext", ErrRegionRejected)
				}
				out[i] = encryptResult{r: r, w: store.Wrapped{KeyID: r.KeyID(), Blob: blob}, err: err}
			})
		}
		wg.Wait()
		return nil
	})
	if err != nil {
		for i, r := range regions {
			out[i] = encryptResult{r: r, err: err}
		}
	}
	return out
}

// create makes version 1 of id and stores it first-write-wins; if another writer won, it opens
// the winner's key instead. It first takes a token of the creation rate limit.
func (k *Keyring) create(ctx context.Context, id string, gen uint64) (DataKey, error) {
	if err := k.allowCreate(id); err != nil {
		return DataKey{}, fmt.Errorf("create key %q: %w", id, err)
	}
	key, ver, err := k.newVersion(ctx, id, 1)
	if err != nil {
		return DataKey{}, fmt.Errorf("create key %q: %w", id, err)
	}
	rec := &store.Record{ID: id, Current: 1, Versions: []store.Version{ver}}
	err = k.storeWrite(ctx, rec, true)
	if err == nil || errors.Is(err, store.ErrExists) {
		k.neg.remove(id)
	}
	if errors.Is(err, store.ErrExists) {
		key.Wipe()
		won, err := k.storeGet(ctx, id)
		if err != nil {
			return DataKey{}, fmt.Errorf("create key %q: lost the race, then: %w", id, err)
		}
		return k.open(ctx, id, won, won.Current, gen)
	}
	if err != nil {
		key.Wipe()
		return DataKey{}, fmt.Errorf("create key %q: %w", id, err)
	}
	k.created.Add(1)
	if len(ver.Missing) > 0 {
		k.enqueue(id)
	}
	k.log.Info("key created", "key_id", id, "regions", len(ver.Wrapped))
	key = k.cache.put(gen, id, 1, 1, 0, key, k.origin(ver, ""))
	return DataKey{ID: id, Version: 1, Secret: key}, nil
}

// Rotate adds a new version of id's data key (generated and wrapped like a new key) and makes it
// current for new Gets on this keyring; other replicas switch when their cache entry expires.
// It returns the new version number. Errors wrap ErrNotFound, ErrInvalidID or ErrUnavailable.
func (k *Keyring) Rotate(ctx context.Context, id string) (uint32, error) {
	if k.closed.Load() {
		return 0, ErrClosed
	}
	if err := ValidateID(id); err != nil {
		return 0, err
	}
	dk, _, err := k.rotate(ctx, id, ReasonAdmin, nil)
	if err != nil {
		return 0, err
	}
	return dk.Version, nil
}

// rotate adds a version to id's record and caches it as current, if due says the record read
// still needs one (always when due is nil): of several replicas that find a version due at once,
// the compare-and-swap lets one rotate and the others find it rotated. It returns the new key,
// or, when the record was not due (any more), no key and the record read.
func (k *Keyring) rotate(ctx context.Context, id, reason string, due func(*store.Record) bool) (DataKey, *store.Record, error) {
	gen := k.cache.generation()
	var key *secret.Key
	var ver store.Version
	defer func() {
		if key != nil {
			key.Wipe()
		}
	}()
	for range maxCASAttempts {
		rec, err := k.storeGet(ctx, id)
		if err != nil {
			return DataKey{}, nil, fmt.Errorf("rotate: %w", err)
		}
		if due != nil && !due(rec) {
			return DataKey{}, rec, nil
		}
		rec = rec.Clone()
		var top uint32
		for _, v := range rec.Versions {
			top = max(top, v.Number)
		}
		if top == math.MaxUint32 {
			return DataKey{}, nil, fmt.Errorf("rotate key %q: version numbers exhausted", id)
		}
		if key == nil || ver.Number != top+1 {
			if key != nil {
				key.Wipe()
			}
			key, ver, err = k.newVersion(ctx, id, top+1)
			if err != nil {
				return DataKey{}, nil, fmt.Errorf("rotate key %q: %w", id, err)
			}
		}
		rec.Versions = append(rec.Versions, ver)
		rec.Current = ver.Number
		err = k.storeWrite(ctx, rec, false)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return DataKey{}, nil, fmt.Errorf("rotate: %w", err)
		}
		if len(ver.Missing) > 0 {
			k.enqueue(id)
		}
		k.neg.remove(id)
		k.countRotation(reason)
		k.log.Info("key rotated", "key_id", id, "version", ver.Number, "reason", reason)
		if IsBranchKeyID(id) {
			// Cache the new branch version first, then re-wrap every tenant under it.
			defer k.startRewrap()
		}
		dk := DataKey{ID: id, Version: ver.Number,
			Secret: k.cache.put(gen, id, ver.Number, ver.Number, rec.MinDecryptVersion, key, k.origin(ver, ""))}
		key = nil
		return dk, nil, nil
	}
	return DataKey{}, nil, fmt.Errorf("rotate key %q: record kept changing: %w", id, ErrUnavailable)
}
