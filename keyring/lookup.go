package keyring

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Lookup returns the current version of id's data key like Get, but never creates it: errors
// wrap ErrNotFound when id has no key, otherwise as Get (never ErrCreateLimited). An id found
// absent is remembered for Options.NegativeTTL (the negative cache), so that a flood of unknown
// ids costs one store read per id and TTL, and no KMS call.
func (k *Keyring) Lookup(ctx context.Context, id string) (DataKey, error) {
	if k.closed.Load() {
		return DataKey{}, ErrClosed
	}
	if dk, ok := k.cache.current(id); ok {
		return dk, nil
	}
	if err := ValidateID(id); err != nil {
		return DataKey{}, err
	}
	if k.neg.has(id) {
		return DataKey{}, fmt.Errorf("key %q: %w (absent when last read)", id, ErrNotFound)
	}
	if dk, ok := k.cache.staleKey(id, 0, true, nil, true); ok {
		k.staleHits.Add(1)
		return dk, nil
	}
	// NUL never occurs in a valid id: no collision with Get's or GetVersion's flight keys.
	return k.flight(ctx, id+"\x00lookup", id, k.lookupCurrent)
}

// lookupCurrent reads id's record and opens its current version; it never creates, and
// remembers an absent record in the negative cache.
func (k *Keyring) lookupCurrent(ctx context.Context, id string) (DataKey, error) {
	return k.load(ctx, id, false)
}

// allowCreate takes a token from the creation bucket, or says when to retry. Only a creation
// that will really happen takes one: it runs inside the singleflight of Get, after the store
// said the record does not exist. Branch keys take none: they are rkms's own keys, at most
// Hierarchical.BranchKeys of them, made on behalf of a tenant creation that took its token.
func (k *Keyring) allowCreate(id string) error {
	if k.creates == nil || IsBranchKeyID(id) {
		return nil
	}
	now := k.opts.Now()
	r := k.creates.ReserveN(now, 1)
	d := r.DelayFrom(now)
	if r.OK() && d == 0 {
		return nil
	}
	r.CancelAt(now)
	k.limited.Add(1)
	return &CreateLimitedError{RetryAfter: retryAfter(d)}
}

// retryAfter rounds a limiter delay up to whole seconds, at least one.
func retryAfter(d time.Duration) time.Duration {
	const maxRetry = time.Hour // also InfDuration (a bucket that can never fill)
	if d > maxRetry {
		return maxRetry
	}
	return max(time.Second, (d + time.Second - 1).Truncate(time.Second))
}

// negCache remembers ids that a Lookup found without a record, for a fixed TTL counted from the
// read, bounded in count (least recently used evicted first). Entries are checked against the
// clock when read; expired ones linger until read or evicted.
type negCache struct {
	mu   sync.Mutex
	lru  *simplelru.LRU[string, time.Time] // id -> expiry; nil: disabled
	ttl  time.Duration
	now  func() time.Time
	gen  uint64 // bumped by remove: a put whose read started earlier is dropped
	hits atomic.Uint64
}

func newNegCache(maxKeys int, ttl time.Duration, now func() time.Time) *negCache {
	c := &negCache{ttl: ttl, now: now}
	if maxKeys > 0 && ttl > 0 {
		c.lru, _ = simplelru.NewLRU[string, time.Time](maxKeys, nil) // err only for size <= 0
	}
	return c
}

// has reports whether id was found absent less than the TTL ago, and counts a hit.
func (c *negCache) has(id string) bool {
	if c.lru == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.lru.Get(id)
	if !ok {
		return false
	}
	if !c.now().Before(exp) {
		c.lru.Remove(id)
		return false
	}
	c.hits.Add(1)
	return true
}

// generation returns the token to pass to put.
func (c *negCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put remembers id as absent, unless a remove happened since gen (a key created while the store
// read was under way must not be hidden).
func (c *negCache) put(gen uint64, id string) {
	if c.lru == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	c.lru.Add(id, c.now().Add(c.ttl))
}

// remove forgets id (created, rotated or deleted here) and drops puts in progress.
func (c *negCache) remove(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if c.lru != nil {
		c.lru.Remove(id)
	}
}

func (c *negCache) len() int {
	if c.lru == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
