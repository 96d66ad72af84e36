package storetest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/rkms/rkms/store"
)

// testDeleteRecreateABA checks that a record deleted and re-created gets revisions that never match
// the deleted one's: an Update holding a copy read before the delete must fail with ErrConflict
// and leave the re-created record unchanged, even when both incarnations went through the same
// number of updates. Otherwise a stale writer (a background repair, a rotation) would overwrite
// the new key with the old one.
func testDeleteRecreateABA(t *testing.T, s store.Store, id string) {
	ctx := t.Context()
	tests := []struct {
		name    string
		updates int // updates applied to each incarnation before the stale write
	}{
		{"just-created", 0},
		{"after-updates", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := id + "/" + tc.name
			orig := sampleRecord(id, 1)
			if err := s.Create(ctx, orig); err != nil {
				t.Fatalf("Create: %v", err)
			}
			requireStartRevision(t, orig.Revision)
			updateN(t, s, orig, tc.updates)
			stale, err := s.Get(ctx, id)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if err := s.Delete(ctx, id); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			// Re-create from the stale copy itself (new contents, old revision given): the store
			// must not carry the given revision over.
			again := stale.Clone()
			again.Current = 7
			again.Versions[0].Wrapped["eu-west-1"] = store.Wrapped{KeyID: "re-created", Blob: []byte{7, 7, 7}}
			if err := s.Create(ctx, again); err != nil {
				t.Fatalf("re-Create: %v", err)
			}
			requireStartRevision(t, again.Revision)
			updateN(t, s, again, tc.updates)
			want := again.Clone()

			staleRev := stale.Revision
			stale.Current = 1 // what a stale writer would change
			err = s.Update(ctx, stale)
			if !errors.Is(err, store.ErrConflict) {
				t.Fatalf("Update with a copy read before Delete (revision %d; re-created record at %d) = %v, want ErrConflict",
					staleRev, want.Revision, err)
			}
			if stale.Revision != staleRev {
				t.Fatalf("failed Update changed Revision %d to %d", staleRev, stale.Revision)
			}
			got, err := s.Get(ctx, id)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			requireEqual(t, want, got)
		})
	}
}

// testDistinctStartRevisions checks that Create starts records at revisions that differ between
// ids and between successive incarnations of one id.
func testDistinctStartRevisions(t *testing.T, s store.Store, id string) {
	ctx := t.Context()
	const n = 8
	seen := make(map[int64]string, 2*n)
	note := func(rev int64, what string) {
		t.Helper()
		requireStartRevision(t, rev)
		if prev, ok := seen[rev]; ok {
			t.Fatalf("%s started at revision %d, as did %s", what, rev, prev)
		}
		seen[rev] = what
	}
	for i := range n {
		rec := sampleRecord(fmt.Sprintf("%s/id-%d", id, i), i)
		if err := s.Create(ctx, rec); err != nil {
			t.Fatalf("Create: %v", err)
		}
		note(rec.Revision, rec.ID)
	}
	again := id + "/again"
	for i := range n {
		rec := sampleRecord(again, i)
		if err := s.Create(ctx, rec); err != nil {
			t.Fatalf("Create %d: %v", i, err)
		}
		note(rec.Revision, fmt.Sprintf("incarnation %d of %s", i, again))
		if err := s.Delete(ctx, again); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
}

// testRevisionIncrements checks that Create assigns a positive revision, stored with the record,
// and that each Update adds exactly one.
func testRevisionIncrements(t *testing.T, s store.Store, id string) {
	ctx := t.Context()
	rec := sampleRecord(id, 1)
	if err := s.Create(ctx, rec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	start := rec.Revision
	requireStartRevision(t, start)
	got, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	requireEqual(t, rec, got)
	for i := int64(1); i <= 5; i++ {
		rec.Current = uint32(i)
		if err := s.Update(ctx, rec); err != nil {
			t.Fatalf("Update %d: %v", i, err)
		}
		if want := start + i; rec.Revision != want {
			t.Fatalf("Update %d set Revision %d, want %d (start %d)", i, rec.Revision, want, start)
		}
		got, err := s.Get(ctx, id)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		requireEqual(t, rec, got)
	}
}

// updateN applies n successful Updates to rec, checking that each adds one to its revision.
func updateN(t *testing.T, s store.Store, rec *store.Record, n int) {
	t.Helper()
	for range n {
		before := rec.Revision
		rec.Current++
		if err := s.Update(t.Context(), rec); err != nil {
			t.Fatalf("Update: %v", err)
		}
		if rec.Revision != before+1 {
			t.Fatalf("Update set Revision %d, want %d", rec.Revision, before+1)
		}
	}
}

// requireStartRevision fails t unless rev is a revision Create may assign: in
// [1, store.InitialRevisionLimit).
func requireStartRevision(t *testing.T, rev int64) {
	t.Helper()
	if rev < 1 || rev >= store.InitialRevisionLimit {
		t.Fatalf("Create set Revision %d, want one in [1, 2^62)", rev)
	}
}
