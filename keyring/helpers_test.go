package keyring_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/keyring/internal/fakeregion"
	"github.com/rkms/rkms/keyring/localkms"
	"github.com/rkms/rkms/store"
	"github.com/rkms/rkms/store/storetest"
)

// clock is a settable clock for cache expiry and breaker cooldowns.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// env is a memory store and n software regions r1..rn behind fakes.
type env struct {
	st    *storetest.Memory
	fakes []*fakeregion.Region
	clock *clock
}

func newEnv(t testing.TB, n int) *env {
	t.Helper()
	e := &env{st: storetest.NewMemory(), clock: newClock()}
	dir := t.TempDir()
	for i := range n {
		r, err := localkms.Open(dir, fmt.Sprintf("r%d", i+1), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		e.fakes = append(e.fakes, fakeregion.Wrap(r))
	}
	return e
}

func (e *env) regions() []keyring.Region {
	out := make([]keyring.Region, len(e.fakes))
	for i, f := range e.fakes {
		out[i] = f
	}
	return out
}

// keyring returns a keyring without background loop (the test drives probes and repairs), with
// the env's clock unless opts sets one, and no creation rate limit unless opts sets one (the
// clock stands still: the bucket would never refill).
func (e *env) keyring(t testing.TB, opts keyring.Options) *keyring.Keyring {
	t.Helper()
	if opts.Now == nil {
		opts.Now = e.clock.Now
	}
	if opts.CreateRate == 0 {
		opts.CreateRate = -1
	}
	k, err := keyring.NewManual(e.st, e.regions(), opts)
	if err != nil {
		t.Fatal(err)
	}
	k.SetWipeGrace(0)
	t.Cleanup(func() { _ = k.Close() })
	return k
}

func (e *env) totalCalls() int64 {
	var n int64
	for _, f := range e.fakes {
		n += f.Total()
	}
	return n
}

func (e *env) reset() {
	for _, f := range e.fakes {
		f.Reset()
	}
}

// keyBytes copies a data key's bytes.
func keyBytes(t testing.TB, dk keyring.DataKey) []byte {
	t.Helper()
	var out []byte
	if err := dk.Secret.Use(func(b []byte) error { out = bytes.Clone(b); return nil }); err != nil {
		t.Fatalf("use key %s v%d: %v", dk.ID, dk.Version, err)
	}
	if len(out) != keyring.DataKeySize {
		t.Fatalf("key %s v%d has %d bytes", dk.ID, dk.Version, len(out))
	}
	return out
}

func mustGet(t testing.TB, k *keyring.Keyring, id string) keyring.DataKey {
	t.Helper()
	dk, err := k.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%q): %v", id, err)
	}
	return dk
}

// mustRecreate creates id's key explicitly, replacing a tombstone (what an operator does to
// bring a deleted id back).
func mustRecreate(t testing.TB, k *keyring.Keyring, id string) keyring.DataKey {
	t.Helper()
	dk, err := k.Create(context.Background(), id, true)
	if err != nil {
		t.Fatalf("Create(%q, recreate): %v", id, err)
	}
	return dk
}

func mustRecord(t testing.TB, st keyring.Store, id string) *store.Record {
	t.Helper()
	rec, err := st.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("store.Get(%q): %v", id, err)
	}
	return rec
}

// regionStats returns the named region's counters.
func regionStats(t testing.TB, k *keyring.Keyring, name string) keyring.RegionStats {
	t.Helper()
	for _, r := range k.Stats().Regions {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no region %q in stats", name)
	return keyring.RegionStats{}
}
