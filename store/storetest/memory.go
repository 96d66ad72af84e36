package storetest

import (
	"context"
	"fmt"
	"sync"

	"github.com/rkms/rkms/store"
)

// Memory is a [store.Memory] for tests of code built on a Store: it counts calls
// ([Memory.Calls]), fails on demand ([Memory.SetUnavailable], [Memory.SetHook]) and reports how
// many records it holds ([Memory.Len]). The production store.Memory has none of these hooks; this
// wrapper adds them in front of it and otherwise behaves exactly like it.
type Memory struct {
	inner *store.Memory

	mu          sync.Mutex
	calls       MemoryCalls
	unavailable bool
	hook        MemoryHook
	closed      bool
	ids         map[string]struct{} // the ids created and not deleted, for Len
}

var _ store.Store = (*Memory)(nil)

// MemoryOp names a [Memory] operation, as passed to a [MemoryHook].
type MemoryOp string

// The operations a [MemoryHook] sees.
const (
	OpGet    MemoryOp = "get"
	OpCreate MemoryOp = "create"
	OpUpdate MemoryOp = "update"
	OpDelete MemoryOp = "delete"
	OpPing   MemoryOp = "ping"
	OpList   MemoryOp = "list"
)

// MemoryHook runs at the start of every [Memory] operation, after the call is counted and before
// anything is read or written, without holding the store's lock: it may call the store itself (for
// example to simulate another replica's Create winning a race). If it returns an error the
// operation returns that error and has no effect. id is empty for Ping and List.
type MemoryHook func(ctx context.Context, op MemoryOp, id string) error

// MemoryCalls counts calls to each [Memory] method, including calls that failed. A call refused
// for an invalid id or record is not counted (it never reaches the store).
type MemoryCalls struct {
	Get, Create, Update, Delete, Ping, List int
}

// NewMemory returns an empty in-memory store with test hooks.
func NewMemory() *Memory {
	return &Memory{inner: store.NewMemory(), ids: make(map[string]struct{})}
}

// SetUnavailable makes every later operation fail with an error wrapping [store.ErrUnavailable]
// (true) or work again (false). Failed operations have no effect but are still counted.
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
	return len(m.ids)
}

// begin counts the call, then runs the context check, the hook and the availability checks.
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
	case OpList:
		m.calls.List++
	}
	hook := m.hook
	m.mu.Unlock()

	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory store %s: %w: %w", op, store.ErrUnavailable, err)
	}
	if hook != nil {
		if err := hook(ctx, op, id); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.closed:
		return fmt.Errorf("memory store %s: store is closed: %w", op, store.ErrUnavailable)
	case m.unavailable:
		return fmt.Errorf("memory store %s: simulated outage: %w", op, store.ErrUnavailable)
	}
	return nil
}

// Get implements [store.Store.Get].
func (m *Memory) Get(ctx context.Context, id string) (*store.Record, error) {
	if store.CheckID(id) == nil {
		if err := m.begin(ctx, OpGet, id); err != nil {
			return nil, err
		}
	}
	return m.inner.Get(ctx, id)
}

// Create implements [store.Store.Create].
func (m *Memory) Create(ctx context.Context, rec *store.Record) error {
	if store.CheckRecord(rec) != nil {
		return m.inner.Create(ctx, rec)
	}
	if err := m.begin(ctx, OpCreate, rec.ID); err != nil {
		return err
	}
	id := rec.ID
	if err := m.inner.Create(ctx, rec); err != nil {
		return err
	}
	m.mu.Lock()
	m.ids[id] = struct{}{}
	m.mu.Unlock()
	return nil
}

// Update implements [store.Store.Update].
func (m *Memory) Update(ctx context.Context, rec *store.Record) error {
	if store.CheckRecord(rec) == nil {
		if _, err := store.NextRevision(rec.Revision); err == nil {
			if err := m.begin(ctx, OpUpdate, rec.ID); err != nil {
				return err
			}
		}
	}
	return m.inner.Update(ctx, rec)
}

// Delete implements [store.Store.Delete].
func (m *Memory) Delete(ctx context.Context, id string) error {
	if store.CheckID(id) != nil {
		return m.inner.Delete(ctx, id)
	}
	if err := m.begin(ctx, OpDelete, id); err != nil {
		return err
	}
	if err := m.inner.Delete(ctx, id); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.ids, id)
	m.mu.Unlock()
	return nil
}

// List implements [store.Store.List]; the hook sees it with an empty id.
func (m *Memory) List(ctx context.Context, opts store.ListOptions) (store.ListPage, error) {
	if store.CheckListOptions(opts) == nil {
		if err := m.begin(ctx, OpList, ""); err != nil {
			return store.ListPage{}, err
		}
	}
	return m.inner.List(ctx, opts)
}

// Ping implements [store.Store.Ping]: it fails only when the store is closed, marked unavailable,
// the hook fails, or ctx is done.
func (m *Memory) Ping(ctx context.Context) error {
	if err := m.begin(ctx, OpPing, ""); err != nil {
		return err
	}
	return m.inner.Ping(ctx)
}

// Close marks the store closed: later operations fail with [store.ErrUnavailable]. It is
// idempotent.
func (m *Memory) Close() error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	return m.inner.Close()
}
