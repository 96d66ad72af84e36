package storetest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/rkms/rkms/store"
	"github.com/rkms/rkms/store/storetest"
)

func TestMemoryConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		m := storetest.NewMemory()
		t.Cleanup(func() { _ = m.Close() })
		return m
	})
}

func TestMemoryUnavailable(t *testing.T) {
	ctx := t.Context()
	m := storetest.NewMemory()
	rec := &store.Record{ID: "k", Current: 1}
	if err := m.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	m.SetUnavailable(true)
	calls := []struct {
		name string
		call func() error
	}{
		{"get", func() error { _, err := m.Get(ctx, "k"); return err }},
		{"create", func() error { return m.Create(ctx, &store.Record{ID: "other"}) }},
		{"update", func() error { return m.Update(ctx, rec.Clone()) }},
		{"delete", func() error { return m.Delete(ctx, "k") }},
		{"ping", func() error { return m.Ping(ctx) }},
	}
	for _, tc := range calls {
		if err := tc.call(); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s while unavailable = %v, want ErrUnavailable", tc.name, err)
		}
	}
	m.SetUnavailable(false)
	got, err := m.Get(ctx, "k")
	if err != nil {
		t.Fatalf("Get after recovery: %v", err)
	}
	if got.Revision != rec.Revision || got.Current != 1 || m.Len() != 1 {
		t.Fatalf("failed operations had an effect: %+v, %d records", got, m.Len())
	}
	want := storetest.MemoryCalls{Get: 2, Create: 2, Update: 1, Delete: 1, Ping: 1}
	if c := m.Calls(); c != want {
		t.Fatalf("Calls() = %+v, want %+v", c, want)
	}
}

func TestMemoryHook(t *testing.T) {
	ctx := t.Context()
	m := storetest.NewMemory()
	injected := errors.New("injected")
	tests := []struct {
		name    string
		hook    storetest.MemoryHook
		wantErr error
		wantLen int
	}{
		{"fails", func(context.Context, storetest.MemoryOp, string) error { return injected }, injected, 0},
		{"races", func(ctx context.Context, op storetest.MemoryOp, id string) error {
			if op == storetest.OpCreate && id == "k" {
				m.SetHook(nil)
				return m.Create(ctx, &store.Record{ID: id, Current: 7}) // another replica wins
			}
			return nil
		}, store.ErrExists, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m.SetHook(tc.hook)
			defer m.SetHook(nil)
			err := m.Create(ctx, &store.Record{ID: "k", Current: 1})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Create = %v, want %v", err, tc.wantErr)
			}
			if m.Len() != tc.wantLen {
				t.Fatalf("Len = %d, want %d", m.Len(), tc.wantLen)
			}
		})
	}
	got, err := m.Get(ctx, "k")
	if err != nil || got.Current != 7 {
		t.Fatalf("Get = %+v, %v; want the racing writer's record", got, err)
	}
}

func TestMemoryClosed(t *testing.T) {
	m := storetest.NewMemory()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get(t.Context(), "k"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Get after Close = %v, want ErrUnavailable", err)
	}
}
