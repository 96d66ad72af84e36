package storetest

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rkms/rkms/store"
)

// maxListPages bounds a listing in the tests: far more pages than any test table holds.
const maxListPages = 10000

// listAll pages through s.List with opts until Next is empty and returns every entry. It checks
// what every page must satisfy: at most opts.Limit entries, sorted by id within the page.
func listAll(t *testing.T, s store.Store, opts store.ListOptions) []store.ListEntry {
	t.Helper()
	var all []store.ListEntry
	for range maxListPages {
		page, err := s.List(t.Context(), opts)
		if err != nil {
			t.Fatalf("List(%+v): %v", opts, err)
		}
		if len(page.Entries) > opts.Limit {
			t.Fatalf("List(%+v) returned %d entries, more than the limit", opts, len(page.Entries))
		}
		if !slices.IsSortedFunc(page.Entries, func(a, b store.ListEntry) int { return strings.Compare(a.ID, b.ID) }) {
			t.Fatalf("List(%+v) page not sorted: %v", opts, page.Entries)
		}
		all = append(all, page.Entries...)
		if page.Next == "" {
			return all
		}
		opts.After = page.Next
	}
	t.Fatalf("List(%+v) did not end within %d pages", opts, maxListPages)
	return nil
}

func testList(t *testing.T, s store.Store, id string) {
	ctx := t.Context()
	prefix := id + "/list/"
	names := []string{"m", "a", "z", "b/1", "b/2", "c+d", "y"} // created out of order
	want := make([]store.ListEntry, 0, len(names))
	for _, n := range names {
		rec := sampleRecord(prefix+n, 1)
		if n == "y" {
			rec = &store.Record{ID: prefix + n, Deleted: time.Date(2025, 7, 1, 12, 0, 0, 0, time.UTC)}
		}
		if err := s.Create(ctx, rec); err != nil {
			t.Fatalf("Create %q: %v", rec.ID, err)
		}
		want = append(want, store.ListEntry{ID: rec.ID, Deleted: rec.IsTombstone()})
	}
	// A record outside the prefix that sorts between its ids must never show up.
	if err := s.Create(ctx, sampleRecord(id+"/list0", 1)); err != nil {
		t.Fatalf("Create outside the prefix: %v", err)
	}
	sortEntries(want)
	tests := []struct {
		name  string
		opts  store.ListOptions
		want  []store.ListEntry
		exact bool // the whole listing is exactly want (the prefix isolates this run)
	}{
		{"one-page", store.ListOptions{Prefix: prefix, Limit: store.MaxListLimit}, want, true},
		{"pages-of-1", store.ListOptions{Prefix: prefix, Limit: 1}, want, true},
		{"pages-of-3", store.ListOptions{Prefix: prefix, Limit: 3}, want, true},
		{"sub-prefix", store.ListOptions{Prefix: prefix + "b/", Limit: 1}, want[1:3], true},
		{"no-match", store.ListOptions{Prefix: prefix + "nothing", Limit: 2}, nil, true},
		{"no-prefix", store.ListOptions{Limit: 5}, want, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := listAll(t, s, tc.opts)
			seen := make(map[string]bool, len(got))
			var mine []store.ListEntry
			for _, e := range got {
				if seen[e.ID] {
					t.Fatalf("id %q listed twice", e.ID)
				}
				seen[e.ID] = true
				if strings.HasPrefix(e.ID, prefix) {
					mine = append(mine, e)
				}
			}
			if tc.exact && len(got) != len(mine) {
				t.Fatalf("listing %+v has ids outside the prefix: %v", tc.opts, got)
			}
			sortEntries(mine)
			if !slices.Equal(mine, tc.want) {
				t.Fatalf("listing %+v = %v, want %v", tc.opts, mine, tc.want)
			}
		})
	}
	t.Run("deleted-gone", func(t *testing.T) {
		if err := s.Delete(ctx, prefix+"a"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		got := listAll(t, s, store.ListOptions{Prefix: prefix, Limit: 2})
		sortEntries(got)
		if !slices.Equal(got, want[1:]) {
			t.Fatalf("listing after Delete = %v, want %v", got, want[1:])
		}
	})
}

func sortEntries(e []store.ListEntry) {
	slices.SortFunc(e, func(a, b store.ListEntry) int { return strings.Compare(a.ID, b.ID) })
}

func testListInvalid(t *testing.T, s store.Store, id string) {
	tests := []struct {
		name string
		opts store.ListOptions
	}{
		{"zero-limit", store.ListOptions{Limit: 0}},
		{"negative-limit", store.ListOptions{Limit: -1}},
		{"limit-over-max", store.ListOptions{Limit: store.MaxListLimit + 1}},
		{"long-prefix", store.ListOptions{Prefix: strings.Repeat("p", store.MaxIDLen+1), Limit: 1}},
		{"long-cursor", store.ListOptions{After: strings.Repeat("p", store.MaxIDLen+1), Limit: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.List(t.Context(), tc.opts); !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("List(%+v) = %v, want ErrInvalid", tc.opts, err)
			}
		})
	}
	_ = id
}

// testTombstone checks that a tombstone's deletion time round-trips through Create and Update
// and that a tombstone can be turned back into a live record (the keyring's re-create).
func testTombstone(t *testing.T, s store.Store, id string) {
	ctx := t.Context()
	deleted := time.Date(2025, 7, 1, 12, 0, 0, 123456789, time.UTC)
	rec := sampleRecord(id, 1)
	if err := s.Create(ctx, rec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	tomb := &store.Record{ID: id, Revision: rec.Revision, Deleted: deleted}
	if err := s.Update(ctx, tomb); err != nil {
		t.Fatalf("Update to tombstone: %v", err)
	}
	got, err := s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get tombstone: %v", err)
	}
	if !got.IsTombstone() || !got.Deleted.Equal(deleted) || len(got.Versions) != 0 {
		t.Fatalf("Get tombstone = deleted %v, %d versions; want deleted %v, none", got.Deleted, len(got.Versions), deleted)
	}
	live := sampleRecord(id, 1)
	live.Revision = got.Revision
	if err := s.Update(ctx, live); err != nil {
		t.Fatalf("Update tombstone to live: %v", err)
	}
	got, err = s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get re-created: %v", err)
	}
	requireEqual(t, live, got)
	if got.IsTombstone() {
		t.Fatal("re-created record is still a tombstone")
	}
}
