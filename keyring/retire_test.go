package keyring_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rkms/rkms/keyring"
)

// threeVersions creates id with versions 1..3 on k.
func threeVersions(t *testing.T, k *keyring.Keyring, id string) {
	t.Helper()
	mustGet(t, k, id)
	for range 2 {
		if _, err := k.Rotate(t.Context(), id); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMinDecryptVersionRefuses(t *testing.T) {
	e := newEnv(t, 2)
	k := e.keyring(t, keyring.Options{})
	other := e.keyring(t, keyring.Options{}) // another replica over the same store
	ctx := t.Context()
	threeVersions(t, k, "t1")
	if _, err := other.GetVersion(ctx, "t1", 1); err != nil { // cached there
		t.Fatal(err)
	}
	info, err := k.SetMinDecryptVersion(ctx, "t1", 3)
	if err != nil {
		t.Fatal(err)
	}
	if info.MinDecryptVersion != 3 || info.Versions[0].Retired.IsZero() || info.Versions[1].Retired.IsZero() || !info.Versions[2].Retired.IsZero() {
		t.Fatalf("info after SetMinDecryptVersion(3) = %+v", info)
	}
	for _, v := range []uint32{1, 2} {
		_, err := k.GetVersion(ctx, "t1", v)
		if !errors.Is(err, keyring.ErrVersionRetired) || errors.Is(err, keyring.ErrNotFound) {
			t.Fatalf("GetVersion(%d) = %v, want ErrVersionRetired and not ErrNotFound", v, err)
		}
		if c := keyring.ClassOf(err); c != keyring.ClassRetired {
			t.Fatalf("ClassOf = %v, want retired", c)
		}
	}
	if dk, err := k.GetVersion(ctx, "t1", 3); err != nil || dk.Version != 3 {
		t.Fatalf("GetVersion(3) = %v, %v", dk.Version, err)
	}
	if got := k.Stats().RetiredRefused; got != 2 {
		t.Fatalf("RetiredRefused = %d, want 2", got)
	}
	// The other replica keeps version 1 from its cache until the TTL (the documented window),
	// then refuses it too.
	if _, err := other.GetVersion(ctx, "t1", 1); err != nil {
		t.Fatalf("other replica within its cache TTL: %v", err)
	}
	e.clock.Advance(keyring.DefaultCacheTTL + time.Second)
	other.SweepCache()
	if _, err := other.GetVersion(ctx, "t1", 1); !errors.Is(err, keyring.ErrVersionRetired) {
		t.Fatalf("other replica after its TTL: %v, want ErrVersionRetired", err)
	}
	if _, err := k.SetMinDecryptVersion(ctx, "t1", 4); !errors.Is(err, keyring.ErrInvalidVersion) {
		t.Fatalf("SetMinDecryptVersion above current = %v, want ErrInvalidVersion", err)
	}
	if _, err := k.SetMinDecryptVersion(ctx, "absent", 1); !errors.Is(err, keyring.ErrNotFound) {
		t.Fatalf("SetMinDecryptVersion of an absent key = %v, want ErrNotFound", err)
	}
}

func TestUnretireBeforeDestruction(t *testing.T) {
	e := newEnv(t, 2)
	k := e.keyring(t, keyring.Options{})
	ctx := t.Context()
	threeVersions(t, k, "t1")
	want := keyBytes(t, mustVersion(t, k, "t1", 1))
	if _, err := k.SetMinDecryptVersion(ctx, "t1", 3); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(keyring.DefaultRetireGrace - time.Minute)
	if res, err := k.Maintain(ctx, "t1"); err != nil || len(res.Destroyed) != 0 {
		t.Fatalf("Maintain within the grace = %+v, %v; want nothing destroyed", res, err)
	}
	if _, err := k.SetMinDecryptVersion(ctx, "t1", 1); err != nil {
		t.Fatal(err)
	}
	if got := keyBytes(t, mustVersion(t, k, "t1", 1)); string(got) != string(want) {
		t.Fatal("un-retired version 1 opens to another key")
	}
	rec := mustRecord(t, e.st, "t1")
	for _, v := range rec.Versions {
		if v.IsRetired() {
			t.Fatalf("version %d still retired after lowering the minimum: %+v", v.Number, v)
		}
	}
	// Past the original grace nothing is destroyed: the versions are no longer retired.
	e.clock.Advance(2 * time.Minute)
	if res, err := k.Maintain(ctx, "t1"); err != nil || len(res.Destroyed) != 0 {
		t.Fatalf("Maintain after un-retiring = %+v, %v", res, err)
	}
}

func TestDestroyAfterGrace(t *testing.T) {
	e := newEnv(t, 2)
	const grace = time.Hour
	k := e.keyring(t, keyring.Options{RetireGrace: grace})
	ctx := t.Context()
	threeVersions(t, k, "t1")
	if _, err := k.SetMinDecryptVersion(ctx, "t1", 3); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(grace - time.Second)
	if res, err := k.Maintain(ctx, "t1"); err != nil || len(res.Destroyed) != 0 {
		t.Fatalf("Maintain before the grace ended = %+v, %v", res, err)
	}
	e.clock.Advance(time.Second)
	// The lazy path: a read of the record queues it, the next maintenance pass destroys.
	if _, err := k.GetVersion(ctx, "t1", 1); !errors.Is(err, keyring.ErrVersionRetired) {
		t.Fatalf("GetVersion(1) = %v", err)
	}
	if k.Stats().PendingRepairs != 1 {
		t.Fatalf("a record due for destruction was not queued: %+v", k.Stats())
	}
	k.RepairNow(ctx)
	rec := mustRecord(t, e.st, "t1")
	for _, v := range rec.Versions {
		destroyed := v.Number < 3
		if v.IsDestroyed() != destroyed || (destroyed && (len(v.Wrapped) != 0 || len(v.Missing) != 0)) || (!destroyed && len(v.Wrapped) != 2) {
			t.Fatalf("version %d after destruction: destroyed=%v wrapped=%d missing=%v", v.Number, v.IsDestroyed(), len(v.Wrapped), v.Missing)
		}
	}
	if got := k.Stats().VersionsDestroyed; got != 2 {
		t.Fatalf("VersionsDestroyed = %d, want 2", got)
	}
	// Lowering the minimum does not bring destroyed versions back.
	if _, err := k.SetMinDecryptVersion(ctx, "t1", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := k.GetVersion(ctx, "t1", 1); !errors.Is(err, keyring.ErrVersionRetired) {
		t.Fatalf("GetVersion of a destroyed version = %v, want ErrVersionRetired", err)
	}
	if dk := mustGet(t, k, "t1"); dk.Version != 3 {
		t.Fatalf("current = %d", dk.Version)
	}
	// A repair pass leaves destroyed versions alone (nothing to copy, nothing queued).
	k.RepairNow(ctx)
	if k.Stats().PendingRepairs != 0 {
		t.Fatalf("destroyed versions keep the record queued: %+v", k.Stats())
	}
}

func TestAgeRotationNeverLate(t *testing.T) {
	e := newEnv(t, 2)
	const maxAge = time.Hour
	const ttl = 5 * time.Minute
	k := e.keyring(t, keyring.Options{MaxAge: maxAge, CacheTTL: ttl})
	other := e.keyring(t, keyring.Options{MaxAge: maxAge, CacheTTL: ttl})
	ctx := t.Context()
	mustGet(t, k, "t1")
	const step = 7 * time.Second
	seen := map[uint32]bool{}
	for elapsed := time.Duration(0); elapsed < 5*maxAge; elapsed += step {
		e.clock.Advance(step)
		for _, r := range []*keyring.Keyring{k, other} {
			r.SweepCache()
			dk := mustGet(t, r, "t1")
			seen[dk.Version] = true
			rec := mustRecord(t, e.st, "t1")
			v, _ := rec.Version(dk.Version)
			if age := e.clock.Now().Sub(v.Created); age >= maxAge {
				t.Fatalf("sealing with version %d at age %s, max age %s", dk.Version, age, maxAge)
			}
		}
	}
	// One rotation per (max age less its lead), give or take a step: never fewer.
	if len(seen) < 5 {
		t.Fatalf("versions used in 5 max ages: %d, want at least 5", len(seen))
	}
	s := k.Stats().RotationsAge + other.Stats().RotationsAge
	if s != uint64(len(seen)-1) {
		t.Fatalf("age rotations %d for %d versions: replicas rotated twice", s, len(seen))
	}
	info, err := k.Describe(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	cur := info.Versions[len(info.Versions)-1]
	// Due a tenth of max age early (6m, longer than the 5m1s cache window): a rotation that
	// fails is retried for that long before seals would stop.
	if !info.RotationDue.Equal(cur.Created.Add(maxAge - maxAge/10)) {
		t.Fatalf("RotationDue = %v, created %v", info.RotationDue, cur.Created)
	}
	// The maintenance pass rotates an idle key too.
	e.clock.Advance(maxAge)
	res, err := k.Maintain(ctx, "t1")
	if err != nil || res.Reason != keyring.ReasonAge || res.Rotated != info.Current+1 {
		t.Fatalf("Maintain of an old key = %+v, %v", res, err)
	}
}

func TestMaxAgeTooShort(t *testing.T) {
	e := newEnv(t, 1)
	_, err := keyring.NewManual(e.st, e.regions(), keyring.Options{MaxAge: 6 * time.Minute})
	if err == nil {
		t.Fatal("a max age shorter than twice the cache window was accepted")
	}
}

func mustVersion(t *testing.T, k *keyring.Keyring, id string, v uint32) keyring.DataKey {
	t.Helper()
	dk, err := k.GetVersion(t.Context(), id, v)
	if err != nil {
		t.Fatalf("GetVersion(%q, %d): %v", id, v, err)
	}
	return dk
}

// TestRecordWithoutLifecycleFields checks that a record without lifecycle fields (written before
// they existed) keeps every version open.
func TestRecordWithoutLifecycleFields(t *testing.T) {
	e := newEnv(t, 1)
	k := e.keyring(t, keyring.Options{})
	threeVersions(t, k, "t1")
	rec := mustRecord(t, e.st, "t1")
	if rec.MinDecryptVersion != 0 {
		t.Fatalf("min decrypt version %d", rec.MinDecryptVersion)
	}
	for v := uint32(1); v <= 3; v++ {
		mustVersion(t, k, "t1", v)
	}
}

// TestMaintenancePassPaced: the periodic pass reads at most MaintenanceRate keys per second, so
// that a store of a million keys is not read in one burst by every replica at once (a lower
// bound on its duration; a slow machine only makes it longer), and still maintains every key.
func TestMaintenancePassPaced(t *testing.T) {
	e := newEnv(t, 1)
	const n, perSecond = 12, 40
	k := e.keyring(t, keyring.Options{RetireGrace: time.Hour, MaintenanceRate: perSecond})
	ctx := t.Context()
	for i := range n {
		id := fmt.Sprintf("t%02d", i)
		threeVersions(t, k, id)
		if _, err := k.SetMinDecryptVersion(ctx, id, 3); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Advance(time.Hour)
	start := time.Now()
	k.MaintainAllNow(ctx)
	if took, least := time.Since(start), time.Duration(n-1)*time.Second/perSecond; took < least {
		t.Fatalf("a pass over %d keys at %d/s took %v, want at least %v", n, perSecond, took, least)
	}
	if got := k.Stats().VersionsDestroyed; got != 2*n {
		t.Fatalf("VersionsDestroyed = %d, want %d", got, 2*n)
	}
}

// TestRotationLead: age rotation is due max age less the longer of the cache window and a tenth
// of max age, so that a rotation failing when it comes due (KMS regions down) is retried for days
// at the default 90 days before any seal is refused; never less than the cache window.
func TestRotationLead(t *testing.T) {
	e := newEnv(t, 1)
	for _, tc := range []struct {
		maxAge, ttl, lead time.Duration
	}{
		{90 * 24 * time.Hour, 5 * time.Minute, 9 * 24 * time.Hour},
		{time.Hour, 5 * time.Minute, 6 * time.Minute},
		{20 * time.Minute, 5 * time.Minute, 5*time.Minute + time.Second}, // the cache window is longer
	} {
		k := e.keyring(t, keyring.Options{MaxAge: tc.maxAge, CacheTTL: tc.ttl})
		created := e.clock.Now()
		if got, want := k.RotationDueAt(created), created.Add(tc.maxAge-tc.lead); !got.Equal(want) {
			t.Errorf("max age %v, ttl %v: due %v after creation, want %v", tc.maxAge, tc.ttl, got.Sub(created), want.Sub(created))
		}
	}
}
