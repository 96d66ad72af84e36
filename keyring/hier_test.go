package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/store"
)

func hierOpts(o keyring.Options) keyring.Options {
	o.Mode = keyring.ModeHierarchical
	return o
}

func decrypts(k *keyring.Keyring) uint64 {
	var n uint64
	for _, r := range k.Stats().Regions {
		n += r.Decrypt
	}
	return n
}

// TestKMSCallsPerMode: a replica that opens N tenants makes N KMS Decrypts in direct mode and
// one (the branch key) in hierarchical mode, the figure issue 19 is about.
func TestKMSCallsPerMode(t *testing.T) {
	const n = 1000
	for _, tc := range []struct {
		mode string
		want uint64
	}{{keyring.ModeDirect, n}, {keyring.ModeHierarchical, 1}} {
		t.Run(tc.mode, func(t *testing.T) {
			e := newEnv(t, 3)
			writer := e.keyring(t, keyring.Options{Mode: tc.mode})
			for i := range n {
				mustGet(t, writer, fmt.Sprintf("tenant-%d", i))
			}
			replica := e.keyring(t, keyring.Options{Mode: tc.mode})
			for i := range n {
				mustGet(t, replica, fmt.Sprintf("tenant-%d", i))
			}
			s := replica.Stats()
			t.Logf("%s: %d tenants opened by a fresh replica: %d KMS Decrypts, %d store reads, %d local unwraps",
				tc.mode, n, decrypts(replica), s.StoreReads, s.LocalUnwraps)
			if got := decrypts(replica); got != tc.want {
				t.Fatalf("KMS Decrypts = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestWrappedCache: a plaintext cache miss of a hierarchical tenant costs no store read and no
// KMS call while its wrapped record and its branch key are cached; a direct record is never kept.
func TestWrappedCache(t *testing.T) {
	e := newEnv(t, 3)
	k := e.keyring(t, hierOpts(keyring.Options{CacheTTL: time.Minute}))
	a := keyBytes(t, mustGet(t, k, "tenant-a"))
	k2 := e.keyring(t, hierOpts(keyring.Options{CacheTTL: time.Minute, WrappedTTL: time.Hour}))
	mustGet(t, k2, "tenant-a")
	mustGet(t, k2, keyring.BranchKeyID(0)) // keep the branch key fresh after the tenant expires
	e.clock.Advance(61 * time.Second)
	k2.SweepCache()
	mustGet(t, k2, keyring.BranchKeyID(0)) // refetched: store read + one KMS call
	before, calls := k2.Stats(), decrypts(k2)
	if got := keyBytes(t, mustGet(t, k2, "tenant-a")); !bytes.Equal(got, a) {
		t.Fatal("different key")
	}
	after := k2.Stats()
	if after.StoreReads != before.StoreReads || decrypts(k2) != calls || after.LocalUnwraps != before.LocalUnwraps+1 || after.WrappedHits != before.WrappedHits+1 {
		t.Fatalf("plaintext miss: store reads %d->%d, decrypts %d->%d, local unwraps %d->%d, wrapped hits %d->%d",
			before.StoreReads, after.StoreReads, calls, decrypts(k2), before.LocalUnwraps, after.LocalUnwraps, before.WrappedHits, after.WrappedHits)
	}
	// A direct-mode record is not kept: its cost stays one store read per cache TTL.
	d := e.keyring(t, keyring.Options{})
	mustGet(t, d, "direct-b")
	if n := d.Stats().WrappedEntries; n != 0 {
		t.Fatalf("direct keyring cached %d wrapped records", n)
	}
}

// TestMixedRecords: records of both kinds read side by side, and switching modes both ways needs
// no migration: a direct record rotated in hierarchical mode holds a direct version 1 and a
// branch-wrapped version 2, and a direct keyring opens both.
func TestMixedRecords(t *testing.T) {
	e := newEnv(t, 3)
	direct := e.keyring(t, keyring.Options{})
	hier := e.keyring(t, hierOpts(keyring.Options{}))
	d1 := keyBytes(t, mustGet(t, direct, "was-direct"))
	h1 := keyBytes(t, mustGet(t, hier, "was-hier"))
	if rec := mustRecord(t, e.st, "was-hier"); !rec.Versions[0].IsBranchWrapped() || len(rec.Versions[0].Wrapped) != 0 {
		t.Fatalf("hierarchical record not branch-wrapped: %+v", rec.Versions[0])
	}
	if rec := mustRecord(t, e.st, "was-direct"); rec.Versions[0].IsBranchWrapped() {
		t.Fatal("direct record branch-wrapped")
	}
	if _, err := hier.Rotate(context.Background(), "was-direct"); err != nil {
		t.Fatal(err)
	}
	d2 := keyBytes(t, mustGet(t, hier, "was-direct"))
	rec := mustRecord(t, e.st, "was-direct")
	if rec.Versions[0].IsBranchWrapped() || !rec.Versions[1].IsBranchWrapped() {
		t.Fatalf("rotated record: v1 branch %v, v2 branch %v", rec.Versions[0].IsBranchWrapped(), rec.Versions[1].IsBranchWrapped())
	}
	for _, k := range []*keyring.Keyring{e.keyring(t, keyring.Options{}), e.keyring(t, hierOpts(keyring.Options{}))} {
		for _, c := range []struct {
			id   string
			v    uint32
			want []byte
		}{{"was-direct", 1, d1}, {"was-direct", 2, d2}, {"was-hier", 1, h1}} {
			dk, err := k.GetVersion(context.Background(), c.id, c.v)
			if err != nil || !bytes.Equal(keyBytes(t, dk), c.want) {
				t.Fatalf("GetVersion(%s, %d): %v or different key", c.id, c.v, err)
			}
		}
	}
	// Back to direct: a rotation there adds a KMS-wrapped version to a hierarchical record.
	if _, err := direct.Rotate(context.Background(), "was-hier"); err != nil {
		t.Fatal(err)
	}
	if rec := mustRecord(t, e.st, "was-hier"); rec.Versions[1].IsBranchWrapped() || len(rec.Versions[1].Wrapped) != 3 {
		t.Fatal("direct rotation of a hierarchical record did not wrap by KMS")
	}
	mustGet(t, e.keyring(t, hierOpts(keyring.Options{})), "was-hier")
}

// TestMisboundRecords: a wrapped record opens only as the id, version, branch key and branch
// version it was made for: swapped blobs, renumbered versions, another branch version or a
// "branch" that is not a branch key are all refused, and never as a different key.
func TestMisboundRecords(t *testing.T) {
	ctx := context.Background()
	tamper := map[string]func(a, b *store.Record){
		"swapped blobs":        func(a, b *store.Record) { a.Versions[0].Branch.Blob = b.Versions[0].Branch.Blob },
		"swapped whole wraps":  func(a, b *store.Record) { a.Versions[0].Branch = b.Versions[0].Branch },
		"other version number": func(a, b *store.Record) { a.Versions[0].Number, a.Current = 2, 2 },
		"other branch version": func(a, b *store.Record) { a.Versions[0].Branch.Version = 2 },
		"other branch key": func(a, b *store.Record) {
			a.Versions[0].Branch.KeyID = keyring.BranchKeyID(1 - keyring.BranchFor("tenant-a", 2))
		},
		"tenant key as branch": func(a, b *store.Record) { a.Versions[0].Branch.KeyID = "tenant-b" },
		"index root as branch": func(a, b *store.Record) { a.Versions[0].Branch.KeyID = "_rkms.index-root" },
		"flipped ciphertext":   func(a, b *store.Record) { a.Versions[0].Branch.Blob[20] ^= 1 },
		"unknown format":       func(a, b *store.Record) { a.Versions[0].Branch.Blob[0] = 2 },
	}
	for name, f := range tamper {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, 3)
			k := e.keyring(t, hierOpts(keyring.Options{Hierarchical: keyring.Hierarchical{BranchKeys: 2}}))
			mustGet(t, k, "tenant-a")
			mustGet(t, k, "tenant-b")
			mustGet(t, k, keyring.BranchKeyID(0))
			mustGet(t, k, keyring.BranchKeyID(1))
			if _, err := k.Rotate(ctx, keyring.BranchKeyID(0)); err != nil {
				t.Fatal(err)
			}
			a, b := mustRecord(t, e.st, "tenant-a").Clone(), mustRecord(t, e.st, "tenant-b")
			f(a, b)
			if err := e.st.Update(ctx, a); err != nil {
				t.Fatal(err)
			}
			fresh := e.keyring(t, hierOpts(keyring.Options{Hierarchical: keyring.Hierarchical{BranchKeys: 2}}))
			_, err := fresh.GetVersion(ctx, "tenant-a", a.Versions[0].Number)
			if err == nil {
				t.Fatal("tampered record opened")
			}
			if keyring.ClassOf(err) == keyring.ClassUnavailable {
				t.Fatalf("tampered record classed unavailable: %v", err)
			}
		})
	}
}

// TestBranchRotation: a branch rotation re-wraps every tenant (background pass) without changing
// any data key; a record left under the old branch version past the grace fails closed with
// ErrBranchRetired.
func TestBranchRotation(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, 3)
	opts := hierOpts(keyring.Options{Hierarchical: keyring.Hierarchical{RetireGrace: 48 * time.Hour, RewrapRate: -1}})
	k := e.keyring(t, opts)
	keys := map[string][]byte{}
	for i := range 20 {
		id := fmt.Sprintf("t%d", i)
		keys[id] = keyBytes(t, mustGet(t, k, id))
	}
	if v, err := k.Rotate(ctx, keyring.BranchKeyID(0)); err != nil || v != 2 {
		t.Fatalf("rotate branch: %d %v", v, err)
	}
	// One tenant is left behind: copy its record as it is now, to put back after the pass.
	left := mustRecord(t, e.st, "t0")
	n, err := k.RewrapAll(ctx)
	if err != nil || n != 20 {
		t.Fatalf("RewrapAll = %d, %v; want 20", n, err)
	}
	s := k.Stats()
	if s.Rewrapped != 20 || s.RewrapScanned != 20 || s.RewrapPassesDone != 1 {
		t.Fatalf("progress: rewrapped %d scanned %d passes %d", s.Rewrapped, s.RewrapScanned, s.RewrapPassesDone)
	}
	fresh := e.keyring(t, opts)
	for id, want := range keys {
		rec := mustRecord(t, e.st, id)
		if rec.Versions[0].Branch.Version != 2 {
			t.Fatalf("%s still under branch version %d", id, rec.Versions[0].Branch.Version)
		}
		if got := keyBytes(t, mustGet(t, fresh, id)); !bytes.Equal(got, want) {
			t.Fatalf("%s: key changed by the re-wrap", id)
		}
	}
	cur := mustRecord(t, e.st, "t0")
	left.Revision = cur.Revision
	if err := e.st.Update(ctx, left); err != nil {
		t.Fatal(err)
	}
	// Within the grace the old version still opens, and the read queues a lazy re-wrap.
	e.clock.Advance(47 * time.Hour)
	r2 := e.keyring(t, opts)
	if got := keyBytes(t, mustGet(t, r2, "t0")); !bytes.Equal(got, keys["t0"]) {
		t.Fatal("old branch version within grace: wrong key")
	}
	// Past the grace (the lazy re-wrap did not run): the branch version is retired by the
	// maintenance of the branch key, and the tenant fails closed.
	left.Revision = mustRecord(t, e.st, "t0").Revision
	e.clock.Advance(2 * time.Hour)
	r3 := e.keyring(t, opts)
	if _, err := r3.Maintain(ctx, keyring.BranchKeyID(0)); err != nil {
		t.Fatal(err)
	}
	if r3.Stats().BranchRetires != 1 {
		t.Fatal("branch version not retired after the grace")
	}
	_, err = r3.Get(ctx, "t0")
	if !errors.Is(err, keyring.ErrBranchRetired) || keyring.ClassOf(err) != keyring.ClassRetired {
		t.Fatalf("Get under a retired branch version: %v, want ErrBranchRetired", err)
	}
	if got := keyBytes(t, mustGet(t, r3, "t1")); !bytes.Equal(got, keys["t1"]) {
		t.Fatal("re-wrapped tenant broken by the retirement")
	}
}

// TestLazyRewrap: reading a record under an old branch version queues it, and the repair pass
// re-wraps it.
func TestLazyRewrap(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, 3)
	k := e.keyring(t, hierOpts(keyring.Options{}))
	want := keyBytes(t, mustGet(t, k, "lazy"))
	if _, err := k.Rotate(ctx, keyring.BranchKeyID(0)); err != nil {
		t.Fatal(err)
	}
	r := e.keyring(t, hierOpts(keyring.Options{}))
	mustGet(t, r, keyring.BranchKeyID(0)) // knows the current branch version
	mustGet(t, r, "lazy")
	r.RepairNow(ctx)
	if v := mustRecord(t, e.st, "lazy").Versions[0].Branch.Version; v != 2 {
		t.Fatalf("branch version after lazy re-wrap = %d, want 2", v)
	}
	if got := keyBytes(t, mustGet(t, e.keyring(t, hierOpts(keyring.Options{})), "lazy")); !bytes.Equal(got, want) {
		t.Fatal("key changed")
	}
}

// TestRewrapRaces (-race): re-wrap passes race tenant rotations, deletions and re-creations and
// branch rotations; afterwards every live version opens to the key it had, deleted ids stay
// deleted, and nothing was written under a key a record does not hold.
func TestRewrapRaces(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, 3)
	opts := hierOpts(keyring.Options{Hierarchical: keyring.Hierarchical{RewrapRate: -1}})
	a, b := e.keyring(t, opts), e.keyring(t, opts)
	const n = 12
	for i := range n {
		mustGet(t, a, fmt.Sprintf("r%d", i))
	}
	var wg sync.WaitGroup
	for round := range 3 {
		if _, err := a.Rotate(ctx, keyring.BranchKeyID(0)); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { _, _ = a.RewrapAll(ctx) })
		wg.Go(func() { _, _ = b.RewrapAll(ctx) })
		wg.Go(func() {
			for i := range n {
				id := fmt.Sprintf("r%d", i)
				switch (i + round) % 3 {
				case 0:
					_, _ = b.Rotate(ctx, id)
				case 1:
					_ = b.Delete(ctx, id)
					_, _ = b.Create(ctx, id, true)
				}
			}
		})
		wg.Wait()
	}
	check := e.keyring(t, opts)
	for i := range n {
		id := fmt.Sprintf("r%d", i)
		rec := mustRecord(t, e.st, id)
		for _, v := range rec.Versions {
			if _, err := check.GetVersion(ctx, id, v.Number); err != nil {
				t.Fatalf("%s v%d does not open after the races: %v", id, v.Number, err)
			}
		}
	}
}

// TestBYOK: a tenant with its own regions is wrapped there only (also in hierarchical mode),
// and fails closed when they are all down: never the shared regions, never a branch key.
func TestBYOK(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, 5) // r1..r3 shared, r4 r5 the tenant's
	opts := hierOpts(keyring.Options{Tenants: []keyring.TenantKeys{{IDPrefixes: []string{"acme/"}, Regions: []keyring.Region{e.fakes[3], e.fakes[4]}}}})
	opts.Now = e.clock.Now
	opts.CreateRate = -1
	k, err := keyring.NewManual(e.st, []keyring.Region{e.fakes[0], e.fakes[1], e.fakes[2]}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	want := keyBytes(t, mustGet(t, k, "acme/orders"))
	rec := mustRecord(t, e.st, "acme/orders")
	v := rec.Versions[0]
	if v.IsBranchWrapped() || len(v.Wrapped) != 2 || v.Wrapped["r4"].Blob == nil || v.Wrapped["r5"].Blob == nil {
		t.Fatalf("BYOK record: branch %v, copies %d", v.IsBranchWrapped(), len(v.Wrapped))
	}
	if mustGet(t, k, "other"); mustRecord(t, e.st, "other").Versions[0].Branch.KeyID == "" {
		t.Fatal("a shared tenant was not branch-wrapped")
	}
	// A second replica opens it through the registry of region names.
	k2, err := keyring.NewManual(e.st, []keyring.Region{e.fakes[0], e.fakes[1], e.fakes[2]}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k2.Close() })
	e.fakes[3].Down(true)
	if got := keyBytes(t, mustGet(t, k2, "acme/orders")); !bytes.Equal(got, want) {
		t.Fatal("BYOK fallback to the tenant's second region: wrong key")
	}
	// All the tenant's regions down: creation and opening fail closed, and the shared regions
	// are not asked.
	e.fakes[4].Down(true)
	shared := e.fakes[0].Total() + e.fakes[1].Total() + e.fakes[2].Total()
	k3, err := keyring.NewManual(e.st, []keyring.Region{e.fakes[0], e.fakes[1], e.fakes[2]}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k3.Close() })
	if _, err := k3.Get(ctx, "acme/orders"); !errors.Is(err, keyring.ErrUnavailable) {
		t.Fatalf("open with the tenant's regions down: %v, want ErrUnavailable", err)
	}
	if _, err := k3.Get(ctx, "acme/new"); !errors.Is(err, keyring.ErrUnavailable) {
		t.Fatalf("create with the tenant's regions down: %v, want ErrUnavailable", err)
	}
	if got := e.fakes[0].Total() + e.fakes[1].Total() + e.fakes[2].Total(); got != shared {
		t.Fatalf("shared regions called %d times for a BYOK tenant", got-shared)
	}
	if _, err := e.st.Get(ctx, "acme/new"); err == nil {
		t.Fatal("BYOK key stored without the tenant's regions")
	}
}

// TestBranchCreationNotRateLimited: creating a branch key takes no token of the creation rate
// limit (it is rkms's own key, at most kms.hierarchical.branch_keys of them), so a tenant
// creation in hierarchical mode costs one token as in direct mode (the chaos run's first new
// tenant was refused with 429 when the branch key took the last token of the burst).
func TestBranchCreationNotRateLimited(t *testing.T) {
	e := newEnv(t, 3)
	k := e.keyring(t, hierOpts(keyring.Options{CreateRate: 0.0001, CreateBurst: 1}))
	mustGet(t, k, "first-tenant")
	if s := k.Stats(); s.CreateLimited != 0 || s.Created != 2 {
		t.Fatalf("created %d, limited %d; want the tenant and its branch key, none limited", s.Created, s.CreateLimited)
	}
}
