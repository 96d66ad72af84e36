package keyring_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/keyring/internal/fakeregion"
	"github.com/rkms/rkms/store"
)

// TestValidateIDIsTheEnvelopeRule: the keyring applies the key id rule of package envelope
// (tested in full there) and refuses with its one error.
func TestValidateIDIsTheEnvelopeRule(t *testing.T) {
	for _, id := range []string{"customer-42", "a.b_c:d/e@f+g=h-i", strings.Repeat("a", 256), "", strings.Repeat("a", 257), "a b", "clé"} {
		got, want := keyring.ValidateID(id), envelope.ValidateKeyID(id)
		if (got == nil) != (want == nil) || (got != nil && got.Error() != want.Error()) {
			t.Errorf("ValidateID(%q) = %v, envelope.ValidateKeyID = %v", id, got, want)
		}
		if got != nil && (!errors.Is(got, keyring.ErrInvalidID) || !errors.Is(got, envelope.ErrInvalidKeyID)) {
			t.Errorf("ValidateID(%q) = %v: does not wrap ErrInvalidID and envelope.ErrInvalidKeyID", id, got)
		}
	}
	if keyring.MaxIDLen != envelope.MaxKeyIDLen {
		t.Errorf("MaxIDLen %d, envelope.MaxKeyIDLen %d", keyring.MaxIDLen, envelope.MaxKeyIDLen)
	}
}

func TestGetCreatesThenServesFromCache(t *testing.T) {
	e := newEnv(t, 3)
	k := e.keyring(t, keyring.Options{})
	dk := mustGet(t, k, "orders")
	if dk.ID != "orders" || dk.Version != 1 {
		t.Fatalf("got %s v%d, want orders v1", dk.ID, dk.Version)
	}
	// Creation: one GenerateDataKey somewhere, an Encrypt in each other region.
	var gen, enc int64
	for _, f := range e.fakes {
		gen += f.Calls(fakeregion.Generate)
		enc += f.Calls(fakeregion.Encrypt)
	}
	if gen != 1 || enc != 2 {
		t.Fatalf("creation made %d GenerateDataKey and %d Encrypt calls, want 1 and 2", gen, enc)
	}
	rec := mustRecord(t, e.st, "orders")
	if rec.Current != 1 || len(rec.Versions) != 1 || len(rec.Versions[0].Wrapped) != 3 || len(rec.Versions[0].Missing) != 0 {
		t.Fatalf("stored record %+v, want version 1 with 3 copies", rec)
	}
	for _, f := range e.fakes {
		if got := rec.Versions[0].Wrapped[f.Name()].KeyID; got != f.KeyID() {
			t.Fatalf("copy in %s names key %q, want %q", f.Name(), got, f.KeyID())
		}
	}
	e.reset()
	reads := e.st.Calls().Get
	again := mustGet(t, k, "orders")
	if !bytes.Equal(keyBytes(t, dk), keyBytes(t, again)) {
		t.Fatal("second Get returned a different key")
	}
	if e.totalCalls() != 0 || e.st.Calls().Get != reads {
		t.Fatalf("cache hit made %d KMS calls and %d store reads", e.totalCalls(), e.st.Calls().Get-reads)
	}
	if s := k.Stats(); s.CacheHits != 1 || s.Created != 1 {
		t.Fatalf("stats %+v, want 1 hit and 1 created", s)
	}
}

func TestEveryCopyOpensToTheSameKey(t *testing.T) {
	e := newEnv(t, 3)
	want := keyBytes(t, mustGet(t, e.keyring(t, keyring.Options{}), "k1"))
	rec := mustRecord(t, e.st, "k1")
	for _, f := range e.fakes {
		pt, err := f.Decrypt(context.Background(), rec.Versions[0].Wrapped[f.Name()].Blob, keyring.EncryptionContext("k1", 1))
		if err != nil || !bytes.Equal(pt, want) {
			t.Fatalf("copy in %s: err %v, same key %v", f.Name(), err, bytes.Equal(pt, want))
		}
		// The encryption context binds id and version.
		if _, err := f.Decrypt(context.Background(), rec.Versions[0].Wrapped[f.Name()].Blob, keyring.EncryptionContext("k2", 1)); err == nil {
			t.Fatalf("copy in %s opened under another key id", f.Name())
		}
	}
}

func TestColdReadMakesOneKMSCall(t *testing.T) {
	e := newEnv(t, 3)
	want := keyBytes(t, mustGet(t, e.keyring(t, keyring.Options{}), "k"))
	// A second keyring on the same store (another replica, or a restart) has a cold cache.
	k2 := e.keyring(t, keyring.Options{})
	e.reset()
	reads := e.st.Calls().Get
	got := keyBytes(t, mustGet(t, k2, "k"))
	if !bytes.Equal(got, want) {
		t.Fatal("restarted keyring returned a different key")
	}
	if n := e.totalCalls(); n != 1 {
		t.Fatalf("cold read made %d KMS calls, want 1", n)
	}
	if n := e.st.Calls().Get - reads; n != 1 {
		t.Fatalf("cold read made %d store reads, want 1", n)
	}
	if e.fakes[0].Calls(fakeregion.Decrypt) != 1 {
		t.Fatal("cold read did not use the preferred (first) region")
	}
}

func TestSingleflight(t *testing.T) {
	tests := []struct {
		name     string
		existing bool
	}{
		{"existing key", true},
		{"new key", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 3)
			if tt.existing {
				mustGet(t, e.keyring(t, keyring.Options{}), "hot")
			}
			k := e.keyring(t, keyring.Options{})
			e.reset()
			for _, f := range e.fakes {
				f.Latency(20 * time.Millisecond) // keep the first fetch in flight while the others arrive
			}
			reads := e.st.Calls().Get
			var wg sync.WaitGroup
			keys := make([][]byte, 100)
			errs := make([]error, 100)
			for i := range 100 {
				wg.Go(func() {
					dk, err := k.Get(context.Background(), "hot")
					errs[i] = err
					if err == nil {
						keys[i] = keyBytes(t, dk)
					}
				})
			}
			wg.Wait()
			for i := range 100 {
				if errs[i] != nil || !bytes.Equal(keys[i], keys[0]) {
					t.Fatalf("goroutine %d: err %v or different key", i, errs[i])
				}
			}
			if n := e.st.Calls().Get - reads; n != 1 {
				t.Fatalf("%d store reads, want 1", n)
			}
			want := int64(1) // one Decrypt
			if !tt.existing {
				want = 3 // one GenerateDataKey and two Encrypts
			}
			if n := e.totalCalls(); n != want {
				t.Fatalf("%d KMS calls, want %d", n, want)
			}
		})
	}
}

func TestFallback(t *testing.T) {
	rejected := fmt.Errorf("%w: authentication failed", keyring.ErrRegionRejected)
	tests := []struct {
		name   string
		break1 func(f *fakeregion.Region)
	}{
		{"refused", func(f *fakeregion.Region) { f.Down(true) }},
		{"stalled past the call timeout", func(f *fakeregion.Region) { f.Stall(true) }},
		{"rejected", func(f *fakeregion.Region) { f.Fail(fakeregion.Decrypt, rejected) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 3)
			want := keyBytes(t, mustGet(t, e.keyring(t, keyring.Options{}), "k"))
			k := e.keyring(t, keyring.Options{CallTimeout: 50 * time.Millisecond})
			tt.break1(e.fakes[0])
			e.reset()
			got := keyBytes(t, mustGet(t, k, "k"))
			if !bytes.Equal(got, want) {
				t.Fatal("fallback returned a different key")
			}
			if e.fakes[0].Calls(fakeregion.Decrypt) != 1 || e.fakes[1].Calls(fakeregion.Decrypt) != 1 || e.fakes[2].Total() != 0 {
				t.Fatalf("calls r1=%d r2=%d r3=%d, want 1,1,0", e.fakes[0].Total(), e.fakes[1].Total(), e.fakes[2].Total())
			}
		})
	}
}

func TestAllRegionsFailToUnwrap(t *testing.T) {
	rejected := fmt.Errorf("%w: authentication failed", keyring.ErrRegionRejected)
	tests := []struct {
		name            string
		fail            func(f *fakeregion.Region)
		wantUnavailable bool
	}{
		{"all down", func(f *fakeregion.Region) { f.Down(true) }, true},
		{"all reject", func(f *fakeregion.Region) { f.Fail(fakeregion.Decrypt, rejected) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, 3)
			mustGet(t, e.keyring(t, keyring.Options{}), "k")
			created := mustRecord(t, e.st, "k").Revision
			k := e.keyring(t, keyring.Options{})
			for _, f := range e.fakes {
				tt.fail(f)
			}
			_, err := k.Get(context.Background(), "k")
			if err == nil {
				t.Fatal("Get succeeded with every region failing")
			}
			if errors.Is(err, keyring.ErrUnavailable) != tt.wantUnavailable {
				t.Fatalf("errors.Is(%v, ErrUnavailable) = %v, want %v", err, !tt.wantUnavailable, tt.wantUnavailable)
			}
			var agg *keyring.RegionErrors
			if !errors.As(err, &agg) || len(agg.Errors) != 3 {
				t.Fatalf("error %v does not carry the three regions' causes", err)
			}
			for i, re := range agg.Errors {
				if re.Region != e.fakes[i].Name() || re.Op != "decrypt" {
					t.Fatalf("cause %d = %+v", i, re)
				}
			}
			// Nothing was replaced: the original record is intact.
			if rec := mustRecord(t, e.st, "k"); rec.Revision != created {
				t.Fatalf("record revision %d after failed reads, want %d", rec.Revision, created)
			}
			// Errors are not cached: the next Get succeeds once the regions are back.
			for _, f := range e.fakes {
				f.Down(false)
				f.Fail(fakeregion.Decrypt, nil)
			}
			mustGet(t, k, "k")
		})
	}
}

func TestInvalidIDs(t *testing.T) {
	e := newEnv(t, 1)
	k := e.keyring(t, keyring.Options{})
	ctx := context.Background()
	bad := "not valid"
	checks := map[string]error{}
	_, checks["Get"] = k.Get(ctx, bad)
	_, checks["GetVersion"] = k.GetVersion(ctx, bad, 1)
	_, checks["Rotate"] = k.Rotate(ctx, bad)
	checks["Delete"] = k.Delete(ctx, bad)
	for name, err := range checks {
		if !errors.Is(err, keyring.ErrInvalidID) {
			t.Errorf("%s: %v, want ErrInvalidID", name, err)
		}
	}
	if e.totalCalls() != 0 || e.st.Len() != 0 {
		t.Fatal("invalid ids reached a region or the store")
	}
}

func TestStoreUnavailable(t *testing.T) {
	e := newEnv(t, 3)
	k := e.keyring(t, keyring.Options{})
	cached := keyBytes(t, mustGet(t, k, "cached"))
	e.st.SetUnavailable(true)
	if got := keyBytes(t, mustGet(t, k, "cached")); !bytes.Equal(got, cached) {
		t.Fatal("cached key changed during a store outage")
	}
	_, err := k.Get(context.Background(), "uncached")
	if !errors.Is(err, keyring.ErrUnavailable) || !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("uncached Get during store outage: %v, want ErrUnavailable", err)
	}
	if err := k.Ready(context.Background()); !errors.Is(err, keyring.ErrUnavailable) {
		t.Fatalf("Ready during store outage: %v", err)
	}
	e.st.SetUnavailable(false)
	if e.st.Len() != 1 {
		t.Fatalf("store holds %d records, want 1", e.st.Len())
	}
	mustGet(t, k, "uncached")
	if err := k.Ready(context.Background()); err != nil {
		t.Fatalf("Ready: %v", err)
	}
}

// gatedRegion holds every Decrypt until release is closed (or the call's context ends).
type gatedRegion struct {
	keyring.Region
	release chan struct{}
}

func (r *gatedRegion) Decrypt(ctx context.Context, wrapped []byte, encCtx map[string]string) ([]byte, error) {
	select {
	case <-r.release:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: gated: %w", keyring.ErrRegionUnavailable, ctx.Err())
	}
	return r.Region.Decrypt(ctx, wrapped, encCtx)
}

func TestCancelledCallerDoesNotCancelSharedFetch(t *testing.T) {
	e := newEnv(t, 3)
	mustGet(t, e.keyring(t, keyring.Options{}), "k")
	// r1 holds the fetch until the caller has given up: the caller's deadline is the only way
	// its Get can end. (With a 50 ms latency instead, a caller woken late on a loaded machine
	// found both the result and its deadline ready and got the key 2 times in 300 runs.)
	gate := &gatedRegion{Region: e.fakes[0], release: make(chan struct{})}
	k, err := keyring.NewManual(e.st, []keyring.Region{gate, e.fakes[1], e.fakes[2]}, keyring.Options{Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	_, err = k.Get(ctx, "k")
	close(gate.release)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, keyring.ErrUnavailable) {
		t.Fatalf("Get with a short deadline: %v", err)
	}
	// The fetch went on without the impatient caller and filled the cache; the region was not
	// blamed for the caller's deadline.
	deadline := time.Now().Add(2 * time.Second)
	for k.Stats().CacheEntries == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if k.Stats().CacheEntries != 1 {
		t.Fatal("shared fetch did not complete")
	}
	if st := regionStats(t, k, "r1"); st.Failures != 0 {
		t.Fatalf("region r1 charged with %d failures", st.Failures)
	}
}
