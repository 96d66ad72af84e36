package dynamodb_test

import (
	"testing"

	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/store"
	"github.com/rkms/rkms/store/dynamodb"
	"github.com/rkms/rkms/store/storetest"
)

// BenchmarkStore compares the DynamoDB store against dynalite on loopback with the in-memory
// baseline: the difference is the SDK's and the emulator's cost per call, not DynamoDB's.
func BenchmarkStore(b *testing.B) {
	testenv.Integration(b)
	b.Run("memory", func(b *testing.B) {
		storetest.Benchmark(b, func(b *testing.B) store.Store { return store.NewMemory() })
	})
	d := testenv.StartDynalite(b)
	b.Run("dynalite", func(b *testing.B) {
		storetest.Benchmark(b, func(b *testing.B) store.Store {
			s, err := dynamodb.New(b.Context(), dynamodb.Config{Table: "bench", Region: region,
				Endpoints: []string{d.Endpoint}, CreateTable: true}, testenv.AWSConfig(b, region))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			return s
		})
	})
}
