package keyring

import (
	"bytes"
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rkms/rkms/secret"
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
	mu sync.Mutex
	// The entries live in one slice and link to each other by index, and index maps ids to
	// them: 100,000 cached keys are then a few large objects for the garbage collector to
	// scan instead of 200,000 more small ones to chase pointers through on every cycle. With
	// an object per entry and a slice per entry's versions, a full collection of a keyring
	// holding 100,000 keys took 16 ms; with the slots, 5.3 ms.
	//
	// The LRU list links slots through prev/next, most recent first; the fifo list links them
	// through older/newer in fill order, which is also expiry order since the TTL is fixed;
	// the stale list links the entries past their TTL (kept for stale-if-error) through
	// older/newer, in fill order too.
	index map[string]int32
	slots []slot  // slots[lruHead], [fifoHead] and [staleHead] are the lists' sentinels
	free  []int32 // slots not in use

	max      int
	ttl      time.Duration
	maxStale time.Duration
	now      func() time.Time
	epoch    time.Time // instants are kept as durations since epoch (tick)
	gen      uint64    // bumped by remove; fills that started earlier are not cached
	disabled bool
	grace    time.Duration
	hits     atomic.Uint64
	misses   atomic.Uint64
}

// Sentinel slots of the three lists.
const (
	lruHead   = 0
	fifoHead  = 1
	staleHead = 2
	firstSlot = 3
)

// tick is an instant as the time since the cache's epoch (an integer, where a time.Time would
// hold a pointer).
type tick time.Duration

func (c *cache) tick() tick { return tick(c.now().Sub(c.epoch)) }

// slot is one cached id. A free slot has no id.
type slot struct {
	id      string
	expires tick
	retryAt tick // stale: serve without a refresh attempt until then (a refresh just failed)
	current uint32
	min     uint32      // the record's min decrypt version: older versions are refused
	stale   bool        // past its TTL: hits miss, kept for stale-if-error only
	cur     *secret.Key // the key of version current, or nil if it was not opened
	// Every version opened so far: the first inline, others (after a rotation) in more.
	first cachedVersion
	more  []cachedVersion

	prev, next, older, newer int32
}

// cachedVersion is one opened version of an entry. key is nil in an unused cachedVersion.
type cachedVersion struct {
	v   uint32
	key *secret.Key
	org *origin // maxStale > 0 only
}

// version returns the cached version v, or nil.
func (s *slot) version(v uint32) *cachedVersion {
	if s.first.key != nil && s.first.v == v {
		return &s.first
	}
	for i := range s.more {
		if s.more[i].v == v {
			return &s.more[i]
		}
	}
	return nil
}

// key returns the key of the cached version v, or nil.
func (s *slot) key(v uint32) *secret.Key {
	if cv := s.version(v); cv != nil {
		return cv.key
	}
	return nil
}

func (s *slot) addVersion(cv cachedVersion) {
	if s.first.key == nil {
		s.first = cv
		return
	}
	s.more = append(s.more, cv)
}

// origin identifies the wrapped copy a cached version was opened from: its region and a hash
// of its ciphertext. A record deleted and re-created holds other copies under the same version
// number, so a stale key is served only while the record still holds its origin.
type origin struct {
	region string
	sum    [sha256.Size]byte
}

// branchOrigin is the origin region of a branch-wrapped version (no region can have this name:
// a NUL is in no region name the keyring accepts from a record it wrote).
const branchOrigin = "\x00branch"

// originOf returns the origin of version ver's copy in region (its branch wrap, for a
// branch-wrapped version).
func originOf(ver store.Version, region string) origin {
	if ver.IsBranchWrapped() {
		return origin{region: branchOrigin, sum: sha256.Sum256(ver.Branch.Blob)}
	}
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
	if o.region == branchOrigin {
		sum := sha256.Sum256(ver.Branch.Blob)
		return ver.IsBranchWrapped() && bytes.Equal(sum[:], o.sum[:])
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
	c := &cache{index: make(map[string]int32), slots: make([]slot, firstSlot, firstSlot+16),
		max: maxKeys, ttl: ttl, maxStale: max(maxStale, 0), now: now, epoch: now(), grace: grace}
	c.disabled = maxKeys <= 0 || ttl <= 0
	for h := range int32(firstSlot) {
		c.slots[h].prev, c.slots[h].next, c.slots[h].older, c.slots[h].newer = h, h, h, h
	}
	return c
}

// lookup returns the slot of id, or 0 (no slot is 0: it is the LRU sentinel). c.mu must be held.
func (c *cache) lookup(id string) int32 { return c.index[id] }

// canonical returns the cache's own copy of id when id is cached, else id: a structure that
// keeps an id as long as the cache does (the seal budgets) then holds no string of its own.
// With 100,000 keys, 100,000 fewer objects for the garbage collector to mark on every cycle:
// about 20 % of a cycle's mark work (BenchmarkGCWarmKeyring).
func (c *cache) canonical(id string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := c.lookup(id); i != 0 {
		return c.slots[i].id
	}
	return id
}

// current returns the cached current version of id.
func (c *cache) current(id string) (DataKey, bool) {
	c.mu.Lock()
	i := c.lookup(id)
	if i == 0 || c.slots[i].cur == nil || c.slots[i].stale {
		c.mu.Unlock()
		c.misses.Add(1)
		return DataKey{}, false
	}
	c.touch(i)
	dk := DataKey{ID: id, Version: c.slots[i].current, Secret: c.slots[i].cur}
	c.mu.Unlock()
	c.hits.Add(1)
	return dk, true
}

// peekCurrent returns the version number of id's cached current key, without counting a hit
// or a miss and without touching the LRU order.
func (c *cache) peekCurrent(id string) (uint32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.lookup(id)
	if i == 0 || c.slots[i].cur == nil {
		return 0, false
	}
	return c.slots[i].current, true
}

// version returns the cached version v of id.
func (c *cache) version(id string, v uint32) (DataKey, bool) {
	c.mu.Lock()
	i := c.lookup(id)
	var key *secret.Key
	if i != 0 && !c.slots[i].stale && v >= c.slots[i].min {
		key = c.slots[i].key(v)
	}
	if key == nil {
		c.mu.Unlock()
		c.misses.Add(1)
		return DataKey{}, false
	}
	c.touch(i)
	c.mu.Unlock()
	c.hits.Add(1)
	return DataKey{ID: id, Version: v, Secret: key}, true
}

// live reports whether slot i is unexpired, removing it if not. c.mu must be held.
func (c *cache) live(i int32) bool {
	if c.tick() < c.slots[i].expires {
		return true
	}
	c.unlink(i)
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

// put caches version v of id, opened from a record whose current version is recCurrent (0: the
// key must not become the entry's current one) and min decrypt version is recMin, and returns the key to hand out: the one already cached for (id, v) if any (key is then wiped),
// else key. If the cache is disabled or a remove happened since gen, key is returned uncached
// and wiped after the grace period.
// org is the copy the key was opened from (kept only when stale-if-error is on).
func (c *cache) put(gen uint64, id string, v, recCurrent, recMin uint32, key *secret.Key, org origin) *secret.Key {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.disabled || gen != c.gen {
		c.wipeLater(key)
		return key
	}
	i := c.lookup(id)
	if i != 0 && !c.live(i) {
		i = 0
	}
	if i == 0 {
		i = c.alloc()
		c.slots[i] = slot{id: id, expires: c.tick() + tick(c.ttl)}
		c.index[id] = i
		c.pushFront(i)
		c.pushNewest(i)
		for len(c.index) > c.max {
			c.unlink(c.slots[lruHead].prev)
		}
	} else {
		c.touch(i)
	}
	s := &c.slots[i] // no slot is allocated below: the pointer stays valid
	s.min = max(s.min, recMin)
	if old := s.key(v); old != nil {
		if old != key {
			key.Wipe() // never handed out
		}
		key = old
	} else {
		cv := cachedVersion{v: v, key: key}
		if c.maxStale > 0 {
			cv.org = &org
		}
		s.addVersion(cv)
	}
	if recCurrent >= s.current {
		s.current = recCurrent
		s.cur = s.key(recCurrent)
	}
	return key
}

// alloc returns a free slot, growing the slice if there is none. c.mu must be held.
func (c *cache) alloc() int32 {
	if n := len(c.free); n > 0 {
		i := c.free[n-1]
		c.free = c.free[:n-1]
		return i
	}
	c.slots = append(c.slots, slot{})
	return int32(len(c.slots) - 1)
}

// remove evicts id (Delete) and invalidates fills in progress.
func (c *cache) remove(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if i := c.lookup(id); i != 0 {
		c.unlink(i)
	}
}

// sweep evicts expired entries, or with maxStale > 0 marks them stale, and evicts stale entries
// older than TTL+maxStale.
func (c *cache) sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.tick()
	for i := c.slots[fifoHead].newer; i != fifoHead && now >= c.slots[i].expires; i = c.slots[fifoHead].newer {
		if c.maxStale <= 0 {
			c.unlink(i)
			continue
		}
		c.unlinkAge(i)
		c.slots[i].stale = true
		c.pushAge(staleHead, i)
	}
	for i := c.slots[staleHead].newer; i != staleHead && now >= c.slots[i].expires+tick(c.maxStale); i = c.slots[staleHead].newer {
		c.unlink(i)
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
	i := c.lookup(id)
	if i == 0 {
		return DataKey{}, false
	}
	s := &c.slots[i]
	now := c.tick()
	if now >= s.expires+tick(c.maxStale) || (backoff && (!s.stale || now >= s.retryAt)) {
		return DataKey{}, false
	}
	if current {
		v = s.current
	}
	cv := s.version(v)
	if v < s.min || (rec != nil && v < rec.MinDecryptVersion) {
		return DataKey{}, false
	}
	if cv == nil || (rec != nil && (cv.org == nil || !cv.org.heldBy(rec, v))) {
		return DataKey{}, false
	}
	if !backoff {
		s.retryAt = now + tick(staleRetry)
	}
	return DataKey{ID: id, Version: v, Secret: cv.key}, true
}

// recent returns up to n cached ids, most recently used first.
func (c *cache) recent(n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, min(n, len(c.index)))
	for i := c.slots[lruHead].next; i != lruHead && len(out) < n; i = c.slots[i].next {
		out = append(out, c.slots[i].id)
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
	for c.slots[lruHead].next != lruHead {
		c.unlink(c.slots[lruHead].next)
	}
	c.grace = grace
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.index)
}

// unlink removes slot i from the index and the lists, schedules its keys' wipe and frees it.
// c.mu must be held.
func (c *cache) unlink(i int32) {
	s := &c.slots[i]
	delete(c.index, s.id)
	c.slots[s.prev].next, c.slots[s.next].prev = s.next, s.prev
	c.unlinkAge(i)
	if s.first.key != nil {
		c.wipeLater(s.first.key)
	}
	for _, cv := range s.more {
		c.wipeLater(cv.key)
	}
	*s = slot{}
	c.free = append(c.free, i)
}

// unlinkAge takes slot i out of the fifo or stale list.
func (c *cache) unlinkAge(i int32) {
	s := &c.slots[i]
	c.slots[s.older].newer, c.slots[s.newer].older = s.newer, s.older
}

func (c *cache) touch(i int32) {
	if c.slots[lruHead].next == i {
		return
	}
	s := &c.slots[i]
	c.slots[s.prev].next, c.slots[s.next].prev = s.next, s.prev
	c.pushFront(i)
}

func (c *cache) pushFront(i int32) {
	head := &c.slots[lruHead]
	c.slots[i].prev, c.slots[i].next = lruHead, head.next
	c.slots[head.next].prev = i
	head.next = i
}

func (c *cache) pushNewest(i int32) { c.pushAge(fifoHead, i) }

// pushAge appends slot i to the newest end of the list whose sentinel is h.
func (c *cache) pushAge(h, i int32) {
	c.slots[i].newer, c.slots[i].older = h, c.slots[h].older
	c.slots[c.slots[h].older].newer = i
	c.slots[h].older = i
}

// wipeLater wipes k once the grace period has passed (at once if it is zero).
func (c *cache) wipeLater(k *secret.Key) {
	if c.grace <= 0 {
		k.Wipe()
		return
	}
	time.AfterFunc(c.grace, k.Wipe)
}
