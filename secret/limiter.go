package secret

import (
	"sync"
	"sync/atomic"
)

// Limiter bounds how many of its keys hold derived values at the same time. A key counts from its
// first [Key.Derive] until it is wiped or the limiter drops its derived values to make room for
// another key; its next Derive then derives again. Which key gives way is chosen by the CLOCK
// algorithm (second chance), an approximation of least recently used whose hit path is one atomic
// load in Derive: a key is admitted unmarked and each later Derive marks it used; the clock hand
// sweeps the keys in the order they were admitted, clearing the mark of a used key and dropping
// the derived values of the first key it finds unmarked. Keys used once give way first.
//
// Why: a data key is 32 bytes, but an AES-GCM primitive built from it holds about 1 KiB of
// expanded key schedule and GHASH tables. A keyring that caches 100,000 keys would otherwise keep
// 100 MiB of cipher state for keys that may be used once an hour.
//
// A Limiter is safe for concurrent use. Memory it keeps beyond the derived values it bounds: one
// pointer per slot, and up to limit wiped (empty) keys until the hand passes them.
type Limiter struct {
	mu      sync.Mutex
	slots   []*Key // the admitted keys; nil: free
	hand    int
	dropped atomic.Uint64
}

// NewLimiter returns a limiter that lets at most limit keys hold derived values at once.
// It panics if limit < 1.
func NewLimiter(limit int) *Limiter {
	if limit < 1 {
		panic("secret: NewLimiter: limit must be at least 1")
	}
	return &Limiter{slots: make([]*Key, limit)}
}

// New is like the package function [New] for a key whose derived values count against l.
func (l *Limiter) New(b []byte) *Key { return &Key{b: b, lim: l} }

// Limit returns how many keys may hold derived values at once.
func (l *Limiter) Limit() int { return len(l.slots) }

// Dropped returns how many times the derived values of a key were dropped to make room.
func (l *Limiter) Dropped() uint64 { return l.dropped.Load() }

// admit makes room for k and records it. It is called once each time k's list of derived values
// goes from empty to not empty; while k is in a slot its list is emptied only by Wipe or by
// evict, and evict takes it out of its slot under l.mu first, so k is never in two slots.
func (l *Limiter) admit(k *Key) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if k.wiped.Load() {
		return // Wipe dropped the values after the caller published them
	}
	// A full sweep clears every mark, so this loop ends within len(slots)+1 steps.
	for {
		v := l.slots[l.hand]
		if v == nil || v.wiped.Load() || !v.used.Load() {
			break
		}
		v.used.Store(false)
		l.hand = (l.hand + 1) % len(l.slots)
	}
	if v := l.slots[l.hand]; v != nil && !v.wiped.Load() {
		v.derived.Store(nil) // the values in use by callers stay valid; they are not kept
		l.dropped.Add(1)
	}
	k.used.Store(false) // admitted unmarked: a key used once is the first to give way
	l.slots[l.hand] = k
	l.hand = (l.hand + 1) % len(l.slots)
}
