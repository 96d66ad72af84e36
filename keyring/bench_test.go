package keyring_test

// Benchmarks. Compare runs with benchstat:
//
//	go test ./keyring -run '^$' -bench . -count 8 > new.txt && benchstat old.txt new.txt
//
// Each benchmark has a baseline sub-benchmark measured in the same run. The Real* benchmarks
// start three local-kms processes and dynalite (skipped under -short, like every integration test).

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/store"
)

func BenchmarkGetCacheHit(b *testing.B) {
	e := newEnv(b, 3)
	k := e.keyring(b, keyring.Options{Now: time.Now})
	ctx := context.Background()
	mustGet(b, k, "hot-key")
	b.Run("baseline=mutex-map", func(b *testing.B) {
		// The floor for a thread-safe LRU cache: a mutex-guarded map lookup.
		var mu sync.Mutex
		m := map[string]keyring.DataKey{"hot-key": mustGet(b, k, "hot-key")}
		b.ReportAllocs()
		for b.Loop() {
			mu.Lock()
			_ = m["hot-key"]
			mu.Unlock()
		}
	})
	b.Run("keyring", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := k.Get(ctx, "hot-key"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("keyring-maxstale", func(b *testing.B) {
		// Stale-if-error on: the hit path is the same.
		ks := e.keyring(b, keyring.Options{Now: time.Now, MaxStale: time.Hour})
		mustGet(b, ks, "hot-key")
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ks.Get(ctx, "hot-key"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("keyring-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := k.Get(ctx, "hot-key"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkGetMiss(b *testing.B) {
	e := newEnv(b, 3)
	mustGet(b, e.keyring(b, keyring.Options{}), "k")
	k := e.keyring(b, keyring.Options{CacheTTL: -1}) // every Get reads the store and unwraps
	ctx := context.Background()
	rec, _ := e.st.Get(ctx, "k")
	blob := rec.Versions[0].Wrapped["r1"].Blob
	encCtx := keyring.EncryptionContext("k", 1)
	b.Run("baseline=region-decrypt", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.fakes[0].Decrypt(ctx, blob, encCtx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("keyring", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			dk, err := k.Get(ctx, "k")
			if err != nil {
				b.Fatal(err)
			}
			dk.Secret.Wipe()
		}
	})
}

func BenchmarkCreate(b *testing.B) {
	e := newEnv(b, 3)
	k := e.keyring(b, keyring.Options{CacheTTL: -1})
	ctx := context.Background()
	encCtx := keyring.EncryptionContext("k", 1)
	b.Run("baseline=generate+2-encrypts", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			pt, _, err := e.fakes[0].GenerateDataKey(ctx, encCtx)
			if err != nil {
				b.Fatal(err)
			}
			for _, f := range e.fakes[1:] {
				if _, err := f.Encrypt(ctx, pt, encCtx); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	var n atomic.Int64
	b.Run("keyring", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			dk, err := k.Get(ctx, fmt.Sprintf("new-%d", n.Add(1)))
			if err != nil {
				b.Fatal(err)
			}
			dk.Secret.Wipe()
		}
	})
}

// BenchmarkRealColdGet measures a cold read (record in DynamoDB, cache empty) against three real
// local-kms regions, and reports KMS calls per read. Baseline: what the original RKMS did,
// decrypting the copy in all three regions (in parallel).
func BenchmarkRealColdGet(b *testing.B) {
	e := newRealEnvB(b)
	const ids = 200
	w, _ := keyring.New(e.st, e.regions, keyring.Options{CreateRate: -1})
	defer w.Close()
	for i := range ids {
		mustGet(b, w, fmt.Sprintf("cold-%d", i))
	}
	ctx := context.Background()
	b.Run("baseline=decrypt-in-all-3", func(b *testing.B) {
		rec := mustRecord(b, e.st, "cold-0")
		encCtx := keyring.EncryptionContext("cold-0", 1)
		b.ReportAllocs()
		for b.Loop() {
			var wg sync.WaitGroup
			for _, r := range e.regions {
				wg.Go(func() {
					if _, err := r.Decrypt(ctx, rec.Versions[0].Wrapped[r.Name()].Blob, encCtx); err != nil {
						b.Error(err)
					}
				})
			}
			wg.Wait()
		}
		b.ReportMetric(3, "kms-calls/op")
	})
	b.Run("baseline=store-read", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			mustRecord(b, e.st, "cold-0")
		}
	})
	b.Run("keyring", func(b *testing.B) {
		k, _ := keyring.New(e.st, e.regions, keyring.Options{CacheTTL: -1})
		defer k.Close()
		k.SetWipeGrace(0)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			dk, err := k.Get(ctx, fmt.Sprintf("cold-%d", i%ids))
			if err != nil {
				b.Fatal(err)
			}
			dk.Secret.Wipe()
			i++
		}
		total, _ := kmsCalls(k)
		b.ReportMetric(float64(total)/float64(i), "kms-calls/op")
	})
}

// BenchmarkRealCreate measures creating a key (GenerateDataKey in one region, Encrypt in the two
// others in parallel, DynamoDB conditional put). Baseline: one Encrypt in each region in
// parallel, i.e. the slowest region's single Encrypt.
func BenchmarkRealCreate(b *testing.B) {
	e := newRealEnvB(b)
	ctx := context.Background()
	b.Run("baseline=slowest-single-encrypt", func(b *testing.B) {
		pt := make([]byte, 32)
		encCtx := keyring.EncryptionContext("x", 1)
		b.ReportAllocs()
		for b.Loop() {
			var wg sync.WaitGroup
			for _, r := range e.regions {
				wg.Go(func() {
					if _, err := r.Encrypt(ctx, pt, encCtx); err != nil {
						b.Error(err)
					}
				})
			}
			wg.Wait()
		}
	})
	var n atomic.Int64
	b.Run("baseline=store-miss+create", func(b *testing.B) {
		w, _ := keyring.New(e.st, e.regions, keyring.Options{CreateRate: -1})
		defer w.Close()
		rec := mustRecord(b, e.st, mustGet(b, w, "template").ID)
		b.ReportAllocs()
		for b.Loop() {
			id := fmt.Sprintf("plain-%d", n.Add(1))
			if _, err := e.st.Get(ctx, id); err == nil {
				b.Fatal("record exists")
			}
			r := rec.Clone()
			r.ID = id
			if err := e.st.Create(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("keyring", func(b *testing.B) {
		k, _ := keyring.New(e.st, e.regions, keyring.Options{CacheTTL: -1})
		defer k.Close()
		k.SetWipeGrace(0)
		b.ReportAllocs()
		for b.Loop() {
			dk, err := k.Get(ctx, fmt.Sprintf("create-%d", n.Add(1)))
			if err != nil {
				b.Fatal(err)
			}
			dk.Secret.Wipe()
		}
	})
}

var _ keyring.Store = (*store.Memory)(nil)
