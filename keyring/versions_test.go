package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/secret"
)

func TestRotateAndGetVersion(t *testing.T) {
	e := newEnv(t, 3)
	k := e.keyring(t, keyring.Options{})
	ctx := context.Background()
	v1 := keyBytes(t, mustGet(t, k, "k"))
	n, err := k.Rotate(ctx, "k")
	if err != nil || n != 2 {
		t.Fatalf("Rotate = %d, %v; want 2", n, err)
	}
	cur := mustGet(t, k, "k")
	if cur.Version != 2 || bytes.Equal(keyBytes(t, cur), v1) {
		t.Fatalf("after rotation Get returned v%d (same key as v1: %v)", cur.Version, bytes.Equal(keyBytes(t, cur), v1))
	}
	v2 := keyBytes(t, cur)

	// A fresh replica sees the new current version and can open the old one.
	k2 := e.keyring(t, keyring.Options{})
	if dk := mustGet(t, k2, "k"); dk.Version != 2 || !bytes.Equal(keyBytes(t, dk), v2) {
		t.Fatalf("fresh keyring: Get returned v%d", dk.Version)
	}
	old, err := k2.GetVersion(ctx, "k", 1)
	if err != nil || old.Version != 1 || !bytes.Equal(keyBytes(t, old), v1) {
		t.Fatalf("GetVersion(1) = v%d, %v", old.Version, err)
	}
	// Now both are cached.
	e.reset()
	for _, v := range []uint32{1, 2} {
		if _, err := k2.GetVersion(ctx, "k", v); err != nil {
			t.Fatal(err)
		}
	}
	if e.totalCalls() != 0 {
		t.Fatal("cached versions made KMS calls")
	}

	tests := []struct {
		name string
		id   string
		v    uint32
	}{
		{"version zero", "k", 0},
		{"future version", "k", 3},
		{"unknown id", "nope", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := k2.GetVersion(ctx, tt.id, tt.v); !errors.Is(err, keyring.ErrNotFound) {
				t.Fatalf("GetVersion(%q, %d) = %v, want ErrNotFound", tt.id, tt.v, err)
			}
		})
	}
	if e.st.Len() != 1 {
		t.Fatal("GetVersion of an unknown id created a record")
	}
}

func TestGetVersionNeverCreates(t *testing.T) {
	e := newEnv(t, 2)
	k := e.keyring(t, keyring.Options{})
	if _, err := k.GetVersion(context.Background(), "absent", 1); !errors.Is(err, keyring.ErrNotFound) {
		t.Fatalf("GetVersion: %v", err)
	}
	if _, err := k.Rotate(context.Background(), "absent"); !errors.Is(err, keyring.ErrNotFound) {
		t.Fatalf("Rotate: %v", err)
	}
	if e.st.Len() != 0 || e.totalCalls() != 0 {
		t.Fatal("GetVersion or Rotate created something")
	}
}

func TestConcurrentRotationsAllLand(t *testing.T) {
	e := newEnv(t, 3)
	a, b := e.keyring(t, keyring.Options{}), e.keyring(t, keyring.Options{})
	mustGet(t, a, "k")
	var wg sync.WaitGroup
	var mu sync.Mutex
	var got []uint32
	for i := range 6 {
		k := a
		if i%2 == 1 {
			k = b
		}
		wg.Go(func() {
			n, err := k.Rotate(context.Background(), "k")
			if err != nil {
				t.Errorf("Rotate: %v", err)
				return
			}
			mu.Lock()
			got = append(got, n)
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(got)
	if !slices.Equal(got, []uint32{2, 3, 4, 5, 6, 7}) {
		t.Fatalf("rotations returned %v, want 2..7 each once", got)
	}
	rec := mustRecord(t, e.st, "k")
	if rec.Current != 7 || len(rec.Versions) != 7 {
		t.Fatalf("record current %d with %d versions", rec.Current, len(rec.Versions))
	}
	// Each version opens under its own number only.
	k := e.keyring(t, keyring.Options{})
	seen := map[string]bool{}
	for v := uint32(1); v <= 7; v++ {
		dk, err := k.GetVersion(context.Background(), "k", v)
		if err != nil {
			t.Fatal(err)
		}
		seen[string(keyBytes(t, dk))] = true
	}
	if len(seen) != 7 {
		t.Fatalf("%d distinct keys across 7 versions", len(seen))
	}
}

func TestDelete(t *testing.T) {
	e := newEnv(t, 3)
	k := e.keyring(t, keyring.Options{})
	ctx := context.Background()
	dk := mustGet(t, k, "k")
	before := keyBytes(t, dk)
	if err := k.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	rec := mustRecord(t, e.st, "k")
	if !rec.IsTombstone() || len(rec.Versions) != 0 || !rec.Deleted.Equal(e.clock.Now().UTC()) {
		t.Fatalf("record after Delete: deleted %v, %d versions; want a tombstone without versions", rec.Deleted, len(rec.Versions))
	}
	// Evicted from this replica's cache and wiped (grace 0 in tests).
	if err := dk.Secret.Use(func([]byte) error { return nil }); !errors.Is(err, secret.ErrWiped) {
		t.Fatalf("deleted key not wiped: %v", err)
	}
	// Nothing re-creates a deleted id by accident, and every refusal says why.
	refusals := []struct {
		name string
		call func() error
	}{
		{"Get", func() error { _, err := k.Get(ctx, "k"); return err }},
		{"Lookup", func() error { _, err := k.Lookup(ctx, "k"); return err }},
		{"GetVersion", func() error { _, err := k.GetVersion(ctx, "k", 1); return err }},
		{"Rotate", func() error { _, err := k.Rotate(ctx, "k"); return err }},
		{"Delete", func() error { return k.Delete(ctx, "k") }},
		{"Create", func() error { _, err := k.Create(ctx, "k", false); return err }},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, keyring.ErrDeleted) || !errors.Is(err, keyring.ErrNotFound) || keyring.ClassOf(err) != keyring.ClassDeleted {
				t.Fatalf("%s of a deleted id = %v, want ErrDeleted (also ErrNotFound, class deleted)", tc.name, err)
			}
		})
	}
	if rec := mustRecord(t, e.st, "k"); !rec.IsTombstone() {
		t.Fatal("a refused call changed the tombstone")
	}
	// Only an explicit re-create brings the id back: a new, different key, version 1.
	after := mustRecreate(t, k, "k")
	if after.Version != 1 || bytes.Equal(keyBytes(t, after), before) {
		t.Fatalf("re-created key: version %d, equal to the deleted one: %v", after.Version, bytes.Equal(keyBytes(t, after), before))
	}
	if got := keyBytes(t, mustGet(t, k, "k")); !bytes.Equal(got, keyBytes(t, after)) {
		t.Fatal("Get after re-create does not return the re-created key")
	}
}

func TestDeleteAbsent(t *testing.T) {
	e := newEnv(t, 3)
	k := e.keyring(t, keyring.Options{})
	err := k.Delete(context.Background(), "never")
	if !errors.Is(err, keyring.ErrNotFound) || errors.Is(err, keyring.ErrDeleted) {
		t.Fatalf("Delete of an absent id = %v, want ErrNotFound, not ErrDeleted", err)
	}
	if e.st.Len() != 0 {
		t.Fatal("Delete of an absent id stored something")
	}
}

func TestDeleteWindowOnOtherReplicas(t *testing.T) {
	e := newEnv(t, 3)
	a := e.keyring(t, keyring.Options{CacheTTL: time.Minute})
	b := e.keyring(t, keyring.Options{CacheTTL: time.Minute})
	want := keyBytes(t, mustGet(t, a, "k"))
	mustGet(t, b, "k")
	if err := a.Delete(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	// b still serves it from its cache until its TTL passes: the documented deletion window.
	if got := keyBytes(t, mustGet(t, b, "k")); !bytes.Equal(got, want) {
		t.Fatal("replica b lost the key before its TTL")
	}
	e.clock.Advance(time.Minute)
	b.SweepCache()
	if dk, err := b.Get(context.Background(), "k"); !errors.Is(err, keyring.ErrDeleted) {
		t.Fatalf("replica b after its TTL: Get = %+v, %v; want ErrDeleted", dk, err)
	}
}
