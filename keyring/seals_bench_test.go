package keyring_test

import (
	"testing"

	"github.com/rkms/rkms/keyring"
)

// BenchmarkReserveSeals is the per-value cost of seal counting on the hot path (a block is
// reserved, so no store call): compare with -bench ReserveSeals across changes with benchstat.
// "off" is MaxSeals 0 (counting disabled).
func BenchmarkReserveSeals(b *testing.B) {
	for _, tc := range []struct {
		name     string
		maxSeals uint64
	}{{"off", 0}, {"on", 1 << 40}} {
		b.Run(tc.name, func(b *testing.B) {
			e := newEnv(b, 1)
			k := e.keyring(b, keyring.Options{MaxSeals: tc.maxSeals})
			dk := mustGet(b, k, "t1")
			ctx := b.Context()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := k.ReserveSeals(ctx, "t1", dk.Version, 1); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
