package load

import (
	"context"
	"runtime"
	"runtime/metrics"
	"strconv"
	"testing"
	"time"
)

// BenchmarkGCWarmKeyring is the garbage collector's cost of a warmed rkms (the rig's keyring
// and server with -keys tenants cached, the store released as after the rig's warm-up): the
// CPU one full cycle spends marking it (runtime/metrics /cpu/classes/gc/mark, including idle
// marking) and the wall time of runtime.GC. Through Envoy a cycle's mark work arrives as a
// burst that competes with Envoy for the machine's cores (BENCHMARKS.md, "Issue 18 results").
//
//	go test -run '^$' -bench GCWarmKeyring -benchtime 20x ./internal/testing/load/
func BenchmarkGCWarmKeyring(b *testing.B) {
	for _, keys := range []int{10000, 100000} {
		b.Run(strconv.Itoa(keys)+"keys", func(b *testing.B) {
			r, err := NewRig(b.TempDir(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			if err := r.Warm(context.Background(), keys); err != nil {
				b.Fatal(err)
			}
			r.Store.Release()
			runtime.GC()
			samples := []metrics.Sample{{Name: "/cpu/classes/gc/mark/dedicated:cpu-seconds"},
				{Name: "/cpu/classes/gc/mark/idle:cpu-seconds"}, {Name: "/cpu/classes/gc/mark/assist:cpu-seconds"},
				{Name: "/gc/heap/live:bytes"}}
			read := func() (float64, uint64) {
				metrics.Read(samples)
				return samples[0].Value.Float64() + samples[1].Value.Float64() + samples[2].Value.Float64(), samples[3].Value.Uint64()
			}
			m0, _ := read()
			t0 := time.Now()
			b.ResetTimer()
			for range b.N {
				runtime.GC()
			}
			b.StopTimer()
			wall := time.Since(t0)
			m1, live := read()
			b.ReportMetric(float64(wall.Microseconds())/float64(b.N), "wall-µs/cycle")
			b.ReportMetric((m1-m0)*1e6/float64(b.N), "mark-cpu-µs/cycle")
			b.ReportMetric(float64(live)/(1<<20), "live-MiB")
			runtime.KeepAlive(r)
		})
	}
}
