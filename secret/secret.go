package secret

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
)

// ErrWiped is returned by [Key.Use] and [Key.Derive] once [Key.Wipe] has run.
var ErrWiped = errors.New("key material has been wiped")

const redacted = "[redacted key]"

// Key is plaintext key material. The zero value is an empty, unusable key; make one with [New].
// A Key is safe for concurrent use.
//
// # Memory
//
// rkms caches one Key per data key version, 100,000 or more of them, so a Key is kept small:
// derived values hang off one atomic pointer as a short immutable list (one or two entries in
// practice, one per mode), instead of a map per key. What is derived can be far larger than the
// key (expanded cipher key schedules: about 1 KiB for AES-GCM), which is what a [Limiter] bounds.
type Key struct {
	mu      sync.RWMutex
	b       []byte
	wiped   atomic.Bool
	used    atomic.Bool                // set by Derive, cleared by the limiter's clock hand
	derived atomic.Pointer[derivation] // newest first; nodes are never unlinked, only dropped all at once
	lim     *Limiter                   // nil: derived values are kept until Wipe
}

// derivation is one memoized value. tag and next are immutable once the node is published.
type derivation struct {
	tag  any
	next *derivation
	once sync.Once
	v    any
	err  error
}

// New wraps b, taking ownership of it: the caller must not use or modify b afterwards.
func New(b []byte) *Key { return &Key{b: b} }

// Len reports the length of the key material (0 after Wipe).
func (k *Key) Len() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return len(k.b)
}

// Use calls fn with the key bytes and returns fn's error. fn must not retain or modify the slice.
// It returns [ErrWiped] without calling fn once the key has been wiped.
func (k *Key) Use(fn func(b []byte) error) error {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.wiped.Load() {
		return ErrWiped
	}
	return fn(k.b)
}

// Derive returns the value that fn derives from the key bytes, computing it at most once per tag
// (a comparable value that names the derivation, such as a package-local type). Failed
// derivations are not retried for the same tag. It returns [ErrWiped] once the key is wiped.
// A tag that is not comparable panics, as a map key would.
func (k *Key) Derive(tag any, fn func(b []byte) (any, error)) (any, error) {
	if k.wiped.Load() {
		return nil, ErrWiped
	}
	if k.lim != nil && !k.used.Load() {
		k.used.Store(true)
	}
	d := k.derivation(tag)
	d.once.Do(func() {
		d.err = k.Use(func(b []byte) error {
			v, err := fn(b)
			d.v = v
			return err
		})
	})
	if d.err != nil {
		return nil, d.err
	}
	if k.wiped.Load() {
		return nil, ErrWiped
	}
	return d.v, nil
}

// derivation returns the node for tag, publishing a new one if there is none yet.
func (k *Key) derivation(tag any) *derivation {
	var fresh *derivation
	for {
		head := k.derived.Load()
		for d := head; d != nil; d = d.next {
			if d.tag == tag {
				return d
			}
		}
		if fresh == nil {
			fresh = &derivation{tag: tag}
		}
		fresh.next = head
		if k.derived.CompareAndSwap(head, fresh) {
			if k.wiped.Load() {
				// Wipe ran since the check in Derive: drop what was published after it.
				k.derived.Store(nil)
			} else if head == nil && k.lim != nil {
				// The key went from holding nothing derived to holding something: it now
				// counts against its limiter (exactly once per such transition, see Limiter).
				k.lim.admit(k)
			}
			return fresh
		}
	}
}

// Wipe zeroes the key bytes, drops derived values and makes later uses fail with [ErrWiped].
// It waits for uses in progress to finish. Wipe is idempotent.
func (k *Key) Wipe() {
	k.mu.Lock()
	defer k.mu.Unlock()
	clear(k.b)
	k.b = nil
	k.wiped.Store(true)
	k.derived.Store(nil)
}

// String implements fmt.Stringer with a redaction.
func (k *Key) String() string { return redacted }

// GoString implements fmt.GoStringer with a redaction.
func (k *Key) GoString() string { return redacted }

// Format implements fmt.Formatter so that every verb (%x, %v, %+v, %s, ...) prints a redaction.
func (k *Key) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// LogValue implements slog.LogValuer with a redaction.
func (k *Key) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText implements encoding.TextMarshaler with a redaction, so that encoders (encoding/json
// and others) never serialize key material.
func (k *Key) MarshalText() ([]byte, error) { return []byte(redacted), nil }
