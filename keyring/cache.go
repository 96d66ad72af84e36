package keyring

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/rkms/rkms/internal/secret"
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
type cache struct {
	mu    sync.Mutex
	items map[string]*entry
	// lru is a circular list through entry.prev/next, most recent first; fifo is a circular list
	// through entry.older/newer in fill order, which is also expiry order since the TTL is fixed.
	lru, fifo entry
	max       int
	ttl       time.Duration
	now       func() time.Time
	gen       uint64 // bumped by remove; fills that started earlier are not cached
	disabled  bool
	grace     time.Duration
	hits      atomic.Uint64
	misses    atomic.Uint64
}

type entry struct {
	id           string
	expires      time.Time
	current      uint32
	cur          *secret.Key // keys[current], or nil if the current version was not opened
	keys         map[uint32]*secret.Key
	prev, next   *entry
	older, newer *entry
}

func newCache(max int, ttl time.Duration, now func() time.Time, grace time.Duration) *cache {
	c := &cache{items: make(map[string]*entry), max: max, ttl: ttl, now: now, grace: grace}
	c.disabled = max <= 0 || ttl <= 0
	c.lru.prev, c.lru.next = &c.lru, &c.lru
	c.fifo.older, c.fifo.newer = &c.fifo, &c.fifo
	return c
}

// current returns the cached current version of id.
func (c *cache) current(id string) (DataKey, bool) {
	c.mu.Lock()
	e := c.items[id]
	if e == nil || e.cur == nil {
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
	if e == nil {
		c.mu.Unlock()
		c.misses.Add(1)
		return DataKey{}, false
	}
	key := e.keys[v]
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
func (c *cache) put(gen uint64, id string, v, recCurrent uint32, key *secret.Key) *secret.Key {
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
		e = &entry{id: id, expires: c.now().Add(c.ttl), keys: make(map[uint32]*secret.Key, 1)}
		c.items[id] = e
		c.pushFront(e)
		c.pushNewest(e)
		for len(c.items) > c.max {
			c.unlink(c.lru.prev)
		}
	} else {
		c.touch(e)
	}
	if old := e.keys[v]; old != nil {
		if old != key {
			key.Wipe() // never handed out
		}
		key = old
	} else {
		e.keys[v] = key
	}
	if recCurrent >= e.current {
		e.current = recCurrent
		e.cur = e.keys[recCurrent]
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

// sweep evicts expired entries.
func (c *cache) sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for e := c.fifo.newer; e != &c.fifo && !now.Before(e.expires); e = c.fifo.newer {
		c.unlink(e)
	}
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
	for _, k := range e.keys {
		c.wipeLater(k)
	}
	e.keys, e.cur = nil, nil
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
