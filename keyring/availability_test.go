package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rkms/rkms/keyring"
)

// openBreakers takes the regions named by down out (down or stalled) and asks k for new keys
// until each of their breakers is open, as they would be a few requests into an outage: a
// creation calls every usable region (one generates, the others wrap).
func openBreakers(t *testing.T, e *env, k *keyring.Keyring, down []int, stall bool) {
	t.Helper()
	for _, i := range down {
		if stall {
			e.fakes[i].Stall(true)
		} else {
			e.fakes[i].Down(true)
		}
	}
	for n := 0; n < 20; n++ {
		open := 0
		for _, i := range down {
			if k.RegionStatus()[i].Breaker == "open" {
				open++
			}
		}
		if open == len(down) {
			return
		}
		_, _ = k.Get(context.Background(), fmt.Sprintf("new-%d", n)) // created or not: either feeds the breakers
	}
	t.Fatalf("breakers not open after 20 creations: %+v", k.RegionStatus())
}

// TestCachedKeysServedWhileRegionsAreDown is RELIABILITY.md's first column: a cached key is
// served, with no KMS or store call, whatever the regions do. It covers one region down or
// stalled (the chaos run's phases), two of three down (below min_regions) and all three.
func TestCachedKeysServedWhileRegionsAreDown(t *testing.T) {
	for _, tc := range []struct {
		name  string
		down  []int
		stall bool
	}{
		{"one region down", []int{0}, false},
		{"one region stalled", []int{2}, true},
		{"two of three down, below min regions", []int{0, 1}, false},
		{"every region down", []int{0, 1, 2}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 3)
			k := e.keyring(t, keyring.Options{BreakerThreshold: 1, CallTimeout: 20 * time.Millisecond})
			want := map[string][]byte{}
			for _, id := range []string{"a", "b", "c"} {
				want[id] = keyBytes(t, mustGet(t, k, id))
			}
			if _, err := k.Rotate(context.Background(), "c"); err != nil {
				t.Fatal(err)
			}
			v2 := keyBytes(t, mustGet(t, k, "c"))
			openBreakers(t, e, k, tc.down, tc.stall)
			e.reset()
			reads := e.st.Calls().Get
			for range 3 {
				for id, key := range want {
					dk, err := k.Get(context.Background(), id)
					if err != nil {
						t.Fatalf("cached Get(%q) with regions %v out: %v", id, tc.down, err)
					}
					if id == "c" {
						key = v2
					}
					if !bytes.Equal(keyBytes(t, dk), key) {
						t.Fatalf("cached Get(%q) returned another key", id)
					}
				}
				dk, err := k.GetVersion(context.Background(), "c", 1)
				if err != nil || !bytes.Equal(keyBytes(t, dk), want["c"]) {
					t.Fatalf("cached GetVersion(c, 1) with regions %v out: %v", tc.down, err)
				}
			}
			if n := e.totalCalls(); n != 0 {
				t.Fatalf("%d KMS calls for cached keys, want 0", n)
			}
			if n := e.st.Calls().Get - reads; n != 0 {
				t.Fatalf("%d store reads for cached keys, want 0", n)
			}
		})
	}
}

// TestReadyNeedsMinRegions: /readyz follows kms.min_regions, the number of copies a new key
// needs, not merely "some region answers".
func TestReadyNeedsMinRegions(t *testing.T) {
	for _, tc := range []struct {
		name      string
		min       int // 0: the majority, 2 of 3
		down      []int
		wantReady bool
	}{
		{"all healthy", 0, nil, true},
		{"majority: one down", 0, []int{0}, true},
		{"majority: two down", 0, []int{0, 1}, false},
		{"min 1: two down", 1, []int{1, 2}, true},
		{"min 3: one down", 3, []int{2}, false},
		{"min 3: all healthy", 3, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 3)
			k := e.keyring(t, keyring.Options{MinRegions: tc.min, BreakerThreshold: 1})
			if err := k.Ready(context.Background()); err != nil {
				t.Fatalf("Ready before the outage: %v", err)
			}
			openBreakers(t, e, k, tc.down, false)
			err := k.Ready(context.Background())
			if tc.wantReady && err != nil {
				t.Fatalf("Ready with regions %v down, min %d: %v", tc.down, tc.min, err)
			}
			if !tc.wantReady && !errors.Is(err, keyring.ErrUnavailable) {
				t.Fatalf("Ready with regions %v down, min %d: %v, want ErrUnavailable", tc.down, tc.min, err)
			}
		})
	}
}

// TestNoStaleKeyOnceTheStoreSaysNotFound is crypto-shredding during an outage: a key deleted
// through another replica is never served again from this replica's stale cache once the store
// has answered that it is gone, even while every region is down and stale-if-error is on.
func TestNoStaleKeyOnceTheStoreSaysNotFound(t *testing.T) {
	for _, tc := range []struct {
		name   string
		outage func(e *env)
	}{
		{"regions up", func(*env) {}},
		{"every region down", func(e *env) { downAll(e, true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 3)
			k := e.keyring(t, keyring.Options{CacheTTL: time.Minute, MaxStale: time.Hour})
			mustGet(t, k, "k")
			if _, err := k.Rotate(context.Background(), "k"); err != nil {
				t.Fatal(err)
			}
			if _, err := k.GetVersion(context.Background(), "k", 1); err != nil {
				t.Fatal(err)
			}
			if err := e.keyring(t, keyring.Options{}).Delete(context.Background(), "k"); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(time.Minute + time.Second)
			k.SweepCache()
			tc.outage(e)
			for _, v := range []uint32{1, 2} {
				dk, err := k.GetVersion(context.Background(), "k", v)
				if err == nil {
					t.Fatalf("GetVersion(k, %d) served a deleted key (stale v%d)", v, dk.Version)
				}
				if !errors.Is(err, keyring.ErrNotFound) {
					t.Fatalf("GetVersion(k, %d) of a deleted key: %v, want ErrNotFound", v, err)
				}
			}
			if n := k.Stats().StaleServed; n != 0 {
				t.Fatalf("StaleServed = %d, want 0", n)
			}
		})
	}
}
