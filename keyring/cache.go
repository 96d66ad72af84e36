package keyring

import (
	"bytes"
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rkms/rkms/internal/secret"
	"github.com/rkms/rkms/store"
)

// cache holds plaintext data keys per id: the current version and every version opened so far.
// It is bounded by entry count (least recently used evicted first) and by a TTL counted from the
// moment an entry was filled (hits do not extend it, so the TTL bounds how long a deleted or
// rotated key can be served). Evicted keys are wiped after a short grace period so that a caller
// that just received one can finish using it.
//
// Hits do not read the clock (a clock read costs 50-400 ns on some virtual machines, more than
// the rest of a hit): expired entries are removed by sweep, which the keyring runs every
// sweepInterval, so an entry lives at most TTL plus one sweep interval.
//
// With maxStale > 0 the sweep does not drop an entry at its TTL but marks it stale: hits miss
// (so the caller refetches) while the keys stay, for stale-if-error, until TTL+maxStale. Each
// version remembers the wrapped copy it was opened from (origin), so that a stale key is only
// served for a record that still holds that very copy.
type cache struct {
	mu    sync.Mutex
	items map[string]*entry
	// lru is a circular list through entry.prev/next, most recent first; fifo is a circular list
	// through entry.older/newer in fill order, which is also expiry order since the TTL is fixed.
	lru, fifo entry
	// stale is a circular list through entry.older/newer of the entries past their TTL (kept
	// for stale-if-error), in fill order too.
	stale    entry
	max      int
	ttl      time.Duration
	maxStale time.Duration
	now      func() time.Time
	gen      uint64 // bumped by remove; fills that started earlier are not cached
	disabled bool
	grace    time.Duration
	hits     atomic.Uint64
	misses   atomic.Uint64
}

type entry struct {
	id      string
	expires time.Time
	stale   bool      // past its TTL: hits miss, kept for stale-if-error only
	retryAt time.Time // stale: serve without a refresh attempt until then (a refresh just failed)
	current uint32
	cur     *secret.Key // the key of version current, or nil if it was not opened
	// vers holds every version opened so far, usually one: a slice, not a map, because the
	// cache holds 100,000 or more entries and a one-element map costs ~200 bytes more.
	vers         []cachedVersion
	prev, next   *entry
	older, newer *entry
}

// cachedVersion is one opened version of an entry.
type cachedVersion struct {
	v   uint32
	key *secret.Key
	org *origin // maxStale > 0 only
}

// version returns the cached version v, or nil.
func (e *entry) version(v uint32) *cachedVersion {
	for i := range e.vers {
		if e.vers[i].v == v {
			return &e.vers[i]
		}
	}
	return nil
}

// key returns the key of the cached version v, or nil.
func (e *entry) key(v uint32) *secret.Key {
	if cv := e.version(v); cv != nil {
		return cv.key
	}
	return nil
}

// origin identifies the wrapped copy a cached version was opened from: its region and a hash
// of its ciphertext. A record deleted and re-created holds other copies under the same version
// number, so a stale key is served only while the record still holds its origin.
type origin struct {
	region string
	sum    [sha256.Size]byte
}

// originOf returns the origin of version ver's copy in region.
func originOf(ver store.Version, region string) origin {
	w, ok := ver.Wrapped[region]
	if !ok {
		return origin{}
	}
	return origin{region: region, sum: sha256.Sum256(w.Blob)}
}

// heldBy reports whether version v of rec still holds the copy o was taken from.
func (o origin) heldBy(rec *store.Record, v uint32) bool {
	if o.region == "" {
		return false
	}
	ver, ok := rec.Version(v)
	if !ok {
		return false
	}
	w, ok := ver.Wrapped[o.region]
	if !ok {
		return false
	}
	sum := sha256.Sum256(w.Blob)
	return bytes.Equal(sum[:], o.sum[:])
}

// staleRetry is how long a stale key is served without a new refresh attempt after one failed,
// so that an outage costs each hot id one failing fetch per interval, not one per request.
const staleRetry = time.Second

func newCache(maxKeys int, ttl, maxStale time.Duration, now func() time.Time, grace time.Duration) *cache {
	c := &cache{items: make(map[string]*entry), max: maxKeys, ttl: ttl, maxStale: max(maxStale, 0), now: now, grace: grace}
	c.disabled = maxKeys <= 0 || ttl <= 0
	c.lru.prev, c.lru.next = &c.lru, &c.lru
	c.fifo.older, c.fifo.newer = &c.fifo, &c.fifo
	c.stale.older, c.stale.newer = &c.stale, &c.stale
	return c
}

// current returns the cached current version of id.
func (c *cache) current(id string) (DataKey, bool) {
	c.mu.Lock()
	e := c.items[id]
	if e == nil || e.cur == nil || e.stale {
		c.mu.Unlock()
		c.misses.Add(1)
		return DataKey{}, false
	}
	c.touch(e)
	dk := DataKey{ID: id, Version: e.current, Secret: e.cur}
	c.mu.Unlock()
	c.hits.Add(1)
	return dk, true
}

// version returns the cached version v of id.
func (c *cache) version(id string, v uint32) (DataKey, bool) {
	c.mu.Lock()
	e := c.items[id]
	if e == nil || e.stale {
		c.mu.Unlock()
		c.misses.Add(1)
		return DataKey{}, false
	}
	key := e.key(v)
	if key == nil {
		c.mu.Unlock()
		c.misses.Add(1)
		return DataKey{}, false
	}
	c.touch(e)
	c.mu.Unlock()
	c.hits.Add(1)
	return DataKey{ID: id, Version: v, Secret: key}, true
}

// live reports whether e is unexpired, removing it if not. c.mu must be held.
func (c *cache) live(e *entry) bool {
	if c.now().Before(e.expires) {
		return true
	}
	c.unlink(e)
	return false
}

// sweepInterval is how often expired entries are removed: a hundredth of the TTL, between 10ms
// and one second.
func sweepInterval(ttl time.Duration) time.Duration {
	return min(max(ttl/100, 10*time.Millisecond), time.Second)
}

// generation returns the token to pass to put: a fill that started before a remove is dropped.
func (c *cache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put caches version v of id, opened from a record whose current version is recCurrent, and
// returns the key to hand out: the one already cached for (id, v) if any (key is then wiped),
// else key. If the cache is disabled or a remove happened since gen, key is returned uncached
// and wiped after the grace period.
// org is the copy the key was opened from (kept only when stale-if-error is on).
func (c *cache) put(gen uint64, id string, v, recCurrent uint32, key *secret.Key, org origin) *secret.Key {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.disabled || gen != c.gen {
		c.wipeLater(key)
		return key
	}
	e := c.items[id]
	if e != nil && !c.live(e) {
		e = nil
	}
	if e == nil {
		e = &entry{id: id, expires: c.now().Add(c.ttl)}
		c.items[id] = e
		c.pushFront(e)
		c.pushNewest(e)
		for len(c.items) > c.max {
			c.unlink(c.lru.prev)
		}
	} else {
		c.touch(e)
	}
	if old := e.key(v); old != nil {
		if old != key {
			key.Wipe() // never handed out
		}
		key = old
	} else {
		cv := cachedVersion{v: v, key: key}
		if c.maxStale > 0 {
			cv.org = &org
		}
		e.vers = append(e.vers, cv)
	}
	if recCurrent >= e.current {
		e.current = recCurrent
		e.cur = e.key(recCurrent)
	}
	return key
}

// remove evicts id (Delete) and invalidates fills in progress.
func (c *cache) remove(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if e := c.items[id]; e != nil {
		c.unlink(e)
	}
}

// sweep evicts expired entries, or with maxStale > 0 marks them stale, and evicts stale entries
// older than TTL+maxStale.
func (c *cache) sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for e := c.fifo.newer; e != &c.fifo && !now.Before(e.expires); e = c.fifo.newer {
		if c.maxStale <= 0 {
			c.unlink(e)
			continue
		}
		e.older.newer, e.newer.older = e.newer, e.older
		e.stale = true
		e.newer, e.older = &c.stale, c.stale.older
		c.stale.older.newer = e
		c.stale.older = e
	}
	for e := c.stale.newer; e != &c.stale && !now.Before(e.expires.Add(c.maxStale)); e = c.stale.newer {
		c.unlink(e)
	}
}

// staleKey returns id's cached version v (the entry's current version if current is set) for
// stale-if-error: the entry may be past its TTL, but not past TTL+maxStale. If rec is not nil
// (the store answered but the key could not be opened), the record must still hold the copy
// the cached key was opened from. With backoff set it only answers for an entry whose last
// refresh failed less than staleRetry ago; otherwise it starts such an interval.
func (c *cache) staleKey(id string, v uint32, current bool, rec *store.Record, backoff bool) (DataKey, bool) {
	if c.maxStale <= 0 {
		return DataKey{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.items[id]
	if e == nil {
		return DataKey{}, false
	}
	now := c.now()
	if !now.Before(e.expires.Add(c.maxStale)) || (backoff && (!e.stale || !now.Before(e.retryAt))) {
		return DataKey{}, false
	}
	if current {
		v = e.current
	}
	cv := e.version(v)
	if cv == nil || (rec != nil && (cv.org == nil || !cv.org.heldBy(rec, v))) {
		return DataKey{}, false
	}
	if !backoff {
		e.retryAt = now.Add(staleRetry)
	}
	return DataKey{ID: id, Version: v, Secret: cv.key}, true
}

// recent returns up to n cached ids, most recently used first.
func (c *cache) recent(n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, min(n, len(c.items)))
	for e := c.lru.next; e != &c.lru && len(out) < n; e = e.next {
		out = append(out, e.id)
	}
	return out
}

// clear evicts everything and wipes at once (Close).
func (c *cache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	grace := c.grace
	c.grace = 0
	for c.lru.next != &c.lru {
		c.unlink(c.lru.next)
	}
	c.grace = grace
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}

// unlink removes e from the map and both lists and schedules its keys' wipe. c.mu must be held.
func (c *cache) unlink(e *entry) {
	delete(c.items, e.id)
	e.prev.next, e.next.prev = e.next, e.prev
	e.older.newer, e.newer.older = e.newer, e.older
	e.prev, e.next, e.older, e.newer = nil, nil, nil, nil
	for _, cv := range e.vers {
		c.wipeLater(cv.key)
	}
	e.vers, e.cur = nil, nil
}

func (c *cache) touch(e *entry) {
	if c.lru.next == e {
		return
	}
	e.prev.next, e.next.prev = e.next, e.prev
	c.pushFront(e)
}

func (c *cache) pushFront(e *entry) {
	e.prev, e.next = &c.lru, c.lru.next
	c.lru.next.prev = e
	c.lru.next = e
}

func (c *cache) pushNewest(e *entry) {
	e.newer, e.older = &c.fifo, c.fifo.older
	c.fifo.older.newer = e
	c.fifo.older = e
}

// wipeLater wipes k once the grace period has passed (at once if it is zero).
func (c *cache) wipeLater(k *secret.Key) {
	if c.grace <= 0 {
		k.Wipe()
		return
	}
	time.AfterFunc(c.grace, k.Wipe)
}
