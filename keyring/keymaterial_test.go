package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/keyring/internal/fakeregion"
	"github.com/rkms/rkms/secret"
	"github.com/rkms/rkms/store"
	"github.com/rkms/rkms/store/storetest"
)

// tapRegion wraps a region and keeps every plaintext it hands to the keyring (the very slices,
// not copies), so that a test can see whether the keyring wiped them. With size set, Decrypt
// (and GenerateDataKey, with genSize) returns a key of that many bytes instead of the real one,
// and with emptyBlob Encrypt returns an empty ciphertext: a region that misbehaves (a KMS bug, a
// wrong key spec, a hostile endpoint).
type tapRegion struct {
	keyring.Region
	size, genSize int // 0: the real key
	emptyBlob     bool

	mu   sync.Mutex
	gave [][]byte // every plaintext handed out
	gens [][]byte // those from GenerateDataKey
}

func (r *tapRegion) keep(b []byte) {
	r.mu.Lock()
	r.gave = append(r.gave, b)
	r.mu.Unlock()
}

func (r *tapRegion) GenerateDataKey(ctx context.Context, encCtx map[string]string) ([]byte, []byte, error) {
	pt, blob, err := r.Region.GenerateDataKey(ctx, encCtx)
	if err == nil {
		if r.genSize != 0 {
			out := bytes.Repeat([]byte{0xA5}, r.genSize)
			copy(out, pt)
			clear(pt)
			pt = out
		}
		r.keep(pt)
		r.mu.Lock()
		r.gens = append(r.gens, pt)
		r.mu.Unlock()
	}
	return pt, blob, err
}

func (r *tapRegion) Encrypt(ctx context.Context, plaintext []byte, encCtx map[string]string) ([]byte, error) {
	blob, err := r.Region.Encrypt(ctx, plaintext, encCtx)
	if err == nil && r.emptyBlob {
		blob = []byte{}
	}
	return blob, err
}

func (r *tapRegion) Decrypt(ctx context.Context, wrapped []byte, encCtx map[string]string) ([]byte, error) {
	pt, err := r.Region.Decrypt(ctx, wrapped, encCtx)
	if err != nil {
		return nil, err
	}
	if r.size != 0 {
		out := bytes.Repeat([]byte{0xA5}, r.size)
		copy(out, pt)
		clear(pt)
		pt = out
	}
	r.keep(pt)
	return pt, nil
}

// handedOut returns the plaintexts the region returned so far.
func (r *tapRegion) handedOut() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.gave
}

func allZero(b []byte) bool { return !bytes.ContainsFunc(b, func(r rune) bool { return r != 0 }) }

// TestUnwrapRefusesWrongLengthKey: a region whose Decrypt answers with a key of the wrong size
// is refused (the keyring falls back to another region's copy, counts no breaker failure,
// wipes what it got) and such a key is never handed out or cached.
func TestUnwrapRefusesWrongLengthKey(t *testing.T) {
	for _, size := range []int{16, 31, 33, 64} {
		t.Run(fmt.Sprintf("%d bytes", size), func(t *testing.T) {
			e := newEnv(t, 3)
			want := keyBytes(t, mustGet(t, e.keyring(t, keyring.Options{}), "k"))
			bad := &tapRegion{Region: e.fakes[0], size: size}
			regions := []keyring.Region{bad, e.fakes[1], e.fakes[2]}
			k, err := keyring.NewManual(e.st, regions, keyring.Options{Now: e.clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			k.SetWipeGrace(0)
			t.Cleanup(func() { _ = k.Close() })

			dk, err := k.Get(context.Background(), "k")
			if err != nil {
				t.Fatalf("Get with r1 answering %d-byte keys: %v (r2 and r3 hold good copies)", size, err)
			}
			if got := keyBytes(t, dk); !bytes.Equal(got, want) {
				t.Fatalf("Get returned another key than the one stored")
			}
			if e.fakes[1].Calls(fakeregion.Decrypt) != 1 {
				t.Fatal("the keyring did not fall back to r2's copy")
			}
			gave := bad.handedOut()
			if len(gave) != 1 || !allZero(gave[0]) {
				t.Fatalf("r1's %d-byte answer was not wiped", size)
			}
			if s := regionStats(t, k, "r1"); s.Failures != 0 || !k.RegionStatus()[0].Healthy {
				t.Fatalf("r1 stats %+v: a wrong answer is not an outage, want no failure counted", s)
			}

			// With r1 the only region left, the key cannot be had: never the wrong-size one.
			k2, err := keyring.NewManual(e.st, regions, keyring.Options{Now: e.clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = k2.Close() })
			e.fakes[1].Down(true)
			e.fakes[2].Down(true)
			dk, err = k2.GetVersion(context.Background(), "k", 1)
			if err == nil {
				t.Fatalf("GetVersion served a key of %d bytes", dk.Secret.Len())
			}
			if !errors.Is(err, keyring.ErrRegionRejected) {
				t.Fatalf("GetVersion: %v, want r1's refusal (ErrRegionRejected) among the causes", err)
			}
			if n := k2.Stats().CacheEntries; n != 0 {
				t.Fatalf("%d cache entries after a failed unwrap", n)
			}
		})
	}
}

// TestCreateRefusesBadRegionAnswers: a generated key of the wrong size is refused (and wiped)
// and generation falls back to the next region; an empty wrapped copy is not stored, the region
// is recorded as missing it.
func TestCreateRefusesBadRegionAnswers(t *testing.T) {
	e := newEnv(t, 3)
	gen := &tapRegion{Region: e.fakes[0], genSize: 16}
	empty := &tapRegion{Region: e.fakes[2], emptyBlob: true}
	k, err := keyring.NewManual(e.st, []keyring.Region{gen, e.fakes[1], empty}, keyring.Options{MinRegions: 1, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	k.SetWipeGrace(0)
	t.Cleanup(func() { _ = k.Close() })
	key := keyBytes(t, mustGet(t, k, "k")) // fails unless 32 bytes
	if gave := gen.handedOut(); len(gave) != 1 || !allZero(gave[0]) {
		t.Fatal("r1's 16-byte generated key was not wiped")
	}
	if e.fakes[1].Calls(fakeregion.Generate) != 1 {
		t.Fatal("generation did not fall back to r2")
	}
	v := mustRecord(t, e.st, "k").Versions[0]
	if len(v.Wrapped) != 1 || len(v.Wrapped["r2"].Blob) == 0 || !slices.Equal(v.Missing, []string{"r1", "r3"}) {
		t.Fatalf("version copies %v, missing %v; want r2's only, r1 and r3 missing", slices.Sorted(maps.Keys(v.Wrapped)), v.Missing)
	}
	// The one stored copy opens to the key handed out.
	k2 := e.keyring(t, keyring.Options{})
	if got := keyBytes(t, mustGet(t, k2, "k")); !bytes.Equal(got, key) {
		t.Fatal("the stored copy opens to another key")
	}
}

// TestFailedCreationWipesItsKey: a data key generated for a version that is then not stored
// (too few regions wrapped it, or the store write failed) is wiped before the error returns.
func TestFailedCreationWipesItsKey(t *testing.T) {
	for _, tc := range []struct {
		name   string
		min    int
		break_ func(e *env)
		rotate bool
	}{
		{"too few regions wrapped it", 3, func(e *env) {
			e.fakes[1].Fail(fakeregion.Encrypt, fmt.Errorf("%w: throttled", keyring.ErrRegionUnavailable))
		}, false},
		{"too few regions wrapped a rotation", 3, func(e *env) {
			e.fakes[2].Down(true)
		}, true},
		{"the store write failed", 0, func(e *env) {
			e.st.SetHook(func(_ context.Context, op storetest.MemoryOp, _ string) error {
				if op == storetest.OpCreate {
					return fmt.Errorf("create: %w", store.ErrUnavailable)
				}
				return nil
			})
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 3)
			// Every region tapped: which one generates depends on the regions' latencies.
			var taps []*tapRegion
			var regions []keyring.Region
			for _, f := range e.fakes {
				taps = append(taps, &tapRegion{Region: f})
				regions = append(regions, taps[len(taps)-1])
			}
			generated := func() (out [][]byte) {
				for _, tp := range taps {
					tp.mu.Lock()
					out = append(out, tp.gens...)
					tp.mu.Unlock()
				}
				return out
			}
			k, err := keyring.NewManual(e.st, regions, keyring.Options{MinRegions: tc.min, Now: e.clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			k.SetWipeGrace(0)
			t.Cleanup(func() { _ = k.Close() })
			if tc.rotate {
				mustGet(t, k, "k")
			}
			before := len(generated())
			tc.break_(e)
			if tc.rotate {
				_, err = k.Rotate(context.Background(), "k")
			} else {
				_, err = k.Get(context.Background(), "k")
			}
			if !errors.Is(err, keyring.ErrUnavailable) {
				t.Fatalf("creation: %v, want ErrUnavailable", err)
			}
			gave := generated()[before:]
			if len(gave) != 1 {
				t.Fatalf("%d keys generated, want 1", len(gave))
			}
			if len(gave[0]) != keyring.DataKeySize || !allZero(gave[0]) {
				t.Fatal("the key of the failed creation was not wiped")
			}
		})
	}
}

// TestProductionWipeGrace exercises the wipe grace that production uses (every other test sets
// it to 0): a key evicted while a caller holds it stays usable for a few seconds, then is wiped.
func TestProductionWipeGrace(t *testing.T) {
	if keyring.WipeGrace < time.Second || keyring.WipeGrace > 10*time.Second {
		t.Errorf("wipe grace %v: the package doc promises a few seconds", keyring.WipeGrace)
	}
	e := newEnv(t, 1)
	k, err := keyring.New(e.st, e.regions(), keyring.Options{CacheMaxKeys: 1}) // no SetWipeGrace
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if got := k.WipeGrace(); got != keyring.WipeGrace {
		t.Errorf("a new keyring's wipe grace is %v, want %v", got, keyring.WipeGrace)
	}
	a := mustGet(t, k, "a")
	evicted := time.Now()
	mustGet(t, k, "b") // evicts a
	if err := a.Secret.Use(func([]byte) error { return nil }); err != nil {
		t.Fatalf("key wiped as soon as it was evicted: %v", err)
	}
	if err := k.Delete(context.Background(), "b"); err != nil {
		t.Fatal(err)
	}
	if testing.Short() {
		return
	}
	t.Parallel() // the rest waits out the grace
	for a.Secret.Use(func([]byte) error { return nil }) == nil {
		if time.Since(evicted) > keyring.WipeGrace+5*time.Second {
			t.Fatal("evicted key never wiped")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d := time.Since(evicted); d < keyring.WipeGrace-100*time.Millisecond {
		t.Fatalf("evicted key wiped after %v, before the grace of %v", d, keyring.WipeGrace)
	}
	if err := a.Secret.Use(func([]byte) error { return nil }); !errors.Is(err, secret.ErrWiped) {
		t.Fatalf("after the grace: %v, want ErrWiped", err)
	}
}
