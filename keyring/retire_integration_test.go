package keyring_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/rkms/rkms/keyring"
)

// TestIntegrationRetireAndDestroy runs the version lifecycle on three real local-kms regions and
// a DynamoDB store on dynalite: a retired version refuses to open, on a restarted replica too;
// lowering the minimum brings it back; after the grace its wrapped copies are gone from the
// stored item, for good.
func TestIntegrationRetireAndDestroy(t *testing.T) {
	e := newRealEnv(t)
	clock := newClock()
	const grace = 48 * time.Hour
	opts := keyring.Options{Now: clock.Now, RetireGrace: grace}
	k := e.keyring(t, opts)
	ctx := t.Context()
	v1 := keyBytes(t, mustGet(t, k, "customer-1"))
	if _, err := k.Rotate(ctx, "customer-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.SetMinDecryptVersion(ctx, "customer-1", 2); err != nil {
		t.Fatal(err)
	}
	restarted := e.keyring(t, opts)
	for _, r := range []*keyring.Keyring{k, restarted} {
		if _, err := r.GetVersion(ctx, "customer-1", 1); !errors.Is(err, keyring.ErrVersionRetired) {
			t.Fatalf("GetVersion of the retired version = %v, want ErrVersionRetired", err)
		}
	}
	if _, err := k.SetMinDecryptVersion(ctx, "customer-1", 1); err != nil {
		t.Fatal(err)
	}
	if dk, err := restarted.GetVersion(ctx, "customer-1", 1); err != nil || !bytes.Equal(keyBytes(t, dk), v1) {
		t.Fatalf("un-retired version 1: %v", err)
	}
	if _, err := k.SetMinDecryptVersion(ctx, "customer-1", 2); err != nil {
		t.Fatal(err)
	}
	clock.Advance(grace)
	res, err := restarted.Maintain(ctx, "customer-1")
	if err != nil || len(res.Destroyed) != 1 || res.Destroyed[0] != 1 {
		t.Fatalf("Maintain after the grace = %+v, %v", res, err)
	}
	rec := mustRecord(t, e.st, "customer-1")
	v, _ := rec.Version(1)
	if !v.IsDestroyed() || len(v.Wrapped) != 0 || rec.MinDecryptVersion != 2 {
		t.Fatalf("stored version 1 after destruction: %+v (min decrypt %d)", v, rec.MinDecryptVersion)
	}
	if cur, _ := rec.Version(2); len(cur.Wrapped) != 3 {
		t.Fatalf("current version lost copies: %d", len(cur.Wrapped))
	}
	if _, err := k.SetMinDecryptVersion(ctx, "customer-1", 1); err != nil {
		t.Fatal(err)
	}
	fresh := e.keyring(t, opts)
	if _, err := fresh.GetVersion(ctx, "customer-1", 1); !errors.Is(err, keyring.ErrVersionRetired) {
		t.Fatalf("GetVersion of a destroyed version = %v, want ErrVersionRetired", err)
	}
	if dk := mustGet(t, fresh, "customer-1"); dk.Version != 2 {
		t.Fatalf("current version %d", dk.Version)
	}
}

// TestIntegrationSealCount runs seal-count rotation with three replicas over DynamoDB (dynalite)
// and real local-kms regions: the conditional writes of the reservations hold MaxSeals.
func TestIntegrationSealCount(t *testing.T) {
	e := newRealEnv(t)
	var rings []*keyring.Keyring
	for range 3 {
		rings = append(rings, e.keyring(t, keyring.Options{MaxSeals: 5_000}))
	}
	sealConcurrently(t, rings, e.st, 5_000, 16_000)
}
