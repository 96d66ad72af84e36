package store

import (
	"context"
	"fmt"
	"sync"
)

// Memory is an in-process [Store] for tests and single-process experiments. It keeps deep copies
// of records in a map guarded by a mutex, so it meets the whole consistency contract.
//
// For tests of code built on a Store it can fail on demand ([Memory.SetUnavailable],
// [Memory.SetHook]) and count calls ([Memory.Calls]).
type Memory struct {
	mu          sync.Mutex
	recs        map[string]*Record
	calls       MemoryCalls
	unavailable bool
	hook        MemoryHook
	closed      bool
}

var _ Store = (*Memory)(nil)

// MemoryOp names a [Memory] operation, as passed to a [MemoryHook].
type MemoryOp string

// The operations a [MemoryHook] sees.
const (
	OpGet    MemoryOp = "get"
	OpCreate MemoryOp = "create"
	OpUpdate MemoryOp = "update"
	OpDelete MemoryOp = "delete"
	OpPing   MemoryOp = "ping"
)

// MemoryHook runs at the start of every [Memory] operation, after the call is counted and before
// anything is read or written, without holding the store's lock: it may call the store itself (for
// example to simulate another replica's Create winning a race). If it returns an error the
// operation returns that error and has no effect. id is empty for Ping.
type MemoryHook func(ctx context.Context, op MemoryOp, id string) error

// MemoryCalls counts calls to each [Memory] method, including calls that failed.
type MemoryCalls struct {
	Get, Create, Update, Delete, Ping int
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{recs: make(map[string]*Record)}
}

// SetUnavailable makes every later operation fail with an error wrapping [ErrUnavailable] (true)
// or work again (false). Failed operations have no effect but are still counted.
func (m *Memory) SetUnavailable(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.unavailable = down
}

// SetHook installs h to run at the start of every operation; nil removes it.
func (m *Memory) SetHook(h MemoryHook) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hook = h
}

// Calls returns how many times each method has been called so far.
func (m *Memory) Calls() MemoryCalls {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls
}

// Len returns the number of stored records.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.recs)
}

// begin counts the call, runs the hook and the availability checks, and on success returns with
// m.mu held; the caller must unlock it.
func (m *Memory) begin(ctx context.Context, op MemoryOp, id string) error {
	m.mu.Lock()
	switch op {
	case OpGet:
		m.calls.Get++
	case OpCreate:
		m.calls.Create++
	case OpUpdate:
		m.calls.Update++
	case OpDelete:
		m.calls.Delete++
	case OpPing:
		m.calls.Ping++
	}
	hook := m.hook
	m.mu.Unlock()

	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory store %s: %w: %w", op, ErrUnavailable, err)
	}
	if hook != nil {
		if err := hook(ctx, op, id); err != nil {
			return err
		}
	}
	m.mu.Lock()
	switch {
	case m.closed:
		m.mu.Unlock()
		return fmt.Errorf("memory store %s: store is closed: %w", op, ErrUnavailable)
	case m.unavailable:
		m.mu.Unlock()
		return fmt.Errorf("memory store %s: simulated outage: %w", op, ErrUnavailable)
	}
	return nil
}

// Get implements [Store.Get].
func (m *Memory) Get(ctx context.Context, id string) (*Record, error) {
	if err := CheckID(id); err != nil {
		return nil, fmt.Errorf("get key record: %w", err)
	}
	if err := m.begin(ctx, OpGet, id); err != nil {
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
	if err := m.begin(ctx, OpCreate, rec.ID); err != nil {
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
	if err := m.begin(ctx, OpUpdate, rec.ID); err != nil {
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
	if err := m.begin(ctx, OpDelete, id); err != nil {
		return err
	}
	defer m.mu.Unlock()
	if _, ok := m.recs[id]; !ok {
		return fmt.Errorf("delete key record %q: %w", id, ErrNotFound)
	}
	delete(m.recs, id)
	return nil
}

// Ping implements [Store.Ping]: it fails only when the store is closed, marked unavailable, the
// hook fails, or ctx is done.
func (m *Memory) Ping(ctx context.Context) error {
	if err := m.begin(ctx, OpPing, ""); err != nil {
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
