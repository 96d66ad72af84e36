package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rkms/rkms/store"
)

// Run runs the conformance suite against the stores newStore returns, one call per subtest.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	nonce := make([]byte, 4)
	if _, err := rand.Read(nonce); err != nil {
		t.Fatalf("random nonce: %v", err)
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store, id string)
	}{
		{"RoundTrip", testRoundTrip},
		{"GetAbsent", testGetAbsent},
		{"CreateExisting", testCreateExisting},
		{"UpdateStale", testUpdateStale},
		{"UpdateAbsent", testUpdateAbsent},
		{"Delete", testDelete},
		{"RevisionIncrements", testRevisionIncrements},
		{"DeleteRecreateABA", testDeleteRecreateABA},
		{"DistinctStartRevisions", testDistinctStartRevisions},
		{"CopiesIn", testCopiesIn},
		{"CopiesOut", testCopiesOut},
		{"ConcurrentCreate", testConcurrentCreate},
		{"ConcurrentUpdate", testConcurrentUpdate},
		{"ContextDone", testContextDone},
		{"Invalid", testInvalid},
		{"Ping", testPing},
		{"List", testList},
		{"ListInvalid", testListInvalid},
		{"Tombstone", testTombstone},
		{"LifecycleUpdate", testLifecycleUpdate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			// Ids use the keyring's whole character set, and are unique per run so that a
			// factory sharing one persistent backend still gives each subtest a clean slate.
			id := "storetest/" + tc.name + "@" + hex.EncodeToString(nonce) + ":a.b_c+d=e-f"
			tc.fn(t, s, id)
		})
	}
}

func testRoundTrip(t *testing.T, s store.Store, id string) {
	ctx := t.Context()
	tests := []struct {
		name string
		rec  *store.Record
	}{
		{"versions", sampleRecord(id, 1)},
		{"lifecycle", lifecycleRecord(id + "/lifecycle")},
		{"empty", &store.Record{ID: id + "/empty"}},
		{"empty-blob-and-maps", &store.Record{ID: id + "/sparse", Current: 1, Versions: []store.Version{
			{Number: 1, Wrapped: map[string]store.Wrapped{"r": {KeyID: "", Blob: nil}}},
			{Number: 4294967295, Wrapped: map[string]store.Wrapped{}},
		}}},
		{"long-id", &store.Record{ID: strings.Repeat("x", store.MaxIDLen-len(id)) + id, Current: 7}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.rec.Clone()
			tc.rec.Revision = 42 // ignored by Create
			if err := s.Create(ctx, tc.rec); err != nil {
				t.Fatalf("Create: %v", err)
			}
			requireStartRevision(t, tc.rec.Revision)
			got, err := s.Get(ctx, tc.rec.ID)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			requireEqual(t, withRevision(want, tc.rec.Revision), got)
		})
	}
}

func testGetAbsent(t *testing.T, s store.Store, id string) {
	rec, err := s.Get(t.Context(), id)
	if !errors.Is(err, store.ErrNotFound) || rec != nil {
		t.Fatalf("Get absent = %v, %v; want nil, ErrNotFound", rec, err)
	}
	if errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Get absent error %v also wraps ErrUnavailable", err)
	}
}

func testCreateExisting(t *testing.T, s store.Store, id string) {
	ctx := t.Context()
	first := sampleRecord(id, 1)
	if err := s.Create(ctx, first); err != nil {
		t.Fatalf("first Create: %v", err)
	}
	second := sampleRecord(id, 2)
	second.Current = 1
	second.Revision = 7
	err := s.Create(ctx, second)
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("second Create = %v, want ErrExists", err)
	}
	if second.Revision != 7 {
		t.Fatalf("failed Create changed Revision to %d", second.Revision)
	}
	got, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	requireEqual(t, first, got)
}

func testUpdateStale(t *testing.T, s store.Store, id string) {
	ctx := t.Context()
	rec := sampleRecord(id, 1)
	if err := s.Create(ctx, rec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	start := rec.Revision
	rec.Current = 1
	if err := s.Update(ctx, rec); err != nil {
		t.Fatalf("Update: %v", err)
	}
	want := rec.Clone() // at start+1; start is in [1, 2^62), so no rev below equals start+1
	for _, rev := range []int64{0, -1, 1, start, start + 2, start + 99, store.MaxRevision - 1} {
		stale := sampleRecord(id, 3)
		stale.Revision = rev
		err := s.Update(ctx, stale)
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("Update at revision %d (stored %d) = %v, want ErrConflict", rev, want.Revision, err)
		}
		if stale.Revision != rev {
			t.Fatalf("failed Update changed Revision %d to %d", rev, stale.Revision)
		}
	}
	got, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	requireEqual(t, want, got)
}

func testUpdateAbsent(t *testing.T, s store.Store, id string) {
	for _, rev := range []int64{0, 1} {
		rec := sampleRecord(id, 1)
		rec.Revision = rev
		if err := s.Update(t.Context(), rec); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Update absent at revision %d = %v, want ErrNotFound", rev, err)
		}
	}
	if _, err := s.Get(t.Context(), id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after failed Update = %v, want ErrNotFound", err)
	}
}

func testDelete(t *testing.T, s store.Store, id string) {
	ctx := t.Context()
	if err := s.Delete(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Delete absent = %v, want ErrNotFound", err)
	}
	rec := sampleRecord(id, 1)
	if err := s.Create(ctx, rec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := s.Update(ctx, rec); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if err := s.Delete(ctx, id); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Get(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second Delete = %v, want ErrNotFound", err)
	}
	if err := s.Update(ctx, rec); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Update after Delete = %v, want ErrNotFound", err)
	}
	again := sampleRecord(id, 2)
	if err := s.Create(ctx, again); err != nil {
		t.Fatalf("Create after Delete: %v", err)
	}
	requireStartRevision(t, again.Revision)
	got, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	requireEqual(t, again, got)
}

// mutate changes every mutable part of r in place.
func mutate(r *store.Record) {
	r.Current = 99
	for i := range r.Versions {
		v := &r.Versions[i]
		v.Number += 100
		for region, w := range v.Wrapped {
			for j := range w.Blob {
				w.Blob[j] ^= 0xff
			}
			w.KeyID = "mutated"
			v.Wrapped[region] = w
		}
		v.Wrapped["mutated"] = store.Wrapped{KeyID: "x"}
		for j := range v.Missing {
			v.Missing[j] = "mutated"
		}
	}
	r.Versions = append(r.Versions, store.Version{Number: 1000})
}

func testCopiesIn(t *testing.T, s store.Store, id string) {
	ctx := t.Context()
	rec := sampleRecord(id, 1)
	if err := s.Create(ctx, rec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	want := rec.Clone()
	mutate(rec)
	got, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	requireEqual(t, want, got)

	got.Current = 1
	if err := s.Update(ctx, got); err != nil {
		t.Fatalf("Update: %v", err)
	}
	want = got.Clone()
	mutate(got)
	again, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	requireEqual(t, want, again)
}

func testCopiesOut(t *testing.T, s store.Store, id string) {
	ctx := t.Context()
	rec := sampleRecord(id, 1)
	if err := s.Create(ctx, rec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	first, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	mutate(first)
	second, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	requireEqual(t, rec, second)
}

func testPing(t *testing.T, s store.Store, _ string) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testInvalid(t *testing.T, s store.Store, id string) {
	ctx := t.Context()
	long := strings.Repeat("a", store.MaxIDLen+1)
	existing := sampleRecord(id, 1)
	if err := s.Create(ctx, existing); err != nil {
		t.Fatalf("Create: %v", err)
	}
	tests := []struct {
		name string
		call func() error
	}{
		{"create-nil", func() error { return s.Create(ctx, nil) }},
		{"create-empty-id", func() error { return s.Create(ctx, &store.Record{}) }},
		{"create-long-id", func() error { return s.Create(ctx, &store.Record{ID: long}) }},
		{"create-bad-utf8", func() error { return s.Create(ctx, &store.Record{ID: "a\xffb"}) }},
		{"update-nil", func() error { return s.Update(ctx, nil) }},
		{"update-empty-id", func() error { return s.Update(ctx, &store.Record{Revision: 1}) }},
		{"update-max-revision", func() error { return s.Update(ctx, withRevision(existing, store.MaxRevision)) }},
		{"get-empty-id", func() error { _, err := s.Get(ctx, ""); return err }},
		{"get-long-id", func() error { _, err := s.Get(ctx, long); return err }},
		{"delete-empty-id", func() error { return s.Delete(ctx, "") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
		})
	}
	got, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	requireEqual(t, existing, got)
}

// testContextDone checks that a cancelled or expired context makes every operation fail with
// ErrUnavailable and the context's error, and that no write took effect.
func testContextDone(t *testing.T, s store.Store, id string) {
	live := t.Context()
	existing := sampleRecord(id+"/existing", 1)
	if err := s.Create(live, existing); err != nil {
		t.Fatalf("Create: %v", err)
	}
	cancelled, cancel := context.WithCancel(live)
	cancel()
	expired, cancel2 := context.WithTimeout(live, -1)
	defer cancel2()

	for _, c := range []struct {
		name string
		ctx  context.Context
		want error
	}{{"cancelled", cancelled, context.Canceled}, {"expired", expired, context.DeadlineExceeded}} {
		t.Run(c.name, func(t *testing.T) {
			ctx := c.ctx
			calls := []struct {
				name string
				call func() error
			}{
				{"get", func() error { _, err := s.Get(ctx, existing.ID); return err }},
				{"create", func() error { return s.Create(ctx, sampleRecord(id+"/new", 1)) }},
				{"update", func() error { return s.Update(ctx, withRevision(sampleRecord(existing.ID, 2), existing.Revision)) }},
				{"delete", func() error { return s.Delete(ctx, existing.ID) }},
				{"ping", func() error { return s.Ping(ctx) }},
			}
			for _, tc := range calls {
				err := tc.call()
				if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, c.want) {
					t.Errorf("%s with %s context = %v; want ErrUnavailable and %v", tc.name, c.name, err, c.want)
				}
			}
		})
	}
	if _, err := s.Get(live, id+"/new"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of record created with a done context = %v, want ErrNotFound", err)
	}
	got, err := s.Get(live, existing.ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	requireEqual(t, existing, got)
}

// testLifecycleUpdate checks that Update stores the version lifecycle fields, and that clearing
// them (un-retiring a version) really clears them: an Update replaces the whole record.
func testLifecycleUpdate(t *testing.T, s store.Store, id string) {
	ctx := t.Context()
	rec := sampleRecord(id, 1)
	if err := s.Create(ctx, rec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	next := lifecycleRecord(id)
	next.Revision = rec.Revision
	want := next.Clone()
	if err := s.Update(ctx, next); err != nil {
		t.Fatalf("Update with lifecycle fields: %v", err)
	}
	got, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	requireEqual(t, withRevision(want, next.Revision), got)
	// Un-retire version 2, lower the minimum, zero the seal count.
	got.MinDecryptVersion = 0
	got.Versions[1].Retired = time.Time{}
	got.Versions[2].Seals = 0
	want = got.Clone()
	if err := s.Update(ctx, got); err != nil {
		t.Fatalf("Update clearing lifecycle fields: %v", err)
	}
	again, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	requireEqual(t, withRevision(want, got.Revision), again)
}
