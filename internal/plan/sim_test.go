package plan

import (
	"container/list"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// simCache is one replica's cache of one kind (plaintext keys, or wrapped records) as keyring/doc.go
// describes it: an entry lives ttl from its fetch (hits do not extend it), the sweeper removes
// expired entries, and at most max entries are held, the least recently used evicted first.
type simCache struct {
	ttl   float64
	max   int // negative: unbounded
	lru   *list.List
	items map[int]*list.Element
	fifo  []simFetch // fetches in time order, for the sweeper
}

type simFetch struct {
	id int
	at float64
}

type simEntry struct {
	id int
	at float64
}

func newSimCache(ttl float64, max int) *simCache {
	return &simCache{ttl: ttl, max: max, lru: list.New(), items: map[int]*list.Element{}}
}

// sweep drops the entries expired at now (the keyring's sweeper, without its interval).
func (c *simCache) sweep(now float64) {
	for len(c.fifo) > 0 && c.fifo[0].at+c.ttl <= now {
		f := c.fifo[0]
		c.fifo = c.fifo[1:]
		if e, ok := c.items[f.id]; ok && e.Value.(*simEntry).at == f.at {
			c.lru.Remove(e)
			delete(c.items, f.id)
		}
	}
}

// use reports whether id is cached at now (a hit, which refreshes its LRU position); on a miss
// it fetches id, evicting the least recently used entry when full.
func (c *simCache) use(id int, now float64) (hit bool) {
	c.sweep(now)
	if e, ok := c.items[id]; ok {
		c.lru.MoveToFront(e)
		return true
	}
	c.items[id] = c.lru.PushFront(&simEntry{id: id, at: now})
	c.fifo = append(c.fifo, simFetch{id: id, at: now})
	if c.max >= 0 && c.lru.Len() > c.max {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.items, old.Value.(*simEntry).id)
	}
	return false
}

// simulate runs Poisson arrivals at p.Rate over p.Tenants (popularity p.Dist), each sent to a
// replica chosen uniformly at random, through each replica's caches, and returns the KMS and
// store calls per replica and second counted after warm seconds, over measure seconds.
func simulate(p Params, warm, measure float64, seed uint64) (kms, store float64) {
	p = p.withDefaults()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	cum := make([]float64, p.Tenants) // cumulative popularity, for sampling
	acc := 0.0
	for i := range cum {
		w := 1.0
		if p.Dist.Kind == Zipf {
			w = math.Pow(float64(i+1), -p.Dist.S)
		}
		acc += w
		cum[i] = acc
	}
	t, w := p.TTL.Seconds(), p.WrappedTTL.Seconds()
	type replica struct {
		plain, wrapped, branch *simCache
	}
	rs := make([]replica, p.Replicas)
	for i := range rs {
		rs[i] = replica{newSimCache(t, p.MaxKeys), newSimCache(w, p.WrappedMaxKeys), newSimCache(t, -1)}
	}
	var nKMS, nStore int
	for now := 0.0; now < warm+measure; now += rng.ExpFloat64() / p.Rate {
		tenant := sort.SearchFloat64s(cum, rng.Float64()*acc)
		if tenant >= p.Tenants {
			tenant = p.Tenants - 1
		}
		r := &rs[rng.IntN(p.Replicas)]
		if r.plain.use(tenant, now) {
			continue
		}
		counted := now >= warm
		count := func(k, s int) {
			if counted {
				nKMS += k
				nStore += s
			}
		}
		if p.Mode == Direct {
			count(1, 1)
			continue
		}
		if !r.branch.use(tenant%p.BranchKeys, now) {
			count(1, 1) // the branch record and its unwrap
		}
		if !r.wrapped.use(tenant, now) {
			count(0, 1)
		}
	}
	d := measure * float64(p.Replicas)
	return float64(nKMS) / d, float64(nStore) / d
}

// TestPlannerAgainstSimulation: the planner's per-replica KMS and store rates are within 10 % of
// a discrete-event simulation of the cache, for uniform and Zipf traffic, light and heavy, with
// and without the LRU bound, in both modes.
func TestPlannerAgainstSimulation(t *testing.T) {
	zipf := func(s float64) Dist { return Dist{Kind: Zipf, S: s} }
	for _, tc := range []struct {
		name string
		p    Params
	}{
		{"uniform light", Params{Tenants: 1000, Replicas: 4, Rate: 200, TTL: 10 * time.Second}},
		{"uniform heavy", Params{Tenants: 1000, Replicas: 2, Rate: 2000, TTL: 10 * time.Second}},
		{"uniform sparse", Params{Tenants: 5000, Replicas: 5, Rate: 50, TTL: 20 * time.Second}},
		{"zipf 1.1", Params{Tenants: 10000, Replicas: 4, Rate: 500, TTL: 30 * time.Second, Dist: zipf(1.1)}},
		{"zipf 0.8", Params{Tenants: 5000, Replicas: 3, Rate: 300, TTL: 20 * time.Second, Dist: zipf(0.8)}},
		{"uniform lru", Params{Tenants: 5000, Replicas: 2, Rate: 1000, TTL: 30 * time.Second, MaxKeys: 1000}},
		{"uniform lru partial", Params{Tenants: 3000, Replicas: 2, Rate: 100, TTL: time.Minute, MaxKeys: 1000}},
		{"zipf 1.0 lru", Params{Tenants: 20000, Replicas: 2, Rate: 2000, TTL: 30 * time.Second, MaxKeys: 2000, Dist: zipf(1)}},
		{"hierarchical uniform", Params{Tenants: 2000, Replicas: 2, Rate: 400, TTL: 10 * time.Second, Mode: Hierarchical, BranchKeys: 4, WrappedTTL: 40 * time.Second}},
		{"hierarchical zipf 1.1", Params{Tenants: 5000, Replicas: 3, Rate: 300, TTL: 10 * time.Second, Mode: Hierarchical, BranchKeys: 2, WrappedTTL: time.Minute, Dist: zipf(1.1)}},
		{"hierarchical wrapped below ttl", Params{Tenants: 1000, Replicas: 2, Rate: 100, TTL: 20 * time.Second, Mode: Hierarchical, WrappedTTL: 10 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Compute(tc.p)
			if err != nil {
				t.Fatal(err)
			}
			p := r.Params
			long := math.Max(p.TTL.Seconds(), p.WrappedTTL.Seconds())
			if p.Mode == Direct {
				long = p.TTL.Seconds()
			}
			kms, store := simulate(tc.p, 3*long, 10*long+20*p.TTL.Seconds(), 1)
			kmsErr, storeErr := kms/r.KMSPerReplica-1, store/r.StorePerReplica-1
			t.Logf("%-30s KMS/s per replica: plan %.4g sim %.4g (%+.1f %%); store/s: plan %.4g sim %.4g (%+.1f %%); lru bound %v",
				tc.name, r.KMSPerReplica, kms, 100*kmsErr, r.StorePerReplica, store, 100*storeErr, r.LRUBound)
			if math.Abs(kmsErr) > 0.10 || math.Abs(storeErr) > 0.10 {
				t.Errorf("planner off by more than 10 %%: KMS %+.1f %%, store %+.1f %%", 100*kmsErr, 100*storeErr)
			}
		})
	}
}
