package secret

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// holding reports which of keys hold derived values.
func holding(keys []*Key) []int {
	var out []int
	for i, k := range keys {
		if k.derived.Load() != nil {
			out = append(out, i)
		}
	}
	return out
}

// counter derives "v<first byte>" and counts derivations per first byte.
type counter struct {
	mu    sync.Mutex
	calls map[byte]int
}

func (c *counter) fn(b []byte) (any, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = map[byte]int{}
	}
	c.calls[b[0]]++
	return fmt.Sprintf("v%d", b[0]), nil
}

func (c *counter) n(b byte) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[b]
}

func TestLimiterBoundsKeysHoldingDerivedValues(t *testing.T) {
	tests := []struct {
		name    string
		limit   int
		keys    int
		pattern []int // indexes of the keys derived from, in order
		// want: keys that still hold values at the end, and derivations per key
		wantHolding []int
		wantCalls   map[int]int
	}{
		{"under the limit keeps everything", 4, 3, []int{0, 1, 2, 0, 1, 2}, []int{0, 1, 2}, map[int]int{0: 1, 1: 1, 2: 1}},
		{"cycling over more keys than the limit", 2, 4, []int{0, 1, 2, 3, 0}, []int{0, 3}, map[int]int{0: 2, 1: 1, 2: 1, 3: 1}},
		// 0 is used again after 1 and 2 arrive, so its mark saves it when 3 needs room.
		{"a key used again gets a second chance", 2, 4, []int{0, 1, 0, 2, 0, 3, 0}, []int{0, 3}, map[int]int{0: 1, 1: 1, 2: 1, 3: 1}},
		{"limit one", 1, 3, []int{0, 1, 0, 2}, []int{2}, map[int]int{0: 2, 1: 1, 2: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLimiter(tt.limit)
			keys := make([]*Key, tt.keys)
			for i := range keys {
				keys[i] = l.New([]byte{byte(i)})
			}
			var c counter
			for step, i := range tt.pattern {
				v, err := keys[i].Derive(tagA{}, c.fn)
				if err != nil || v != fmt.Sprintf("v%d", i) {
					t.Fatalf("step %d: Derive(key %d) = %v, %v", step, i, v, err)
				}
				if h := holding(keys); len(h) > tt.limit {
					t.Fatalf("step %d: keys %v hold derived values, limit %d", step, h, tt.limit)
				}
			}
			if got := holding(keys); fmt.Sprint(got) != fmt.Sprint(tt.wantHolding) {
				t.Errorf("holding derived values: %v, want %v", got, tt.wantHolding)
			}
			drops := 0
			for i := range keys {
				if got := c.n(byte(i)); got != tt.wantCalls[i] {
					t.Errorf("key %d derived %d times, want %d", i, got, tt.wantCalls[i])
				}
				drops += tt.wantCalls[i]
			}
			if want := uint64(max(0, drops-len(tt.wantHolding))); l.Dropped() != want {
				t.Errorf("Dropped() = %d, want %d", l.Dropped(), want)
			}
		})
	}
}

func TestLimiterCountsAKeyOnceForAllItsTags(t *testing.T) {
	l := NewLimiter(2)
	a, b := l.New([]byte{1}), l.New([]byte{2})
	var c counter
	for _, k := range []*Key{a, b} {
		for _, tag := range []any{tagA{}, tagB{}, tagN(3)} {
			if _, err := k.Derive(tag, c.fn); err != nil {
				t.Fatal(err)
			}
		}
	}
	if l.Dropped() != 0 || a.derived.Load() == nil || b.derived.Load() == nil {
		t.Fatalf("two keys with three tags each over a limit of 2 keys: dropped %d", l.Dropped())
	}
}

func TestLimiterWipedKeysFreeTheirSlot(t *testing.T) {
	l := NewLimiter(2)
	var c counter
	a, b, d := l.New([]byte{1}), l.New([]byte{2}), l.New([]byte{3})
	for _, k := range []*Key{a, b} {
		if _, err := k.Derive(tagA{}, c.fn); err != nil {
			t.Fatal(err)
		}
	}
	a.Wipe()
	if _, err := d.Derive(tagA{}, c.fn); err != nil {
		t.Fatal(err)
	}
	if l.Dropped() != 0 || b.derived.Load() == nil {
		t.Fatalf("a wiped key's slot was not reused: dropped %d, b holding %v", l.Dropped(), b.derived.Load() != nil)
	}
	if _, err := a.Derive(tagA{}, c.fn); err == nil {
		t.Fatal("Derive on a wiped key succeeded")
	}
}

func TestLimiterDeriveHitDoesNotAllocate(t *testing.T) {
	k := NewLimiter(4).New(make([]byte, 32))
	fn := func([]byte) (any, error) { return &struct{}{}, nil }
	if _, err := k.Derive(tagA{}, fn); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = k.Derive(tagA{}, fn) }); n != 0 {
		t.Fatalf("Derive on a memoized tag: %v allocations, want 0", n)
	}
}

func TestNewLimiterRejectsZero(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewLimiter(0) did not panic")
		}
	}()
	NewLimiter(0)
}

// TestLimiterConcurrent derives, wipes and re-derives from many goroutines over more keys than
// the limit (run with -race): every Derive returns its key's value or ErrWiped, and once
// quiet no more keys than the limit hold derived values.
func TestLimiterConcurrent(t *testing.T) {
	const limit, nkeys, workers, rounds = 8, 64, 8, 2000
	l := NewLimiter(limit)
	keys := make([]*Key, nkeys)
	for i := range keys {
		keys[i] = l.New([]byte{byte(i)})
	}
	var c counter
	var wrong atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				i := (r*7 + w*13) % nkeys
				if w == 0 && r%97 == 0 {
					keys[i].Wipe()
					continue
				}
				tag := any(tagA{})
				if r%3 == 0 {
					tag = tagB{}
				}
				v, err := keys[i].Derive(tag, c.fn)
				switch {
				case err == nil && v == fmt.Sprintf("v%d", i):
				case err != nil && keys[i].wiped.Load():
				default:
					wrong.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if wrong.Load() != 0 {
		t.Fatalf("%d Derive calls returned a wrong value or error", wrong.Load())
	}
	if h := holding(keys); len(h) > limit {
		t.Fatalf("%d keys hold derived values after the run, limit %d", len(h), limit)
	}
	for i, k := range keys {
		if k.wiped.Load() && k.derived.Load() != nil {
			t.Fatalf("wiped key %d holds derived values", i)
		}
	}
}

func BenchmarkLimiterDerive(b *testing.B) {
	for _, tc := range []struct {
		name        string
		limit, keys int
	}{
		{"hit", 1024, 1024},
		{"churn", 1024, 4096}, // most calls derive again
	} {
		b.Run(tc.name, func(b *testing.B) {
			l := NewLimiter(tc.limit)
			keys := make([]*Key, tc.keys)
			for i := range keys {
				keys[i] = l.New(make([]byte, 32))
			}
			fn := func([]byte) (any, error) { return 1, nil }
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := keys[i%len(keys)].Derive(tagA{}, fn); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
