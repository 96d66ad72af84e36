package keysource

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/keyring/localkms"
	"github.com/rkms/rkms/store"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		in   error
		want error
	}{
		{fmt.Errorf("get: %w", keyring.ErrInvalidID), extproc.ErrInvalidKeyID},
		{fmt.Errorf("get: %w", keyring.ErrNotFound), extproc.ErrKeyNotFound},
		{fmt.Errorf("get: %w", keyring.ErrUnavailable), extproc.ErrKeyUnavailable},
		{fmt.Errorf("get: %w", &keyring.CreateLimitedError{RetryAfter: 3 * time.Second}), extproc.ErrKeyCreateLimited},
		{fmt.Errorf("get: %w", keyring.ErrCreateLimited), extproc.ErrKeyCreateLimited},
		{errors.New("every region refused"), extproc.ErrKeyUnavailable},
	}
	for _, tc := range tests {
		got := Classify(tc.in)
		if !errors.Is(got, tc.want) || !errors.Is(got, tc.in) {
			t.Errorf("Classify(%v) = %v, want %v wrapping the cause", tc.in, got, tc.want)
		}
		if tc.want == extproc.ErrKeyCreateLimited && errors.Is(got, extproc.ErrKeyUnavailable) {
			t.Errorf("Classify(%v) = %v: a limited creation must be ErrKeyCreateLimited and not unavailable", tc.in, got)
		}
	}
	var cle *extproc.CreateLimitedError
	got := Classify(fmt.Errorf("get: %w", &keyring.CreateLimitedError{RetryAfter: 3 * time.Second}))
	if !errors.As(got, &cle) || cle.RetryAfter != 3*time.Second {
		t.Errorf("retry delay lost: %v", got)
	}
}

// TestKeyringLookup: Lookup never creates; an absent key is ErrKeyUnknown (403), not
// ErrKeyNotFound (which means "authentication failed" for a ciphertext).
func TestKeyringLookup(t *testing.T) {
	kr, err := keyring.New(store.NewMemory(), localRegions(t), keyring.Options{CreateRate: 1, CreateBurst: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer kr.Close()
	ks := Keyring{kr}
	ctx := context.Background()
	if _, err := ks.Lookup(ctx, "tenant-a"); !errors.Is(err, extproc.ErrKeyUnknown) || errors.Is(err, extproc.ErrKeyNotFound) {
		t.Fatalf("Lookup of an absent key: %v, want ErrKeyUnknown only", err)
	}
	if _, err := ks.Lookup(ctx, "bad id"); !errors.Is(err, extproc.ErrInvalidKeyID) {
		t.Fatalf("bad id: %v", err)
	}
	cur, err := ks.Current(ctx, "tenant-a")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ks.Lookup(ctx, "tenant-a"); err != nil || got.Version != cur.Version {
		t.Fatalf("Lookup after Current: %+v %v", got, err)
	}
	var cle *extproc.CreateLimitedError
	if _, err := ks.Current(ctx, "tenant-b"); !errors.As(err, &cle) || cle.RetryAfter != time.Second {
		t.Fatalf("second creation with a burst of 1: %v, want a CreateLimitedError of 1s", err)
	}
}

func localRegions(t *testing.T) []keyring.Region {
	t.Helper()
	dir := t.TempDir()
	var regions []keyring.Region
	for _, name := range []string{"a", "b", "c"} {
		r, err := localkms.Open(filepath.Join(dir, "kms"), name, nil)
		if err != nil {
			t.Fatal(err)
		}
		regions = append(regions, r)
	}
	return regions
}

func TestKeyringKeys(t *testing.T) {
	dir := t.TempDir()
	var regions []keyring.Region
	for _, name := range []string{"a", "b", "c"} {
		r, err := localkms.Open(filepath.Join(dir, "kms"), name, nil)
		if err != nil {
			t.Fatal(err)
		}
		regions = append(regions, r)
	}
	kr, err := keyring.New(store.NewMemory(), regions, keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer kr.Close()
	ks := Keyring{kr}
	ctx := context.Background()
	cur, err := ks.Current(ctx, "tenant-a")
	if err != nil || cur.ID != "tenant-a" || cur.Version != 1 || cur.Secret == nil {
		t.Fatalf("Current: %+v %v", cur, err)
	}
	v1, err := ks.Version(ctx, "tenant-a", 1)
	if err != nil || v1.Secret != cur.Secret {
		t.Fatalf("Version: %+v %v", v1, err)
	}
	if _, err := ks.Version(ctx, "tenant-a", 2); !errors.Is(err, extproc.ErrKeyNotFound) {
		t.Fatalf("absent version: %v", err)
	}
	if _, err := ks.Current(ctx, "bad id"); !errors.Is(err, extproc.ErrInvalidKeyID) {
		t.Fatalf("bad id: %v", err)
	}
}

// TestKeyringLifecycle: a retired version is extproc.ErrKeyRetired (403), not ErrKeyNotFound
// (authentication failed); seals are counted and a version out of seals is ErrKeySealLimit and
// ErrKeyUnavailable.
func TestKeyringLifecycle(t *testing.T) {
	kr, err := keyring.New(store.NewMemory(), localRegions(t), keyring.Options{MaxSeals: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer kr.Close()
	ks := Keyring{kr}
	ctx := context.Background()
	cur, err := ks.Current(ctx, "tenant-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Rotate(ctx, "tenant-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.SetMinDecryptVersion(ctx, "tenant-a", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Version(ctx, "tenant-a", 1); !errors.Is(err, extproc.ErrKeyRetired) || errors.Is(err, extproc.ErrKeyNotFound) {
		t.Fatalf("retired version: %v, want ErrKeyRetired only", err)
	}
	// cur is version 1, no longer current: its seals are refused, and the retry takes version 2.
	if err := ks.ReserveSeals(ctx, "tenant-a", cur.Version, 1); !errors.Is(err, extproc.ErrKeySealLimit) || !errors.Is(err, extproc.ErrKeyUnavailable) {
		t.Fatalf("seal under a rotated version: %v", err)
	}
	cur, err = ks.Current(ctx, "tenant-a")
	if err != nil || cur.Version != 2 {
		t.Fatalf("Current after rotation: %+v %v", cur, err)
	}
	// The block is the whole limit (1000): once half is used, the replica reserves the next in
	// the background, finds it would pass the limit and rotates instead, early and never late.
	// Whether that rotation lands before the loop ends is a race, so the version may refuse
	// from seal 501 on; never past 1000.
	sealed := 0
	for ; sealed <= 1000; sealed++ {
		if err := ks.ReserveSeals(ctx, "tenant-a", cur.Version, 1); err != nil {
			if !errors.Is(err, extproc.ErrKeySealLimit) || !errors.Is(err, extproc.ErrKeyUnavailable) {
				t.Fatalf("seal %d: %v, want ErrKeySealLimit", sealed+1, err)
			}
			break
		}
	}
	if sealed < 500 || sealed > 1000 {
		t.Fatalf("%d seals under a 1000-seal version, want 500..1000 (rotated early by at most a block, never late)", sealed)
	}
	if next, err := ks.Current(ctx, "tenant-a"); err != nil || next.Version != 3 {
		t.Fatalf("Current after the seal limit: %+v %v", next, err)
	}
}
