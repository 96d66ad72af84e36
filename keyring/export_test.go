package keyring

import (
	"context"
	"time"
	"unsafe"
)

// Hooks for the external test package: a keyring without its background loop, whose maintenance
// steps the tests drive themselves.

// NewManual is New without the background loop.
func NewManual(st Store, regions []Region, opts Options) (*Keyring, error) {
	return newKeyring(st, regions, opts, false)
}

// ProbeDue runs the breaker probes that are due.
func (k *Keyring) ProbeDue(ctx context.Context) { k.probeDue(ctx) }

// RepairNow runs one repair pass.
func (k *Keyring) RepairNow(ctx context.Context) { k.repairAll(ctx) }

// SweepCache evicts expired cache entries.
func (k *Keyring) SweepCache() { k.cache.sweep() }

// SetWipeGrace changes the delay before evicted keys are wiped.
func (k *Keyring) SetWipeGrace(d time.Duration) {
	k.cache.mu.Lock()
	k.cache.grace = d
	k.cache.mu.Unlock()
}

// WipeGrace is the production delay before evicted keys are wiped.
const WipeGrace = wipeGrace

// WipeGrace returns the keyring's current delay before evicted keys are wiped.
func (k *Keyring) WipeGrace() time.Duration {
	k.cache.mu.Lock()
	defer k.cache.mu.Unlock()
	return k.cache.grace
}

// MaintainAllNow runs one maintenance pass over every key in the store.
func (k *Keyring) MaintainAllNow(ctx context.Context) { k.maintainAll(ctx) }

// WrapKeyNonce is WrapKey with a given nonce (golden vectors).
func WrapKeyNonce(branchKey, dataKey, nonce []byte, b WrapBinding) ([]byte, error) {
	return wrapKeyNonce(branchKey, dataKey, nonce, b)
}

// BudgetSharesCacheID reports whether the seal budget of id is keyed by the key cache's own
// copy of the id string (the same bytes in memory), and whether it exists at all.
func (k *Keyring) BudgetSharesCacheID(id string) (shared, exists bool) {
	k.budgets.mu.Lock()
	var key string
	for s := range k.budgets.index {
		if s == id {
			key, exists = s, true
		}
	}
	k.budgets.mu.Unlock()
	k.cache.mu.Lock()
	defer k.cache.mu.Unlock()
	i := k.cache.lookup(id)
	return exists && i != 0 && unsafe.StringData(key) == unsafe.StringData(k.cache.slots[i].id), exists
}
