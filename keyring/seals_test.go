package keyring_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/store"
	"github.com/rkms/rkms/store/storetest"
)

// TestSealCountRotationConcurrent has four replicas over one store seal under one key id
// concurrently: no version is ever used for more than MaxSeals seals in total, and each rotated
// version was used for at least MaxSeals less the blocks the replicas held unused.
func TestSealCountRotationConcurrent(t *testing.T) {
	e := newEnv(t, 2)
	var rings []*keyring.Keyring
	for range 4 {
		rings = append(rings, e.keyring(t, keyring.Options{MaxSeals: 10_000}))
	}
	sealConcurrently(t, rings, e.st, 10_000, 60_000)
}

// sealConcurrently seals total values under key id t1 from three workers per keyring, each
// reserving before it seals and taking the current key again on ErrSealLimit, then checks the
// store's versions against maxSeals (whose block is 1,000).
func sealConcurrently(t *testing.T, rings []*keyring.Keyring, st keyring.Store, maxSeals uint64, total int64) {
	t.Helper()
	const block = 1_000 // clamp(maxSeals/1024, 1,000, 1,000,000) for the sizes used here
	const workers = 3   // per replica
	var used sync.Map   // version -> *atomic.Int64
	var sealed atomic.Int64
	var wg sync.WaitGroup
	for _, k := range rings {
		for range workers {
			wg.Go(func() {
				for sealed.Load() < total {
					dk, err := k.Get(t.Context(), "t1")
					if err != nil {
						t.Errorf("Get: %v", err)
						return
					}
					err = k.ReserveSeals(t.Context(), "t1", dk.Version, 1)
					if errors.Is(err, keyring.ErrSealLimit) {
						continue // rotated: take the current key again
					}
					if err != nil {
						t.Errorf("ReserveSeals: %v", err)
						return
					}
					c, _ := used.LoadOrStore(dk.Version, new(atomic.Int64))
					c.(*atomic.Int64).Add(1)
					sealed.Add(1)
				}
			})
		}
	}
	wg.Wait()
	rec := mustRecord(t, st, "t1")
	if len(rec.Versions) < int(uint64(total)/maxSeals) {
		t.Fatalf("%d versions for %d seals at most %d each", len(rec.Versions), total, maxSeals)
	}
	var rotations uint64
	for _, k := range rings {
		rotations += k.Stats().RotationsSeals
	}
	if rotations != uint64(len(rec.Versions)-1) {
		t.Fatalf("%d seal rotations for %d versions", rotations, len(rec.Versions))
	}
	for _, v := range rec.Versions {
		var n int64
		if c, ok := used.Load(v.Number); ok {
			n = c.(*atomic.Int64).Load()
		}
		if v.Seals > maxSeals || n > int64(v.Seals) {
			t.Fatalf("version %d: %d seals used, %d reserved, max %d", v.Number, n, v.Seals, maxSeals)
		}
		if v.Number != rec.Current && n < int64(maxSeals)-int64(len(rings)+1)*block {
			t.Fatalf("version %d rotated after %d seals: earlier than the outstanding blocks allow", v.Number, n)
		}
		t.Logf("version %d: %d seals used, %d reserved", v.Number, n, v.Seals)
	}
}

// TestSealReservationWaitsWithinContext: with no seals left locally, a seal waits for the
// reservation, and gives up with ErrUnavailable when its context ends first; it never seals
// beyond what the store granted.
func TestSealReservationWaitsWithinContext(t *testing.T) {
	e := newEnv(t, 1)
	k := e.keyring(t, keyring.Options{MaxSeals: 5_000})
	dk := mustGet(t, k, "t1")
	release := make(chan struct{})
	e.st.SetHook(func(ctx context.Context, op storetest.MemoryOp, id string) error {
		if op == storetest.OpUpdate {
			<-release
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := k.ReserveSeals(ctx, "t1", dk.Version, 1)
	if !errors.Is(err, keyring.ErrUnavailable) || errors.Is(err, keyring.ErrSealLimit) {
		t.Fatalf("ReserveSeals while the store hangs = %v, want ErrUnavailable", err)
	}
	close(release)
	e.st.SetHook(nil)
	if err := k.ReserveSeals(t.Context(), "t1", dk.Version, 1); err != nil {
		t.Fatalf("ReserveSeals once the store answers: %v", err)
	}
	v, _ := mustRecord(t, e.st, "t1").Version(dk.Version)
	if v.Seals != 1_000 {
		t.Fatalf("stored seals %d, want one block of 1,000", v.Seals)
	}
}

// TestSealLimitAtGet: a record whose current version has no block left is rotated by the next
// Get, so a replica never starts sealing under it.
func TestSealLimitAtGet(t *testing.T) {
	e := newEnv(t, 1)
	k := e.keyring(t, keyring.Options{MaxSeals: 2_000})
	mustGet(t, k, "t1")
	rec := mustRecord(t, e.st, "t1")
	rec.Versions[0].Seals = 1_500
	if err := e.st.Update(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	other := e.keyring(t, keyring.Options{MaxSeals: 2_000})
	if dk := mustGet(t, other, "t1"); dk.Version != 2 {
		t.Fatalf("Get of a record out of seals = version %d, want 2", dk.Version)
	}
	if got := other.Stats().RotationsSeals; got != 1 {
		t.Fatalf("RotationsSeals = %d", got)
	}
	// The first replica still has version 1 cached as current: its reservation fails and
	// sends it to the store, which has version 2.
	dk := mustGet(t, k, "t1")
	if err := k.ReserveSeals(t.Context(), "t1", dk.Version, 1); !errors.Is(err, keyring.ErrSealLimit) {
		t.Fatalf("ReserveSeals under the rotated version = %v, want ErrSealLimit", err)
	}
	if dk := mustGet(t, k, "t1"); dk.Version != 2 {
		t.Fatalf("after the refusal Get = version %d, want 2", dk.Version)
	}
	_ = store.Record{}
}

// TestSealBudgetSharesCacheID: a seal budget keeps no id string of its own while the key is
// cached: with 100,000 keys, 100,000 fewer objects for every garbage collection to mark
// (BenchmarkGCWarmKeyring). The caller's id is a fresh string, as extproc's is per request.
func TestSealBudgetSharesCacheID(t *testing.T) {
	e := newEnv(t, 2)
	k := e.keyring(t, keyring.Options{MaxSeals: 10_000})
	fresh := func() string { return strings.Clone("tenant-1") }
	dk, err := k.Get(t.Context(), fresh())
	if err != nil {
		t.Fatal(err)
	}
	if err := k.ReserveSeals(t.Context(), fresh(), dk.Version, 1); err != nil {
		t.Fatal(err)
	}
	shared, exists := k.BudgetSharesCacheID("tenant-1")
	if !exists || !shared {
		t.Errorf("budget exists %v, keyed by the cache's id string %v: want both", exists, shared)
	}
}
