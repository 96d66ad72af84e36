package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/keyring/internal/fakeregion"
	"github.com/rkms/rkms/store/storetest"
)

func TestCreateWithRegionDownThenRepair(t *testing.T) {
	e := newEnv(t, 3)
	k := e.keyring(t, keyring.Options{})
	e.fakes[2].Down(true)
	dk := mustGet(t, k, "k")
	want := keyBytes(t, dk)

	rec := mustRecord(t, e.st, "k")
	v := rec.Versions[0]
	if len(v.Wrapped) != 2 || !slices.Equal(v.Missing, []string{"r3"}) {
		t.Fatalf("version %+v, want 2 copies and r3 missing", v)
	}
	if s := k.Stats(); s.PendingRepairs != 1 {
		t.Fatalf("pending repairs %d, want 1", s.PendingRepairs)
	}
	// While r3 is down a repair pass changes nothing.
	k.RepairNow(context.Background())
	if rec := mustRecord(t, e.st, "k"); len(rec.Versions[0].Wrapped) != 2 || k.Stats().PendingRepairs != 1 {
		t.Fatal("repair pass with r3 down changed the record or dropped the id")
	}

	e.fakes[2].Down(false)
	k.RepairNow(context.Background())
	rec = mustRecord(t, e.st, "k")
	v = rec.Versions[0]
	if len(v.Wrapped) != 3 || len(v.Missing) != 0 {
		t.Fatalf("after repair: %+v", v)
	}
	pt, err := e.fakes[2].Decrypt(context.Background(), v.Wrapped["r3"].Blob, keyring.EncryptionContext("k", 1))
	if err != nil || !bytes.Equal(pt, want) {
		t.Fatalf("repaired copy: err %v, same key %v", err, bytes.Equal(pt, want))
	}
	if s := k.Stats(); s.PendingRepairs != 0 || s.RepairedCopies != 1 {
		t.Fatalf("stats after repair %+v", s)
	}
}

func TestReadNoticesIncompleteRecords(t *testing.T) {
	e := newEnv(t, 3)
	e.fakes[1].Down(true)
	mustGet(t, e.keyring(t, keyring.Options{}), "k") // this replica then "crashes" before repairing
	e.fakes[1].Down(false)
	k := e.keyring(t, keyring.Options{}) // a fresh replica learns of the gap from a read
	if k.Stats().PendingRepairs != 0 {
		t.Fatal("fresh keyring has pending repairs")
	}
	mustGet(t, k, "k")
	if k.Stats().PendingRepairs != 1 {
		t.Fatal("read did not enqueue the incomplete record")
	}
	k.RepairNow(context.Background())
	if rec := mustRecord(t, e.st, "k"); len(rec.Versions[0].Wrapped) != 3 {
		t.Fatalf("record not repaired: %+v", rec.Versions[0])
	}
}

func TestRepairAfterBreakerClosesInBackground(t *testing.T) {
	e := newEnv(t, 3)
	k, err := keyring.New(e.st, e.regions(), keyring.Options{
		BreakerThreshold: 1, BreakerCooldown: 20 * time.Millisecond, RepairInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	e.fakes[2].Down(true)
	mustGet(t, k, "k")
	if len(mustRecord(t, e.st, "k").Versions[0].Wrapped) != 2 {
		t.Fatal("want 2 copies while r3 is down")
	}
	e.fakes[2].Down(false)
	// The breaker's probe succeeds after the cooldown, which triggers a repair pass at once
	// (the repair interval is an hour).
	deadline := time.Now().Add(5 * time.Second)
	for len(mustRecord(t, e.st, "k").Versions[0].Wrapped) != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("not repaired in time; status %+v stats %+v", k.RegionStatus(), k.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTooFewRegions(t *testing.T) {
	tests := []struct {
		name string
		down []int
		min  int
	}{
		{"two of three down, majority", []int{0, 1}, 0},
		{"all down", []int{0, 1, 2}, 0},
		{"one down, all three required", []int{1}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 3)
			k := e.keyring(t, keyring.Options{MinRegions: tt.min})
			for _, i := range tt.down {
				e.fakes[i].Down(true)
			}
			_, err := k.Get(context.Background(), "k")
			if !errors.Is(err, keyring.ErrUnavailable) {
				t.Fatalf("Get: %v, want ErrUnavailable", err)
			}
			var agg *keyring.RegionErrors
			if !errors.As(err, &agg) || len(agg.Errors) != len(tt.down) {
				t.Fatalf("error %v does not carry each failed region's cause", err)
			}
			if e.st.Len() != 0 || e.st.Calls().Create != 0 {
				t.Fatal("something was stored")
			}
			if k.Stats().CacheEntries != 0 {
				t.Fatal("a key was cached")
			}
		})
	}
}

func TestGenerateFallsBackToNextRegion(t *testing.T) {
	e := newEnv(t, 3)
	k := e.keyring(t, keyring.Options{})
	e.fakes[0].Fail(fakeregion.Generate, fmt.Errorf("%w: throttled", keyring.ErrRegionUnavailable))
	mustGet(t, k, "k")
	if e.fakes[1].Calls(fakeregion.Generate) != 1 || e.fakes[2].Calls(fakeregion.Encrypt) != 1 {
		t.Fatal("generation did not fall back to r2")
	}
	// r1 failed to generate and was not asked to wrap: it is recorded missing and repaired later.
	if v := mustRecord(t, e.st, "k").Versions[0]; len(v.Wrapped) != 2 || !slices.Equal(v.Missing, []string{"r1"}) {
		t.Fatalf("version %+v", v)
	}
}

func TestLosingTheCreateRaceReturnsTheWinner(t *testing.T) {
	e := newEnv(t, 3)
	other := e.keyring(t, keyring.Options{})
	k := e.keyring(t, keyring.Options{})
	var winner []byte
	// Just before k's Create, another replica creates the same id.
	e.st.SetHook(func(ctx context.Context, op storetest.MemoryOp, id string) error {
		if op == storetest.OpCreate && winner == nil {
			winner = []byte{}
			winner = keyBytes(t, mustGet(t, other, id))
		}
		return nil
	})
	got := keyBytes(t, mustGet(t, k, "k"))
	e.st.SetHook(nil)
	if !bytes.Equal(got, winner) {
		t.Fatal("loser of the create race returned its own key instead of the winner's")
	}
	if k.Stats().Created != 0 || other.Stats().Created != 1 {
		t.Fatal("created counters wrong")
	}
}

func TestTwoKeyringsRaceOnOneStore(t *testing.T) {
	e := newEnv(t, 3)
	a := e.keyring(t, keyring.Options{})
	b := e.keyring(t, keyring.Options{})
	const n = 100
	keysA, keysB := make([][]byte, n), make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		id := fmt.Sprintf("race-%d", i)
		wg.Go(func() { keysA[i] = keyBytes(t, mustGet(t, a, id)) })
		wg.Go(func() { keysB[i] = keyBytes(t, mustGet(t, b, id)) })
	}
	wg.Wait()
	for i := range n {
		if !bytes.Equal(keysA[i], keysB[i]) {
			t.Fatalf("id race-%d: the keyrings disagree", i)
		}
	}
	if got := a.Stats().Created + b.Stats().Created; got != n {
		t.Fatalf("%d records created, want %d", got, n)
	}
}

// A repair must never overwrite a record that was deleted and re-created between the repair's
// read and its write: the re-created record holds another data key, which would be lost. The
// store gives the re-created record revisions the deleted one never had, so the repair's
// compare-and-swap fails, and the re-read record's source copy differs, so nothing is written.
func TestRepairNeverReplacesADifferentKey(t *testing.T) {
	e := newEnv(t, 3)
	k := e.keyring(t, keyring.Options{})
	other := e.keyring(t, keyring.Options{})
	e.fakes[2].Down(true)
	mustGet(t, k, "k")
	e.fakes[2].Down(false)

	var (
		recreated    []byte
		recreatedRev int64
	)
	e.st.SetHook(func(ctx context.Context, op storetest.MemoryOp, id string) error {
		if op == storetest.OpUpdate && recreated == nil {
			recreated = []byte{}
			if err := other.Delete(ctx, id); err != nil {
				t.Errorf("delete: %v", err)
			}
			recreated = keyBytes(t, mustRecreate(t, other, id)) // all three regions up: 3 copies
			recreatedRev = mustRecord(t, e.st, id).Revision
		}
		return nil
	})
	k.RepairNow(context.Background())
	e.st.SetHook(nil)

	rec := mustRecord(t, e.st, "k")
	v := rec.Versions[0]
	if len(v.Wrapped) != 3 {
		t.Fatalf("re-created record has %d copies", len(v.Wrapped))
	}
	for _, f := range e.fakes {
		pt, err := f.Decrypt(context.Background(), v.Wrapped[f.Name()].Blob, keyring.EncryptionContext("k", 1))
		if err != nil || !bytes.Equal(pt, recreated) {
			t.Fatalf("copy in %s does not open to the re-created key (err %v): the re-created key was lost", f.Name(), err)
		}
	}
	if rec.Revision != recreatedRev {
		t.Fatalf("repair wrote to the re-created record (revision %d, re-created at %d)", rec.Revision, recreatedRev)
	}
	if k.Stats().PendingRepairs != 0 {
		t.Fatal("complete record left pending")
	}
}

func TestRepairRetriesOnConflict(t *testing.T) {
	e := newEnv(t, 3)
	k := e.keyring(t, keyring.Options{})
	other := e.keyring(t, keyring.Options{})
	e.fakes[2].Down(true)
	first := keyBytes(t, mustGet(t, k, "k"))
	e.fakes[2].Down(false)
	rotated := false
	e.st.SetHook(func(ctx context.Context, op storetest.MemoryOp, id string) error {
		if op == storetest.OpUpdate && !rotated {
			rotated = true
			if _, err := other.Rotate(ctx, id); err != nil { // bumps the revision under the repair
				t.Errorf("rotate: %v", err)
			}
		}
		return nil
	})
	k.RepairNow(context.Background())
	e.st.SetHook(nil)
	rec := mustRecord(t, e.st, "k")
	if len(rec.Versions) != 2 || len(rec.Versions[0].Wrapped) != 3 || len(rec.Versions[0].Missing) != 0 {
		t.Fatalf("record after conflicting repair: %+v", rec)
	}
	pt, err := e.fakes[2].Decrypt(context.Background(), rec.Versions[0].Wrapped["r3"].Blob, keyring.EncryptionContext("k", 1))
	if err != nil || !bytes.Equal(pt, first) {
		t.Fatal("repaired copy of version 1 does not open to version 1's key")
	}
}
