package store

import (
	"context"
	"fmt"
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
