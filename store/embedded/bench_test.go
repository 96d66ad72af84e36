package embedded_test

import (
	"path/filepath"
	"testing"

	"github.com/rkms/rkms/store"
	"github.com/rkms/rkms/store/storetest"
)

// BenchmarkStore compares the bbolt store (fsync on every write) with the in-memory baseline.
func BenchmarkStore(b *testing.B) {
	b.Run("memory", func(b *testing.B) {
		storetest.Benchmark(b, func(b *testing.B) store.Store { return store.NewMemory() })
	})
	b.Run("embedded", func(b *testing.B) {
		storetest.Benchmark(b, func(b *testing.B) store.Store {
			s, err := embeddedOpen(filepath.Join(b.TempDir(), "keys.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			return s
		})
	})
}
