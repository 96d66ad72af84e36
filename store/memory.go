package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Memory is an in-process [Store] for tests and single-process experiments (store type
// "memory"). It keeps deep copies of records in a map guarded by a mutex, so it meets the whole
// consistency contract.
//
// Tests that need to count calls or inject failures wrap it: storetest.NewMemory.
type Memory struct {
	mu     sync.Mutex
	recs   map[string]*Record
	closed bool
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{recs: make(map[string]*Record)}
}

// begin checks ctx and that the store is open, and on success returns with m.mu held; the caller
// must unlock it.
func (m *Memory) begin(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory store %s: %w: %w", op, ErrUnavailable, err)
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return fmt.Errorf("memory store %s: store is closed: %w", op, ErrUnavailable)
	}
	return nil
}

// Get implements [Store.Get].
func (m *Memory) Get(ctx context.Context, id string) (*Record, error) {
	if err := CheckID(id); err != nil {
		return nil, fmt.Errorf("get key record: %w", err)
	}
	if err := m.begin(ctx, "get"); err != nil {
		return nil, err
	}
	defer m.mu.Unlock()
	rec, ok := m.recs[id]
	if !ok {
		return nil, fmt.Errorf("get key record %q: %w", id, ErrNotFound)
	}
	return rec.Clone(), nil
}

// Create implements [Store.Create].
func (m *Memory) Create(ctx context.Context, rec *Record) error {
	if err := CheckRecord(rec); err != nil {
		return fmt.Errorf("create key record: %w", err)
	}
	if err := m.begin(ctx, "create"); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if _, ok := m.recs[rec.ID]; ok {
		return fmt.Errorf("create key record %q: %w", rec.ID, ErrExists)
	}
	c := rec.Clone()
	c.Revision = NewRevision()
	m.recs[rec.ID] = c
	rec.Revision = c.Revision
	return nil
}

// Update implements [Store.Update].
func (m *Memory) Update(ctx context.Context, rec *Record) error {
	if err := CheckRecord(rec); err != nil {
		return fmt.Errorf("update key record: %w", err)
	}
	next, err := NextRevision(rec.Revision)
	if err != nil {
		return fmt.Errorf("update key record %q: %w", rec.ID, err)
	}
	if err := m.begin(ctx, "update"); err != nil {
		return err
	}
	defer m.mu.Unlock()
	cur, ok := m.recs[rec.ID]
	if !ok {
		return fmt.Errorf("update key record %q: %w", rec.ID, ErrNotFound)
	}
	if cur.Revision != rec.Revision {
		return fmt.Errorf("update key record %q at revision %d (stored %d): %w",
			rec.ID, rec.Revision, cur.Revision, ErrConflict)
	}
	c := rec.Clone()
	c.Revision = next
	m.recs[rec.ID] = c
	rec.Revision = c.Revision
	return nil
}

// Delete implements [Store.Delete].
func (m *Memory) Delete(ctx context.Context, id string) error {
	if err := CheckID(id); err != nil {
		return fmt.Errorf("delete key record: %w", err)
	}
	if err := m.begin(ctx, "delete"); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if _, ok := m.recs[id]; !ok {
		return fmt.Errorf("delete key record %q: %w", id, ErrNotFound)
	}
	delete(m.recs, id)
	return nil
}

// List implements [Store.List] in id order: it sorts the ids on every call, which is fine for
// the sizes a memory store holds.
func (m *Memory) List(ctx context.Context, opts ListOptions) (ListPage, error) {
	if err := CheckListOptions(opts); err != nil {
		return ListPage{}, fmt.Errorf("list key records: %w", err)
	}
	if err := m.begin(ctx, "list"); err != nil {
		return ListPage{}, err
	}
	ids := make([]string, 0, len(m.recs))
	for id := range m.recs {
		if strings.HasPrefix(id, opts.Prefix) && id > opts.After {
			ids = append(ids, id)
		}
	}
	deleted := make(map[string]bool, len(ids))
	for _, id := range ids {
		deleted[id] = m.recs[id].IsTombstone()
	}
	m.mu.Unlock()
	slices.Sort(ids)
	return pageOf(ids, deleted, opts.Limit), nil
}

// pageOf returns the first limit of the sorted ids as a page, with the last one as cursor when
// more follow.
func pageOf(ids []string, deleted map[string]bool, limit int) ListPage {
	var p ListPage
	if len(ids) > limit {
		ids = ids[:limit]
		p.Next = ids[limit-1]
	}
	p.Entries = make([]ListEntry, len(ids))
	for i, id := range ids {
		p.Entries[i] = ListEntry{ID: id, Deleted: deleted[id]}
	}
	return p
}

// Ping implements [Store.Ping]: it fails only when the store is closed or ctx is done.
func (m *Memory) Ping(ctx context.Context) error {
	if err := m.begin(ctx, "ping"); err != nil {
		return err
	}
	m.mu.Unlock()
	return nil
}

// Close marks the store closed: later operations fail with [ErrUnavailable]. It is idempotent.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
