package keyring_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/rkms/rkms/keyring"
)

// BenchmarkRealColdGetModes measures a per-tenant cold read (plaintext not cached) in both
// modes in one run, against three real local-kms regions and dynalite: direct (store read + one
// KMS Decrypt), hierarchical without the wrapped-record cache (store read + local unwrap under
// the cached branch key) and hierarchical with it (local unwrap only). The plaintext cache keeps
// 2 keys while the reads cycle through 200 tenants, so every tenant read misses it while the
// branch key (touched by every read) stays. Compare runs with benchstat; the ratio of the
// direct and hierarchical ns/op is the figure of issue 19.
func BenchmarkRealColdGetModes(b *testing.B) {
	e := newRealEnvB(b)
	const ids = 200
	ctx := context.Background()
	for _, m := range []struct {
		name string
		opts keyring.Options
	}{
		{"direct", keyring.Options{}},
		{"hierarchical-store-read", keyring.Options{Mode: keyring.ModeHierarchical, WrappedTTL: -1}},
		{"hierarchical-wrapped-cached", keyring.Options{Mode: keyring.ModeHierarchical}},
	} {
		w := m.opts
		w.CreateRate = -1
		writer, err := keyring.New(e.st, e.regions, w)
		if err != nil {
			b.Fatal(err)
		}
		for i := range ids {
			mustGet(b, writer, fmt.Sprintf("%s-%d", m.name, i))
		}
		_ = writer.Close()
		b.Run("mode="+m.name, func(b *testing.B) {
			o := m.opts
			o.CacheMaxKeys = 2
			k, err := keyring.New(e.st, e.regions, o)
			if err != nil {
				b.Fatal(err)
			}
			defer k.Close()
			k.SetWipeGrace(0)
			for i := range ids { // warm the branch key and the wrapped records
				mustGet(b, k, fmt.Sprintf("%s-%d", m.name, i))
			}
			before, _ := kmsCalls(k)
			reads := k.Stats().StoreReads
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := k.Get(ctx, fmt.Sprintf("%s-%d", m.name, i%ids)); err != nil {
					b.Fatal(err)
				}
				i++
			}
			after, _ := kmsCalls(k)
			b.ReportMetric(float64(after-before)/float64(i), "kms-calls/op")
			b.ReportMetric(float64(k.Stats().StoreReads-reads)/float64(i), "store-reads/op")
		})
	}
}
