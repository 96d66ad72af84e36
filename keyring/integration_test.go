package keyring_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/keyring/awskms"
	"github.com/rkms/rkms/store"
	"github.com/rkms/rkms/store/dynamodb"
)

// Integration tests: three real local-kms processes (one per region) and a DynamoDB store on a
// real dynalite.

var awsRegions = []string{"us-east-1", "eu-west-1", "ap-southeast-2"}

type realEnv struct {
	kms     []*testenv.KMS
	regions []keyring.Region
	direct  map[string]keyring.Region // separate clients, to check copies without the keyring
	db      *testenv.Dynalite
	st      *dynamodb.Store
}

func newRealEnv(t *testing.T) *realEnv { return newRealEnvB(t) }

func newRealEnvB(t testing.TB) *realEnv {
	t.Helper()
	testenv.Integration(t)
	e := &realEnv{direct: map[string]keyring.Region{}, db: testenv.StartDynalite(t)}
	for _, name := range awsRegions {
		k := testenv.StartKMS(t, name)
		e.kms = append(e.kms, k)
		e.regions = append(e.regions, e.awsRegion(t, k))
		e.direct[name] = e.awsRegion(t, k)
	}
	st, err := dynamodb.New(t.Context(), dynamodb.Config{
		Table: "rkms-keys", Region: "us-east-1", Endpoints: []string{e.db.Endpoint}, CreateTable: true,
		Timeout: 2 * time.Second,
	}, testenv.AWSConfig(t, "us-east-1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e.st = st
	return e
}

func (e *realEnv) awsRegion(t testing.TB, k *testenv.KMS) keyring.Region {
	t.Helper()
	r, err := awskms.New(awskms.Config{Name: k.Region, KeyID: k.KeyARN, Endpoint: k.Endpoint, Timeout: 2 * time.Second},
		testenv.AWSConfig(t, k.Region))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// keyring returns a keyring over the real services, without a creation rate limit unless opts
// sets one (the tests create many keys at once).
func (e *realEnv) keyring(t *testing.T, opts keyring.Options) *keyring.Keyring {
	t.Helper()
	if opts.CreateRate == 0 {
		opts.CreateRate = -1
	}
	k, err := keyring.New(e.st, e.regions, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Close() })
	return k
}

// kmsCalls sums the keyring's KMS calls over every region, probes excluded.
func kmsCalls(k *keyring.Keyring) (total uint64, per map[string]uint64) {
	per = map[string]uint64{}
	for _, r := range k.Stats().Regions {
		n := r.GenerateDataKey + r.Encrypt + r.Decrypt
		per[r.Name] = n
		total += n
	}
	return total, per
}

func TestIntegrationRoundTripAndRestart(t *testing.T) {
	e := newRealEnv(t)
	k := e.keyring(t, keyring.Options{})
	first := mustGet(t, k, "customer-1")
	want := keyBytes(t, first)
	rec := mustRecord(t, e.st, "customer-1")
	if len(rec.Versions[0].Wrapped) != 3 {
		t.Fatalf("record has %d copies", len(rec.Versions[0].Wrapped))
	}
	for name, w := range rec.Versions[0].Wrapped {
		pt, err := e.direct[name].Decrypt(t.Context(), w.Blob, keyring.EncryptionContext("customer-1", 1))
		if err != nil || !bytes.Equal(pt, want) {
			t.Fatalf("copy in %s: %v", name, err)
		}
	}
	_ = k.Close()
	restarted := e.keyring(t, keyring.Options{})
	if got := keyBytes(t, mustGet(t, restarted, "customer-1")); !bytes.Equal(got, want) {
		t.Fatal("restarted keyring returned a different key")
	}
	if total, _ := kmsCalls(restarted); total != 1 {
		t.Fatalf("cold read after restart made %d KMS calls, want 1", total)
	}
	n, err := restarted.Rotate(t.Context(), "customer-1")
	if err != nil || n != 2 {
		t.Fatalf("Rotate: %d, %v", n, err)
	}
	if dk, err := restarted.GetVersion(t.Context(), "customer-1", 1); err != nil || !bytes.Equal(keyBytes(t, dk), want) {
		t.Fatalf("GetVersion(1) after rotation: %v", err)
	}
	if err := restarted.Delete(t.Context(), "customer-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := restarted.GetVersion(t.Context(), "customer-1", 1); !errors.Is(err, keyring.ErrNotFound) {
		t.Fatalf("GetVersion after Delete: %v", err)
	}
}

func TestIntegrationTwoKeyringsRace(t *testing.T) {
	e := newRealEnv(t)
	a, b := e.keyring(t, keyring.Options{}), e.keyring(t, keyring.Options{})
	const n = 100
	keysA, keysB := make([][]byte, n), make([][]byte, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		id := fmt.Sprintf("race-%03d", i)
		for _, side := range []struct {
			k   *keyring.Keyring
			out [][]byte
		}{{a, keysA}, {b, keysB}} {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				dk, err := side.k.Get(t.Context(), id)
				if err != nil {
					t.Errorf("Get(%s): %v", id, err)
					return
				}
				side.out[i] = keyBytes(t, dk)
			})
		}
	}
	wg.Wait()
	for i := range n {
		if !bytes.Equal(keysA[i], keysB[i]) || keysA[i] == nil {
			t.Fatalf("race-%03d: keyrings disagree", i)
		}
	}
	if got := a.Stats().Created + b.Stats().Created; got != n {
		t.Fatalf("%d records created, want %d", got, n)
	}
}

func TestIntegrationRegionKilled(t *testing.T) {
	e := newRealEnv(t)
	writer := e.keyring(t, keyring.Options{})
	want := map[string][]byte{}
	for i := range 12 {
		id := fmt.Sprintf("k%02d", i)
		want[id] = keyBytes(t, mustGet(t, writer, id))
	}
	k := e.keyring(t, keyring.Options{BreakerThreshold: 3, BreakerCooldown: time.Hour})
	e.kms[0].Stop() // the preferred region
	for i := range 12 {
		id := fmt.Sprintf("k%02d", i)
		before, per0 := kmsCalls(k)
		if got := keyBytes(t, mustGet(t, k, id)); !bytes.Equal(got, want[id]) {
			t.Fatalf("%s: different key during the outage", id)
		}
		after, per1 := kmsCalls(k)
		if i < 3 {
			continue // r1 is still tried first until its breaker opens
		}
		if after-before != 1 || per1[awsRegions[0]] != per0[awsRegions[0]] {
			t.Fatalf("cold read %d with the breaker open: %d KMS calls (%d to the dead region), want 1 and 0",
				i, after-before, per1[awsRegions[0]]-per0[awsRegions[0]])
		}
	}
	if st := k.RegionStatus(); st[0].Healthy || !st[1].Healthy || !st[2].Healthy {
		t.Fatalf("region status %+v", st)
	}
	if err := k.Ready(t.Context()); err != nil {
		t.Fatalf("Ready with 2 of 3: %v", err)
	}
}

func TestIntegrationCreateWithRegionDownThenRepair(t *testing.T) {
	e := newRealEnv(t)
	k := e.keyring(t, keyring.Options{BreakerThreshold: 1, BreakerCooldown: 100 * time.Millisecond, RepairInterval: time.Hour})
	e.kms[2].Stop()
	dk := mustGet(t, k, "fresh")
	want := keyBytes(t, dk)
	v := mustRecord(t, e.st, "fresh").Versions[0]
	if len(v.Wrapped) != 2 || !slices.Equal(v.Missing, []string{awsRegions[2]}) {
		t.Fatalf("created version %+v, want 2 copies and %s missing", v, awsRegions[2])
	}
	e.kms[2].Start()
	// The probe after the cooldown closes the breaker, which triggers the repair (the interval
	// is an hour).
	deadline := time.Now().Add(10 * time.Second)
	for {
		v = mustRecord(t, e.st, "fresh").Versions[0]
		if len(v.Wrapped) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not repaired: %+v, stats %+v", k.RegionStatus(), k.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(v.Missing) != 0 {
		t.Fatalf("missing list after repair: %v", v.Missing)
	}
	pt, err := e.direct[awsRegions[2]].Decrypt(t.Context(), v.Wrapped[awsRegions[2]].Blob, keyring.EncryptionContext("fresh", 1))
	if err != nil || !bytes.Equal(pt, want) {
		t.Fatalf("repaired copy: %v, same key %v", err, bytes.Equal(pt, want))
	}
}

func TestIntegrationAllRegionsDown(t *testing.T) {
	e := newRealEnv(t)
	k := e.keyring(t, keyring.Options{})
	for _, km := range e.kms {
		km.Stop()
	}
	_, err := k.Get(t.Context(), "nothing")
	var agg *keyring.RegionErrors
	if !errors.Is(err, keyring.ErrUnavailable) || !errors.As(err, &agg) {
		t.Fatalf("Get with every region down: %v", err)
	}
	if _, err := e.st.Get(t.Context(), "nothing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("something was stored: %v", err)
	}
	// Two of three back (the majority): creation works again, recording the third as missing.
	e.kms[0].Start()
	e.kms[1].Start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := k.Get(t.Context(), "nothing")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Get after regions came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestIntegrationStoreDown(t *testing.T) {
	e := newRealEnv(t)
	k := e.keyring(t, keyring.Options{})
	cached := keyBytes(t, mustGet(t, k, "cached"))
	e.db.Stop()
	for range 3 {
		if got := keyBytes(t, mustGet(t, k, "cached")); !bytes.Equal(got, cached) {
			t.Fatal("cached key changed during the store outage")
		}
	}
	_, err := k.Get(t.Context(), "uncached")
	if !errors.Is(err, keyring.ErrUnavailable) {
		t.Fatalf("uncached Get during the store outage: %v", err)
	}
	if err := k.Ready(t.Context()); !errors.Is(err, keyring.ErrUnavailable) {
		t.Fatalf("Ready during the store outage: %v", err)
	}
	e.db.Start()
	fresh := e.keyring(t, keyring.Options{})
	if got := keyBytes(t, mustGet(t, fresh, "cached")); !bytes.Equal(got, cached) {
		t.Fatal("stored key changed across the outage")
	}
	// Whatever the failed creation left (nothing, or a complete record if the write landed before
	// the outage was noticed) opens consistently on both keyrings.
	a := keyBytes(t, mustGet(t, fresh, "uncached"))
	b := keyBytes(t, mustGet(t, k, "uncached"))
	if !bytes.Equal(a, b) {
		t.Fatal("keyrings disagree on the key created after the outage")
	}
	if err := k.Ready(t.Context()); err != nil {
		t.Fatalf("Ready after the outage: %v", err)
	}
}
