package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/rkms/rkms/keyring"
)

// TestMaxStale covers stale-if-error: which outages let a cached key outlive its TTL, and which
// changes of the record forbid it.
func TestMaxStale(t *testing.T) {
	const ttl = time.Minute
	cases := []struct {
		name     string
		maxStale time.Duration
		after    time.Duration // clock advance past the fetch, before the outage
		// outage breaks the key service; other, if set, changes the record through a second
		// keyring first (another replica).
		other     func(t *testing.T, e *env, other *keyring.Keyring)
		outage    func(e *env)
		wantStale bool
	}{
		{name: "store down", maxStale: time.Hour, after: ttl + time.Second,
			outage: func(e *env) { e.st.SetUnavailable(true) }, wantStale: true},
		{name: "every region down", maxStale: time.Hour, after: ttl + time.Second,
			outage: func(e *env) { downAll(e, true) }, wantStale: true},
		{name: "store down, just inside max stale", maxStale: time.Hour, after: ttl + time.Hour - time.Second,
			outage: func(e *env) { e.st.SetUnavailable(true) }, wantStale: true},
		{name: "store down, past max stale", maxStale: time.Hour, after: ttl + time.Hour,
			outage: func(e *env) { e.st.SetUnavailable(true) }},
		{name: "disabled", maxStale: 0, after: ttl + time.Second,
			outage: func(e *env) { e.st.SetUnavailable(true) }},
		{name: "rotated elsewhere, regions down", maxStale: time.Hour, after: ttl + time.Second,
			other: func(t *testing.T, e *env, o *keyring.Keyring) {
				if _, err := o.Rotate(context.Background(), "k"); err != nil {
					t.Fatal(err)
				}
			},
			outage: func(e *env) { downAll(e, true) }, wantStale: true},
		{name: "deleted elsewhere, regions down", maxStale: time.Hour, after: ttl + time.Second,
			other: func(t *testing.T, e *env, o *keyring.Keyring) {
				if err := o.Delete(context.Background(), "k"); err != nil {
					t.Fatal(err)
				}
			},
			outage: func(e *env) { downAll(e, true) }},
		{name: "deleted and re-created elsewhere, regions down", maxStale: time.Hour, after: ttl + time.Second,
			other: func(t *testing.T, e *env, o *keyring.Keyring) {
				if err := o.Delete(context.Background(), "k"); err != nil {
					t.Fatal(err)
				}
				mustRecreate(t, o, "k")
			},
			outage: func(e *env) { downAll(e, true) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 3)
			k := e.keyring(t, keyring.Options{CacheTTL: ttl, MaxStale: tc.maxStale})
			want := keyBytes(t, mustGet(t, k, "k"))
			if tc.other != nil {
				tc.other(t, e, e.keyring(t, keyring.Options{}))
			}
			e.clock.Advance(tc.after)
			k.SweepCache()
			tc.outage(e)
			dk, err := k.Get(context.Background(), "k")
			if !tc.wantStale {
				if err == nil {
					t.Fatalf("key served (v%d) although it must not be", dk.Version)
				}
				if k.Stats().StaleServed != 0 {
					t.Fatal("stale counter moved")
				}
				return
			}
			if err != nil {
				t.Fatalf("stale key not served: %v", err)
			}
			if got := keyBytes(t, dk); !bytes.Equal(got, want) || dk.Version != 1 {
				t.Fatalf("stale Get returned another key (v%d)", dk.Version)
			}
			if k.Stats().StaleServed != 1 {
				t.Fatalf("StaleServed = %d, want 1", k.Stats().StaleServed)
			}
		})
	}
}

func downAll(e *env, down bool) {
	for _, f := range e.fakes {
		f.Down(down)
	}
}

// TestStaleRefreshBackoffAndRecovery: during an outage a stale key costs one refresh attempt
// per second, not one per request; once the store answers, the next attempt refreshes it.
func TestStaleRefreshBackoffAndRecovery(t *testing.T) {
	e := newEnv(t, 3)
	k := e.keyring(t, keyring.Options{CacheTTL: time.Minute, MaxStale: time.Hour})
	want := keyBytes(t, mustGet(t, k, "k"))
	e.clock.Advance(time.Minute)
	k.SweepCache()
	e.st.SetUnavailable(true)
	reads := e.st.Calls().Get
	for range 5 {
		if got := keyBytes(t, mustGet(t, k, "k")); !bytes.Equal(got, want) {
			t.Fatal("stale key changed")
		}
	}
	if n := e.st.Calls().Get - reads; n != 1 {
		t.Fatalf("%d store reads for 5 stale Gets within a second, want 1", n)
	}
	e.st.SetUnavailable(false)
	mustGet(t, k, "k") // still inside the retry interval: stale, no read
	if n := e.st.Calls().Get - reads; n != 1 {
		t.Fatalf("%d store reads inside the retry interval, want 1", n)
	}
	e.clock.Advance(time.Second)
	mustGet(t, k, "k") // refreshed
	if n := e.st.Calls().Get - reads; n != 2 {
		t.Fatalf("%d store reads after the retry interval, want 2", n)
	}
	hits := k.Stats().CacheHits
	mustGet(t, k, "k")
	if k.Stats().CacheHits != hits+1 || e.st.Calls().Get-reads != 2 {
		t.Fatal("refreshed key is not a fresh cache hit")
	}
	if got := k.Stats().StaleServed; got != 6 {
		t.Fatalf("StaleServed = %d, want 6", got)
	}
}

// TestStaleVersion: GetVersion serves an older version stale too, and a version never opened
// is not invented.
func TestStaleVersion(t *testing.T) {
	e := newEnv(t, 3)
	k := e.keyring(t, keyring.Options{CacheTTL: time.Minute, MaxStale: time.Hour})
	v1 := keyBytes(t, mustGet(t, k, "k"))
	if _, err := k.Rotate(context.Background(), "k"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	k.SweepCache()
	e.st.SetUnavailable(true)
	dk, err := k.GetVersion(context.Background(), "k", 1)
	if err != nil || !bytes.Equal(keyBytes(t, dk), v1) {
		t.Fatalf("stale version 1: %v", err)
	}
	if cur := mustGet(t, k, "k"); cur.Version != 2 {
		t.Fatalf("stale current is v%d, want 2", cur.Version)
	}
	if _, err := k.GetVersion(context.Background(), "k", 3); !errors.Is(err, keyring.ErrUnavailable) {
		t.Fatalf("unknown version during the outage: %v", err)
	}
	// A stale entry is no hit: it never extends the TTL by itself.
	if _, err := k.Get(context.Background(), "other"); !errors.Is(err, keyring.ErrUnavailable) {
		t.Fatalf("uncached id during the outage: %v", err)
	}
}

// TestStaleEntriesExpire: past TTL+MaxStale the sweep drops the entry and wipes its key.
func TestStaleEntriesExpire(t *testing.T) {
	e := newEnv(t, 1)
	k := e.keyring(t, keyring.Options{CacheTTL: time.Minute, MaxStale: 10 * time.Minute})
	mustGet(t, k, "k")
	e.clock.Advance(time.Minute)
	k.SweepCache()
	if n := k.Stats().CacheEntries; n != 1 {
		t.Fatalf("%d entries after the TTL, want the stale one", n)
	}
	e.clock.Advance(10 * time.Minute)
	k.SweepCache()
	if n := k.Stats().CacheEntries; n != 0 {
		t.Fatalf("%d entries after TTL+MaxStale, want 0", n)
	}
}

func TestRecentIDs(t *testing.T) {
	e := newEnv(t, 1)
	k := e.keyring(t, keyring.Options{})
	for _, id := range []string{"a", "b", "c", "a"} {
		mustGet(t, k, id)
	}
	for _, tc := range []struct {
		n    int
		want []string
	}{{0, nil}, {2, []string{"a", "c"}}, {10, []string{"a", "c", "b"}}} {
		if got := k.RecentIDs(tc.n); !slices.Equal(got, tc.want) {
			t.Errorf("RecentIDs(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}

// TestWarm: a fresh keyring (a restarted replica) loads the keys another one used, without
// creating any, and then serves them from its cache.
func TestWarm(t *testing.T) {
	e := newEnv(t, 3)
	first := e.keyring(t, keyring.Options{})
	want := map[string][]byte{}
	for _, id := range []string{"a", "b", "c"} {
		want[id] = keyBytes(t, mustGet(t, first, id))
	}
	ids := append(first.RecentIDs(10), "gone", "bad id")
	k := e.keyring(t, keyring.Options{})
	res, err := k.Warm(context.Background(), ids)
	if err == nil || !errors.Is(err, keyring.ErrInvalidID) {
		t.Fatalf("Warm error %v, want the invalid id reported", err)
	}
	if res != (keyring.WarmResult{Loaded: 3, Missing: 1, Failed: 1}) {
		t.Fatalf("Warm = %+v", res)
	}
	if n := e.st.Len(); n != 3 {
		t.Fatalf("%d records after warm-up, want 3 (nothing created)", n)
	}
	reads := e.st.Calls().Get
	for id, w := range want {
		if got := keyBytes(t, mustGet(t, k, id)); !bytes.Equal(got, w) {
			t.Fatalf("warmed key %s differs", id)
		}
	}
	if e.st.Calls().Get != reads {
		t.Fatal("warmed keys were read from the store again")
	}
	// A warm-up of cached ids costs nothing; a cancelled one says so.
	if res, err := k.Warm(context.Background(), []string{"a"}); err != nil || res.Loaded != 1 || e.st.Calls().Get != reads {
		t.Fatalf("re-warm: %+v %v", res, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.keyring(t, keyring.Options{}).Warm(ctx, []string{"a", "b"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled warm-up: %v", err)
	}
}
