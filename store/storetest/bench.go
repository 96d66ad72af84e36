package storetest

import (
	"fmt"
	"testing"

	"github.com/rkms/rkms/store"
)

// Benchmark measures Get, Update and Create on the stores newStore returns (one per
// sub-benchmark), with a record of three versions in two regions. Run it for several backends in
// one test binary, with the in-memory store as the baseline, and compare with benchstat:
//
//	go test -run '^$' -bench . -count 6 ./store/embedded/ | tee new.txt && benchstat new.txt
func Benchmark(b *testing.B, newStore func(b *testing.B) store.Store) {
	b.Run("Get", func(b *testing.B) {
		s := newStore(b)
		rec := benchRecord("bench/get")
		if err := s.Create(b.Context(), rec); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Get(b.Context(), rec.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Update", func(b *testing.B) {
		s := newStore(b)
		rec := benchRecord("bench/update")
		if err := s.Create(b.Context(), rec); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Update(b.Context(), rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Create", func(b *testing.B) {
		s := newStore(b)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := s.Create(b.Context(), benchRecord(fmt.Sprintf("bench/create/%d", i))); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func benchRecord(id string) *store.Record {
	r := sampleRecord(id, 0)
	v := r.Versions[0]
	v.Number = 3
	r.Versions = append(r.Versions, v)
	r.Current = 3
	return r
}
