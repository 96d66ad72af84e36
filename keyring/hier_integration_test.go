package keyring_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rkms/rkms/keyring"
)

// Hierarchical mode against real components: three local-kms regions and dynalite.

func hier(o keyring.Options) keyring.Options { o.Mode = keyring.ModeHierarchical; return o }

// TestIntegrationHierRegionKilled: with the preferred region dead, tenants still open (their
// branch key falls back to another region), and once the branch key is cached a replica opens
// every tenant without a KMS call.
func TestIntegrationHierRegionKilled(t *testing.T) {
	e := newRealEnv(t)
	writer := e.keyring(t, hier(keyring.Options{}))
	want := map[string][]byte{}
	for i := range 12 {
		id := fmt.Sprintf("h%02d", i)
		want[id] = keyBytes(t, mustGet(t, writer, id))
	}
	k := e.keyring(t, hier(keyring.Options{BreakerThreshold: 3, BreakerCooldown: time.Hour}))
	e.kms[0].Stop()
	for id, w := range want {
		if got := keyBytes(t, mustGet(t, k, id)); !bytes.Equal(got, w) {
			t.Fatalf("%s: different key during the outage", id)
		}
	}
	total, per := kmsCalls(k)
	if total != 2 || per[awsRegions[1]] != 1 {
		t.Fatalf("12 tenants with the preferred region dead: %d KMS calls %v, want 2 (the dead region, then %s)", total, per, awsRegions[1])
	}
	if s := k.Stats(); s.LocalUnwraps != 12 {
		t.Fatalf("local unwraps %d, want 12", s.LocalUnwraps)
	}
}

// TestIntegrationHierCreateRegionsDownThenRepair: with one region down, the branch key is made
// with the quorum (2 of 3) and tenants are created under it; with two down nothing is created
// (the branch key misses its quorum) and nothing is stored; when the region comes back the
// branch key's missing copy is repaired.
func TestIntegrationHierCreateRegionsDownThenRepair(t *testing.T) {
	e := newRealEnv(t)
	k := e.keyring(t, hier(keyring.Options{BreakerThreshold: 1, BreakerCooldown: 100 * time.Millisecond, RepairInterval: time.Hour}))
	e.kms[1].Stop()
	e.kms[2].Stop()
	if _, err := k.Get(t.Context(), "tenant-x"); !errors.Is(err, keyring.ErrUnavailable) {
		t.Fatalf("create with 2 of 3 regions down: %v, want ErrUnavailable", err)
	}
	for _, id := range []string{"tenant-x", keyring.BranchKeyID(0)} {
		if _, err := e.st.Get(t.Context(), id); err == nil {
			t.Fatalf("%s stored without a quorum", id)
		}
	}
	e.kms[1].Start()
	var want []byte
	deadline := time.Now().Add(10 * time.Second)
	for {
		dk, err := k.Get(t.Context(), "tenant-x")
		if err == nil {
			want = keyBytes(t, dk)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("create after one region came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	bv := mustRecord(t, e.st, keyring.BranchKeyID(0)).Versions[0]
	if len(bv.Wrapped) != 2 || !slices.Equal(bv.Missing, []string{awsRegions[2]}) {
		t.Fatalf("branch key version %+v, want 2 copies and %s missing", bv, awsRegions[2])
	}
	if tv := mustRecord(t, e.st, "tenant-x").Versions[0]; !tv.IsBranchWrapped() || len(tv.Wrapped) != 0 {
		t.Fatalf("tenant version not branch-wrapped: %+v", tv)
	}
	e.kms[2].Start()
	deadline = time.Now().Add(10 * time.Second)
	for {
		bv = mustRecord(t, e.st, keyring.BranchKeyID(0)).Versions[0]
		if len(bv.Wrapped) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("branch key not repaired: %+v", k.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The repaired copy alone opens the branch key, and through it the tenant.
	e.kms[0].Stop()
	e.kms[1].Stop()
	fresh := e.keyring(t, hier(keyring.Options{BreakerThreshold: 1, BreakerCooldown: time.Hour}))
	var got []byte
	deadline = time.Now().Add(10 * time.Second)
	for got == nil {
		if dk, err := fresh.Get(t.Context(), "tenant-x"); err == nil {
			got = keyBytes(t, dk)
		} else if time.Now().After(deadline) {
			t.Fatalf("open through the repaired region: %v", err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatal("different key through the repaired copy")
	}
}

// TestIntegrationMixedModes: direct and hierarchical records in one DynamoDB table, read by
// keyrings of both modes; switching modes both ways needs no migration.
func TestIntegrationMixedModes(t *testing.T) {
	e := newRealEnv(t)
	direct := e.keyring(t, keyring.Options{})
	h := e.keyring(t, hier(keyring.Options{}))
	d1 := keyBytes(t, mustGet(t, direct, "m-direct"))
	h1 := keyBytes(t, mustGet(t, h, "m-hier"))
	if _, err := h.Rotate(t.Context(), "m-direct"); err != nil {
		t.Fatal(err)
	}
	if _, err := direct.Rotate(t.Context(), "m-hier"); err != nil {
		t.Fatal(err)
	}
	for _, k := range []*keyring.Keyring{e.keyring(t, keyring.Options{}), e.keyring(t, hier(keyring.Options{}))} {
		for _, c := range []struct {
			id   string
			want []byte
		}{{"m-direct", d1}, {"m-hier", h1}} {
			dk, err := k.GetVersion(t.Context(), c.id, 1)
			if err != nil || !bytes.Equal(keyBytes(t, dk), c.want) {
				t.Fatalf("%s v1: %v or different key", c.id, err)
			}
			if _, err := k.GetVersion(t.Context(), c.id, 2); err != nil {
				t.Fatalf("%s v2: %v", c.id, err)
			}
		}
	}
	if !mustRecord(t, e.st, "m-direct").Versions[1].IsBranchWrapped() || mustRecord(t, e.st, "m-hier").Versions[1].IsBranchWrapped() {
		t.Fatal("rotation did not wrap the new version the way the rotating keyring's mode says")
	}
}
