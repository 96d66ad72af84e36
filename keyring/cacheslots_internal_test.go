package keyring

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/rkms/rkms/secret"
)

// checkSlots verifies the cache's index and lists: every indexed id has a slot holding it, the
// LRU list holds exactly the indexed slots, the fifo and stale lists together hold them too
// (stale ones on the stale list only), free slots are empty, and nothing is lost or doubled.
func checkSlots(t *testing.T, c *cache) {
	t.Helper()
	if len(c.index) > c.max {
		t.Fatalf("%d ids cached, max %d", len(c.index), c.max)
	}
	for id, i := range c.index {
		if i < firstSlot || int(i) >= len(c.slots) || c.slots[i].id != id {
			t.Fatalf("index maps %q to slot %d, which holds %q", id, i, c.slots[i].id)
		}
		if c.slots[i].first.key == nil {
			t.Fatalf("cached id %q has no key", id)
		}
	}
	walk := func(head int32, next func(int32) int32, prev func(int32) int32) map[int32]bool {
		seen := map[int32]bool{}
		for i := next(head); i != head; i = next(i) {
			if seen[i] || len(seen) > len(c.slots) {
				t.Fatalf("list %d loops at slot %d", head, i)
			}
			if next(prev(i)) != i {
				t.Fatalf("list %d: slot %d's back link is broken", head, i)
			}
			seen[i] = true
		}
		return seen
	}
	lru := walk(lruHead, func(i int32) int32 { return c.slots[i].next }, func(i int32) int32 { return c.slots[i].prev })
	age := func(i int32) int32 { return c.slots[i].newer }
	older := func(i int32) int32 { return c.slots[i].older }
	fifo, stale := walk(fifoHead, age, older), walk(staleHead, age, older)
	if len(lru) != len(c.index) || len(fifo)+len(stale) != len(c.index) {
		t.Fatalf("%d ids, %d on the LRU list, %d fresh and %d stale", len(c.index), len(lru), len(fifo), len(stale))
	}
	for i := range lru {
		if !fifo[i] == !stale[i] || stale[i] != c.slots[i].stale {
			t.Fatalf("slot %d (stale %v) is on the fresh list %v and the stale list %v", i, c.slots[i].stale, fifo[i], stale[i])
		}
	}
	for _, i := range c.free {
		if lru[i] || c.slots[i].id != "" || c.slots[i].first.key != nil {
			t.Fatalf("free slot %d is in use", i)
		}
	}
	if n := firstSlot + len(c.index) + len(c.free); n != len(c.slots) {
		t.Fatalf("%d slots, %d sentinels + %d used + %d free", len(c.slots), firstSlot, len(c.index), len(c.free))
	}
}

// TestCacheSlotsRandomOps runs random puts, lookups, removes, sweeps and clock steps against small
// caches and checks the slot structure after each, and that every key that left the cache was
// wiped and every cached one was not.
func TestCacheSlotsRandomOps(t *testing.T) {
	for _, tc := range []struct {
		max      int
		maxStale time.Duration
	}{{1, 0}, {3, 0}, {8, 0}, {3, time.Minute}, {8, time.Minute}} {
		t.Run(fmt.Sprintf("max=%d,maxStale=%s", tc.max, tc.maxStale), func(t *testing.T) {
			now := time.Unix(1000, 0)
			c := newCache(tc.max, time.Minute, tc.maxStale, func() time.Time { return now }, 0)
			rng := rand.New(rand.NewPCG(1, uint64(tc.max)))
			var keys []*secret.Key
			for step := range 3000 {
				id := fmt.Sprintf("id-%d", rng.IntN(12))
				switch op := rng.IntN(10); {
				case op < 5:
					v := uint32(1 + rng.IntN(3))
					k := secret.New(make([]byte, 32))
					keys = append(keys, k)
					if got := c.put(c.generation(), id, v, v, 0, k, origin{region: "r"}); got == nil {
						t.Fatal("put returned no key")
					}
				case op < 7:
					c.current(id)
					c.version(id, uint32(1+rng.IntN(3)))
				case op == 7:
					c.remove(id)
				case op == 8:
					now = now.Add(time.Duration(rng.IntN(40)) * time.Second)
					c.sweep()
				default:
					c.staleKey(id, 1, true, nil, rng.IntN(2) == 0)
				}
				checkSlots(t, c)
				if step%500 == 499 {
					cached := map[*secret.Key]bool{}
					for _, i := range c.index {
						s := &c.slots[i]
						cached[s.first.key] = true
						for _, cv := range s.more {
							cached[cv.key] = true
						}
					}
					for _, k := range keys {
						wiped := errors.Is(k.Use(func([]byte) error { return nil }), secret.ErrWiped)
						if cached[k] == wiped {
							t.Fatalf("step %d: a key cached %v is wiped %v", step, cached[k], wiped)
						}
					}
				}
			}
			c.clear()
			checkSlots(t, c)
			if len(c.index) != 0 {
				t.Fatal("clear left ids cached")
			}
		})
	}
}
