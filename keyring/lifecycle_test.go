package keyring_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/store"
)

func TestCreate(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		setup    func(t *testing.T, k *keyring.Keyring)
		recreate bool
		wantErr  error
	}{
		{"absent", func(*testing.T, *keyring.Keyring) {}, false, nil},
		{"absent-recreate", func(*testing.T, *keyring.Keyring) {}, true, nil},
		{"exists", func(t *testing.T, k *keyring.Keyring) { mustGet(t, k, "k") }, false, keyring.ErrExists},
		{"exists-recreate", func(t *testing.T, k *keyring.Keyring) { mustGet(t, k, "k") }, true, keyring.ErrExists},
		{"deleted", deleted, false, keyring.ErrDeleted},
		{"deleted-recreate", deleted, true, nil},
		{"invalid", nil, false, keyring.ErrInvalidID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 3)
			k := e.keyring(t, keyring.Options{})
			id := "k"
			if tc.setup == nil {
				id = "bad id"
			} else {
				tc.setup(t, k)
			}
			dk, err := k.Create(ctx, id, tc.recreate)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Create = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || dk.Version != 1 {
				t.Fatalf("Create = %+v, %v; want version 1", dk, err)
			}
			rec := mustRecord(t, e.st, id)
			if rec.IsTombstone() || rec.Current != 1 || len(rec.Versions) != 1 {
				t.Fatalf("stored record: %+v", rec)
			}
			if got := mustGet(t, k, id); got.Version != 1 {
				t.Fatalf("Get after Create: version %d", got.Version)
			}
		})
	}
}

func deleted(t *testing.T, k *keyring.Keyring) {
	t.Helper()
	mustGet(t, k, "k")
	if err := k.Delete(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
}

func TestCreateRateLimited(t *testing.T) {
	e := newEnv(t, 3)
	k := e.keyring(t, keyring.Options{CreateRate: 1e-9, CreateBurst: 1})
	if _, err := k.Create(context.Background(), "a", false); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Create(context.Background(), "b", false); !errors.Is(err, keyring.ErrCreateLimited) {
		t.Fatalf("second Create = %v, want ErrCreateLimited", err)
	}
}

func TestList(t *testing.T) {
	e := newEnv(t, 3)
	k := e.keyring(t, keyring.Options{})
	ctx := context.Background()
	for _, id := range []string{"t/c", "t/a", "u/x", "t/b"} {
		mustGet(t, k, id)
	}
	if err := k.Delete(ctx, "t/b"); err != nil {
		t.Fatal(err)
	}
	before := e.st.Calls()
	var ids, dels []string
	after := ""
	for pages := 0; ; pages++ {
		p, err := k.List(ctx, "t/", after, 1)
		if err != nil {
			t.Fatal(err)
		}
		ids, dels = append(ids, p.IDs...), append(dels, p.Deleted...)
		if p.Next == "" {
			break
		}
		after = p.Next
		if pages > 10 {
			t.Fatal("listing does not end")
		}
	}
	if !slices.Equal(ids, []string{"t/a", "t/c"}) || !slices.Equal(dels, []string{"t/b"}) {
		t.Fatalf("List = ids %v, deleted %v", ids, dels)
	}
	if c := e.st.Calls(); c.Get != before.Get || c.Create != before.Create {
		t.Fatalf("List read or created records: %+v -> %+v", before, c)
	}
	tests := []struct {
		name   string
		prefix string
		limit  int
		want   error
	}{
		{"bad-prefix", "t b", 1, keyring.ErrInvalidID},
		{"zero-limit", "", 0, store.ErrInvalid},
		{"limit-over-max", "", store.MaxListLimit + 1, store.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := k.List(ctx, tc.prefix, "", tc.limit); !errors.Is(err, tc.want) {
				t.Fatalf("List = %v, want %v", err, tc.want)
			}
		})
	}
}
