package keyring

import (
	"context"
	"fmt"
	"time"

	"github.com/rkms/rkms/store"
)

// KeyInfo is a key's lifecycle state: what GET /key shows beside the key. It holds no key
// material.
type KeyInfo struct {
	ID                string
	Current           uint32
	MinDecryptVersion uint32
	Versions          []VersionInfo
	// RotationDue is when the current version is rotated by age (zero: age rotation off).
	RotationDue time.Time
	// MaxSeals is the seal limit per version (0: none); SealsLeft is how many seals the current
	// version may still reserve before it is rotated.
	MaxSeals  uint64
	SealsLeft uint64
}

// VersionInfo is one version's lifecycle state.
type VersionInfo struct {
	Number    uint32
	Created   time.Time
	Retired   time.Time // zero: not retired
	Destroyed time.Time // zero: copies kept
	// DestroyAfter is when a retired version's copies become due for destruction (zero when
	// not retired, destroyed already, or automatic destruction is off).
	DestroyAfter time.Time
	Seals        uint64 // seals reserved under the version by every replica
	Regions      int    // regions holding a copy
}

// Describe returns id's lifecycle state from the store; it never opens a key or calls KMS.
// Errors wrap ErrNotFound, ErrDeleted, ErrInvalidID or ErrUnavailable.
func (k *Keyring) Describe(ctx context.Context, id string) (KeyInfo, error) {
	if k.closed.Load() {
		return KeyInfo{}, ErrClosed
	}
	if err := ValidateID(id); err != nil {
		return KeyInfo{}, err
	}
	rec, err := k.storeGet(ctx, id)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("describe key: %w", err)
	}
	return k.info(rec), nil
}

func (k *Keyring) info(rec *store.Record) KeyInfo {
	ki := KeyInfo{ID: rec.ID, Current: rec.Current, MinDecryptVersion: rec.MinDecryptVersion, MaxSeals: k.opts.MaxSeals}
	for _, v := range rec.Versions {
		vi := VersionInfo{Number: v.Number, Created: v.Created, Retired: v.Retired, Destroyed: v.Destroyed,
			Seals: v.Seals, Regions: len(v.Wrapped)}
		if !v.Retired.IsZero() && !v.IsDestroyed() && k.opts.RetireGrace >= 0 {
			vi.DestroyAfter = v.Retired.Add(k.opts.RetireGrace)
		}
		ki.Versions = append(ki.Versions, vi)
		if v.Number == rec.Current {
			ki.RotationDue = k.rotationDueAt(k.maxAgeFor(rec.ID), v.Created)
			if m := k.opts.MaxSeals; m > 0 && v.Seals < m {
				ki.SealsLeft = m - v.Seals
			}
		}
	}
	return ki
}
