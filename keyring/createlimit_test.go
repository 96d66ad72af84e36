package keyring_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/store"
)

// countingStore counts the record reads that reach the store.
type countingStore struct {
	keyring.Store
	reads atomic.Int64
}

func (s *countingStore) Get(ctx context.Context, id string) (*store.Record, error) {
	s.reads.Add(1)
	return s.Store.Get(ctx, id)
}

// keyringOver is e.keyring over another store (a counting wrapper of e.st).
func (e *env) keyringOver(t testing.TB, st keyring.Store, opts keyring.Options) *keyring.Keyring {
	t.Helper()
	if opts.Now == nil {
		opts.Now = e.clock.Now
	}
	if opts.CreateRate == 0 {
		opts.CreateRate = -1
	}
	k, err := keyring.NewManual(st, e.regions(), opts)
	if err != nil {
		t.Fatal(err)
	}
	k.SetWipeGrace(0)
	t.Cleanup(func() { _ = k.Close() })
	return k
}

func records(t testing.TB, st keyring.Store, ids ...string) int {
	t.Helper()
	n := 0
	for _, id := range ids {
		if _, err := st.Get(context.Background(), id); err == nil {
			n++
		}
	}
	return n
}

func TestCreateRateLimit(t *testing.T) {
	e := newEnv(t, 3)
	k := e.keyring(t, keyring.Options{CreateRate: 1, CreateBurst: 2})
	ctx := context.Background()
	mustGet(t, k, "a")
	mustGet(t, k, "b")

	e.reset()
	_, err := k.Get(ctx, "c")
	var le *keyring.CreateLimitedError
	if !errors.Is(err, keyring.ErrCreateLimited) || !errors.As(err, &le) {
		t.Fatalf("third new key: %v, want ErrCreateLimited", err)
	}
	if errors.Is(err, keyring.ErrUnavailable) {
		t.Fatalf("a limited creation must not look like an outage: %v", err)
	}
	if le.RetryAfter != time.Second {
		t.Fatalf("retry after %s, want 1s", le.RetryAfter)
	}
	if n := e.totalCalls(); n != 0 {
		t.Fatalf("a limited creation made %d KMS calls", n)
	}
	if records(t, e.st, "c") != 0 {
		t.Fatal("a limited creation stored a record")
	}

	// Existing keys are never limited: a fresh replica (empty cache) with an empty bucket
	// still opens them.
	k2 := e.keyring(t, keyring.Options{CreateRate: 1, CreateBurst: 1})
	mustGet(t, k2, "z") // empties k2's bucket
	if _, err := k2.Get(ctx, "y"); !errors.Is(err, keyring.ErrCreateLimited) {
		t.Fatalf("k2 bucket not empty: %v", err)
	}
	mustGet(t, k2, "a")
	mustGet(t, k2, "b")

	e.clock.Advance(time.Second)
	mustGet(t, k, "c")
	if s := k.Stats(); s.Created != 3 || s.CreateLimited != 1 {
		t.Fatalf("stats created %d limited %d, want 3 and 1", s.Created, s.CreateLimited)
	}
}

// TestCreateLimitRetryAfter: the delay is the bucket's, rounded up to whole seconds, at least 1s.
func TestCreateLimitRetryAfter(t *testing.T) {
	tests := []struct {
		rate float64
		want time.Duration
	}{
		{100, time.Second},     // 10ms rounds up to 1s
		{0.5, 2 * time.Second}, // one token every 2s
		{0.3, 4 * time.Second}, // 3.33s rounds up
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.rate), func(t *testing.T) {
			e := newEnv(t, 1)
			k := e.keyring(t, keyring.Options{CreateRate: tc.rate, CreateBurst: 1})
			mustGet(t, k, "a")
			_, err := k.Get(context.Background(), "b")
			var le *keyring.CreateLimitedError
			if !errors.As(err, &le) || le.RetryAfter != tc.want {
				t.Fatalf("err %v, want retry after %s", err, tc.want)
			}
		})
	}
}

// TestCreateLimitDefaults: 20 keys at once, then 10 a second.
func TestCreateLimitDefaults(t *testing.T) {
	e := newEnv(t, 1)
	k, err := keyring.NewManual(e.st, e.regions(), keyring.Options{Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	for i := range keyring.DefaultCreateBurst {
		mustGet(t, k, fmt.Sprintf("t%d", i))
	}
	if _, err := k.Get(context.Background(), "one-more"); !errors.Is(err, keyring.ErrCreateLimited) {
		t.Fatalf("key %d: %v, want ErrCreateLimited", keyring.DefaultCreateBurst+1, err)
	}
	e.clock.Advance(time.Second)
	for i := range keyring.DefaultCreateRate {
		mustGet(t, k, fmt.Sprintf("u%d", i))
	}
	if _, err := k.Get(context.Background(), "one-more"); !errors.Is(err, keyring.ErrCreateLimited) {
		t.Fatalf("key %d after 1s: %v, want ErrCreateLimited", keyring.DefaultCreateRate+1, err)
	}
}

func TestCreateRateUnlimited(t *testing.T) {
	e := newEnv(t, 1)
	k := e.keyring(t, keyring.Options{CreateRate: -1})
	for i := range 100 {
		mustGet(t, k, fmt.Sprintf("t%d", i))
	}
}

// TestCreateLimitOneTokenPerID: concurrent Gets of one new id share a creation and a token.
func TestCreateLimitOneTokenPerID(t *testing.T) {
	e := newEnv(t, 3)
	k := e.keyring(t, keyring.Options{CreateRate: 1, CreateBurst: 1})
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			if _, err := k.Get(context.Background(), "shared"); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Get: %v", err)
	}
	if s := k.Stats(); s.Created != 1 || s.CreateLimited != 0 {
		t.Fatalf("created %d limited %d, want 1 and 0", s.Created, s.CreateLimited)
	}
}

func TestLookup(t *testing.T) {
	e := newEnv(t, 3)
	k := e.keyring(t, keyring.Options{})
	ctx := context.Background()
	if _, err := k.Lookup(ctx, "absent"); !errors.Is(err, keyring.ErrNotFound) {
		t.Fatalf("Lookup of an absent key: %v, want ErrNotFound", err)
	}
	if n := e.totalCalls(); n != 0 {
		t.Fatalf("Lookup of an absent key made %d KMS calls", n)
	}
	if records(t, e.st, "absent") != 0 {
		t.Fatal("Lookup created a key")
	}
	if _, err := k.Lookup(ctx, "bad id"); !errors.Is(err, keyring.ErrInvalidID) {
		t.Fatalf("invalid id: %v", err)
	}
	want := mustGet(t, k, "present")
	got, err := k.Lookup(ctx, "present")
	if err != nil || got.Version != want.Version || got.Secret != want.Secret {
		t.Fatalf("Lookup of a present key: %+v %v", got, err)
	}
	// From another replica (not cached there), and after a rotation.
	v, err := k.Rotate(ctx, "present")
	if err != nil {
		t.Fatal(err)
	}
	got, err = e.keyring(t, keyring.Options{}).Lookup(ctx, "present")
	if err != nil || got.Version != v {
		t.Fatalf("Lookup from another replica: %+v %v, want version %d", got, err, v)
	}
	// The create limit never applies to Lookup.
	kl := e.keyring(t, keyring.Options{CreateRate: 1, CreateBurst: 1})
	mustGet(t, kl, "fill")
	if _, err := kl.Lookup(ctx, "present"); err != nil {
		t.Fatalf("Lookup with an empty create bucket: %v", err)
	}
	if _, err := kl.Lookup(ctx, "other"); !errors.Is(err, keyring.ErrNotFound) || errors.Is(err, keyring.ErrCreateLimited) {
		t.Fatalf("Lookup of an absent key with an empty bucket: %v, want ErrNotFound", err)
	}
}

func TestNegativeCache(t *testing.T) {
	tests := []struct {
		name      string
		opts      keyring.Options
		wantReads int64 // store reads for 3 Lookups of one absent id
		wantHits  uint64
	}{
		{"default", keyring.Options{}, 1, 2},
		{"off", keyring.Options{NegativeTTL: -1}, 3, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 3)
			st := &countingStore{Store: e.st}
			k := e.keyringOver(t, st, tc.opts)
			for range 3 {
				if _, err := k.Lookup(context.Background(), "nobody"); !errors.Is(err, keyring.ErrNotFound) {
					t.Fatalf("Lookup: %v", err)
				}
			}
			if n := st.reads.Load(); n != tc.wantReads {
				t.Fatalf("%d store reads, want %d", n, tc.wantReads)
			}
			if s := k.Stats(); s.NegativeHits != tc.wantHits {
				t.Fatalf("negative hits %d, want %d", s.NegativeHits, tc.wantHits)
			}
		})
	}
}

func TestNegativeCacheExpires(t *testing.T) {
	e := newEnv(t, 3)
	st := &countingStore{Store: e.st}
	k := e.keyringOver(t, st, keyring.Options{NegativeTTL: 5 * time.Second})
	lookupAbsent := func() {
		t.Helper()
		if _, err := k.Lookup(context.Background(), "nobody"); !errors.Is(err, keyring.ErrNotFound) {
			t.Fatalf("Lookup: %v", err)
		}
	}
	lookupAbsent()
	e.clock.Advance(4 * time.Second)
	lookupAbsent()
	if n := st.reads.Load(); n != 1 {
		t.Fatalf("%d store reads within the ttl, want 1", n)
	}
	e.clock.Advance(time.Second)
	lookupAbsent()
	if n := st.reads.Load(); n != 2 {
		t.Fatalf("%d store reads after the ttl, want 2", n)
	}
}

func TestNegativeCacheBounded(t *testing.T) {
	e := newEnv(t, 1)
	st := &countingStore{Store: e.st}
	k := e.keyringOver(t, st, keyring.Options{NegativeMaxKeys: 2})
	for _, id := range []string{"a", "b", "c", "b", "c"} {
		_, _ = k.Lookup(context.Background(), id)
	}
	if n := st.reads.Load(); n != 3 {
		t.Fatalf("%d store reads, want 3", n)
	}
	if s := k.Stats(); s.NegativeEntries != 2 {
		t.Fatalf("%d negative entries, want 2", s.NegativeEntries)
	}
	_, _ = k.Lookup(context.Background(), "a") // evicted first
	if n := st.reads.Load(); n != 4 {
		t.Fatalf("%d store reads, want 4: the oldest entry should have been evicted", n)
	}
}

// TestNegativeEntryClearedByCreate: creating or rotating a key on this replica forgets that it
// was absent at once (the plaintext cache is off, so Lookup has to go past the negative cache).
func TestNegativeEntryClearedByCreate(t *testing.T) {
	e := newEnv(t, 3)
	k := e.keyring(t, keyring.Options{CacheTTL: -1})
	ctx := context.Background()
	if _, err := k.Lookup(ctx, "new"); !errors.Is(err, keyring.ErrNotFound) {
		t.Fatalf("Lookup: %v", err)
	}
	mustGet(t, k, "new")
	if dk, err := k.Lookup(ctx, "new"); err != nil || dk.Version != 1 {
		t.Fatalf("Lookup after Get created the key: %+v %v", dk, err)
	}

	// Rotate: deleted elsewhere, found absent here, re-created elsewhere, rotated here.
	other := e.keyring(t, keyring.Options{})
	if err := other.Delete(ctx, "new"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Lookup(ctx, "new"); !errors.Is(err, keyring.ErrNotFound) {
		t.Fatalf("Lookup after delete: %v", err)
	}
	mustRecreate(t, other, "new")
	if _, err := k.Rotate(ctx, "new"); err != nil {
		t.Fatal(err)
	}
	if dk, err := k.Lookup(ctx, "new"); err != nil || dk.Version != 2 {
		t.Fatalf("Lookup after Rotate: %+v %v", dk, err)
	}
}

// TestLookupConcurrent runs Lookups, Gets and Deletes of overlapping ids at once (for -race).
func TestLookupConcurrent(t *testing.T) {
	e := newEnv(t, 3)
	k := e.keyring(t, keyring.Options{CreateRate: 1000, CreateBurst: 10, NegativeMaxKeys: 8})
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				id := fmt.Sprintf("id%d", i%16)
				switch (g + i) % 4 {
				case 0:
					_, _ = k.Get(ctx, id)
				case 3:
					_ = k.Delete(ctx, id)
				default:
					if _, err := k.Lookup(ctx, id); err != nil && !errors.Is(err, keyring.ErrNotFound) {
						t.Errorf("Lookup(%s): %v", id, err)
					}
				}
			}
		})
	}
	wg.Wait()
	_ = k.Stats()
}
