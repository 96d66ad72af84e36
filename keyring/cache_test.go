package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/secret"
)

func TestCacheTTL(t *testing.T) {
	e := newEnv(t, 1)
	k := e.keyring(t, keyring.Options{CacheTTL: time.Minute})
	dk := mustGet(t, k, "k")
	want := keyBytes(t, dk)
	e.clock.Advance(59 * time.Second)
	reads := e.st.Calls().Get
	mustGet(t, k, "k") // hit; hits do not extend the TTL
	k.SweepCache()
	if k.Stats().CacheEntries != 1 {
		t.Fatal("entry swept before its TTL")
	}
	e.clock.Advance(time.Second)
	k.SweepCache()
	if err := dk.Secret.Use(func([]byte) error { return nil }); !errors.Is(err, secret.ErrWiped) {
		t.Fatalf("expired key not wiped: %v", err)
	}
	if k.Stats().CacheEntries != 0 {
		t.Fatal("expired entry still cached")
	}
	got := keyBytes(t, mustGet(t, k, "k"))
	if !bytes.Equal(got, want) || e.st.Calls().Get != reads+1 {
		t.Fatal("expired key was not re-read from the store")
	}
}

func TestBackgroundSweepExpiresKeys(t *testing.T) {
	e := newEnv(t, 1)
	k, err := keyring.New(e.st, e.regions(), keyring.Options{CacheTTL: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	k.SetWipeGrace(0)
	dk := mustGet(t, k, "k")
	deadline := time.Now().Add(5 * time.Second)
	for dk.Secret.Use(func([]byte) error { return nil }) == nil || k.Stats().CacheEntries != 0 {
		if time.Now().After(deadline) {
			t.Fatal("expired key neither evicted nor wiped")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCacheBoundEvictsLeastRecentlyUsed(t *testing.T) {
	e := newEnv(t, 1)
	k := e.keyring(t, keyring.Options{CacheMaxKeys: 2})
	a := mustGet(t, k, "a")
	b := mustGet(t, k, "b")
	mustGet(t, k, "a") // a is now more recent than b
	mustGet(t, k, "c") // evicts b
	if k.Stats().CacheEntries != 2 {
		t.Fatalf("%d entries, want 2", k.Stats().CacheEntries)
	}
	if err := b.Secret.Use(func([]byte) error { return nil }); !errors.Is(err, secret.ErrWiped) {
		t.Fatal("evicted key b not wiped")
	}
	if err := a.Secret.Use(func([]byte) error { return nil }); err != nil {
		t.Fatalf("key a wiped: %v", err)
	}
}

func TestEvictedKeyStaysUsableForTheGracePeriod(t *testing.T) {
	e := newEnv(t, 1)
	k := e.keyring(t, keyring.Options{CacheMaxKeys: 1})
	k.SetWipeGrace(50 * time.Millisecond)
	a := mustGet(t, k, "a")
	mustGet(t, k, "b") // evicts a
	if err := a.Secret.Use(func([]byte) error { return nil }); err != nil {
		t.Fatalf("key wiped before the grace period: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for a.Secret.Use(func([]byte) error { return nil }) == nil {
		if time.Now().After(deadline) {
			t.Fatal("evicted key never wiped")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCacheDisabled(t *testing.T) {
	tests := []struct {
		name string
		opts keyring.Options
	}{
		{"negative ttl", keyring.Options{CacheTTL: -1}},
		{"negative size", keyring.Options{CacheMaxKeys: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 1)
			k := e.keyring(t, tt.opts)
			k.SetWipeGrace(time.Minute) // uncached keys are still wiped, after the grace period
			want := keyBytes(t, mustGet(t, k, "k"))
			e.reset()
			if got := keyBytes(t, mustGet(t, k, "k")); !bytes.Equal(got, want) {
				t.Fatal("different key")
			}
			if e.totalCalls() != 1 || k.Stats().CacheEntries != 0 {
				t.Fatal("disabled cache served a key")
			}
		})
	}
}

func TestCloseWipesAndRefuses(t *testing.T) {
	e := newEnv(t, 1)
	k := e.keyring(t, keyring.Options{})
	dk := mustGet(t, k, "k")
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if err := dk.Secret.Use(func([]byte) error { return nil }); !errors.Is(err, secret.ErrWiped) {
		t.Fatal("Close did not wipe cached keys")
	}
	if _, err := k.Get(context.Background(), "k"); !errors.Is(err, keyring.ErrClosed) || !errors.Is(err, keyring.ErrUnavailable) {
		t.Fatalf("Get after Close: %v", err)
	}
	if err := k.Close(); err != nil {
		t.Fatal("second Close failed")
	}
}

func TestNewRejectsBadConfiguration(t *testing.T) {
	e := newEnv(t, 2)
	r := e.regions()
	tests := []struct {
		name    string
		st      keyring.Store
		regions []keyring.Region
		opts    keyring.Options
	}{
		{"nil store", nil, r, keyring.Options{}},
		{"no regions", e.st, nil, keyring.Options{}},
		{"nil region", e.st, []keyring.Region{r[0], nil}, keyring.Options{}},
		{"repeated region", e.st, []keyring.Region{r[0], r[0]}, keyring.Options{}},
		{"min regions too high", e.st, r, keyring.Options{MinRegions: 3}},
		{"min regions negative", e.st, r, keyring.Options{MinRegions: -1}},
		{"negative timeout", e.st, r, keyring.Options{CallTimeout: -time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if k, err := keyring.New(tt.st, tt.regions, tt.opts); err == nil {
				k.Close()
				t.Fatal("New accepted a bad configuration")
			}
		})
	}
}

func TestErrorsCarryNoKeyMaterial(t *testing.T) {
	e := newEnv(t, 3)
	k := e.keyring(t, keyring.Options{})
	dk := mustGet(t, k, "k")
	key := keyBytes(t, dk)
	blob := mustRecord(t, e.st, "k").Versions[0].Wrapped["r1"].Blob
	k2 := e.keyring(t, keyring.Options{})
	for _, f := range e.fakes {
		f.Down(true)
	}
	_, err := k2.Get(context.Background(), "k")
	if !errors.Is(err, keyring.ErrUnavailable) {
		// Not a panic on a nil error: that would hide every other failure in the package.
		t.Fatalf("Get with every region down: %v, want ErrUnavailable (an error to inspect)", err)
	}
	msg := err.Error()
	for _, s := range []string{string(key), fmt.Sprintf("%x", key), fmt.Sprintf("%x", blob), string(blob)} {
		if bytes.Contains([]byte(msg), []byte(s)) {
			t.Fatalf("error %q contains key material", msg)
		}
	}
	if got := fmt.Sprintf("%v %+v", dk, dk); bytes.Contains([]byte(got), []byte(fmt.Sprintf("%x", key))) {
		t.Fatal("formatting a DataKey printed the key")
	}
}

type derivedTag struct{}

// TestCacheMaxDerivedBoundsDerivedState checks that the keys the keyring hands out share one
// bound on derived state (Options.CacheMaxDerived), that keys over it derive again instead of
// failing, and that the bound can be lifted.
func TestCacheMaxDerivedBoundsDerivedState(t *testing.T) {
	tests := []struct {
		name        string
		maxDerived  int
		wantDropped uint64
		wantCalls   int
	}{
		// a, b, c, a: c needs room and a (admitted first, not used since) gives way; a derives again.
		{"bounded", 2, 2, 4},
		{"unbounded", -1, 0, 3},
		{"default holds these three", 0, 0, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 1)
			k := e.keyring(t, keyring.Options{CacheMaxDerived: tt.maxDerived})
			calls := 0
			for _, id := range []string{"a", "b", "c", "a"} {
				dk := mustGet(t, k, id)
				want := keyBytes(t, dk)
				v, err := dk.Secret.Derive(derivedTag{}, func(b []byte) (any, error) {
					calls++
					return bytes.Clone(b), nil
				})
				if err != nil || !bytes.Equal(v.([]byte), want) {
					t.Fatalf("Derive on %s: %v", id, err)
				}
			}
			if calls != tt.wantCalls || k.Stats().DerivedDropped != tt.wantDropped {
				t.Fatalf("%d derivations, %d dropped; want %d and %d", calls, k.Stats().DerivedDropped, tt.wantCalls, tt.wantDropped)
			}
			if k.Stats().CacheEntries != 3 {
				t.Fatalf("%d cache entries, want 3: the derived bound must not evict keys", k.Stats().CacheEntries)
			}
		})
	}
}
