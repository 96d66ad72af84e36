package keyring

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/rkms/rkms/store"
)

// wrappedCache keeps branch-wrapped records (their current version wrapped under a branch key)
// for Options.WrappedTTL, at most Options.WrappedMaxKeys (least recently used evicted first),
// so that a plaintext cache miss of a tenant costs no store read while its record is cached.
// A record holds no key material: it is useless without its branch key. Records wrapped by KMS
// (direct mode) are never kept here, so direct mode costs what it always did.
type wrappedCache struct {
	mu     sync.Mutex
	lru    *simplelru.LRU[string, wrappedEntry] // nil: disabled
	ttl    time.Duration
	now    func() time.Time
	gen    uint64 // bumped by remove: a put whose read started earlier is dropped
	hits   atomic.Uint64
	misses atomic.Uint64
}

type wrappedEntry struct {
	rec *store.Record
	exp time.Time
}

func newWrappedCache(maxKeys int, ttl time.Duration, now func() time.Time) *wrappedCache {
	c := &wrappedCache{ttl: ttl, now: now}
	if maxKeys > 0 && ttl > 0 {
		c.lru, _ = simplelru.NewLRU[string, wrappedEntry](maxKeys, nil) // err only for size <= 0
	}
	return c
}

// get returns a copy of id's cached record.
func (c *wrappedCache) get(id string) (*store.Record, bool) {
	if c.lru == nil {
		return nil, false
	}
	c.mu.Lock()
	e, ok := c.lru.Get(id)
	if ok && !c.now().Before(e.exp) {
		c.lru.Remove(id)
		ok = false
	}
	c.mu.Unlock()
	if !ok {
		c.misses.Add(1)
		return nil, false
	}
	c.hits.Add(1)
	return e.rec.Clone(), true
}

func (c *wrappedCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put keeps a copy of rec if its current version is branch-wrapped and no remove happened since gen.
func (c *wrappedCache) put(gen uint64, rec *store.Record) {
	if c.lru == nil || rec.IsTombstone() {
		return
	}
	if cur, ok := rec.Version(rec.Current); !ok || !cur.IsBranchWrapped() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	c.lru.Add(rec.ID, wrappedEntry{rec: rec.Clone(), exp: c.now().Add(c.ttl)})
}

// remove forgets id (written by this keyring) and drops puts in progress.
func (c *wrappedCache) remove(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if c.lru != nil {
		c.lru.Remove(id)
	}
}

func (c *wrappedCache) len() int {
	if c.lru == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// readRecord returns id's live record from the wrapped-record cache, or reads it from the store
// (and caches it when its current version is branch-wrapped). cached says where it came from.
func (k *Keyring) readRecord(ctx context.Context, id string) (rec *store.Record, cached bool, err error) {
	if rec, ok := k.wrapped.get(id); ok {
		return rec, true, nil
	}
	gen := k.wrapped.generation()
	rec, err = k.storeGet(ctx, id)
	if err != nil {
		return nil, false, err
	}
	k.wrapped.put(gen, rec)
	return rec, false, nil
}
