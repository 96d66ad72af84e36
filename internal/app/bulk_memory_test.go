package app

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rkms/rkms/internal/testing/bulkgen"
)

// peakHeap runs fn while sampling the bytes of live and not yet swept heap objects, and returns
// the largest sample above the heap at the start (after a GC).
func peakHeap(fn func()) uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	runtime.GC()
	base := read()
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			if v := read(); v > base && v-base > peak.Load() {
				peak.Store(v - base)
			}
			select {
			case <-done:
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
	})
	fn()
	close(done)
	wg.Wait()
	return peak.Load()
}

// TestBulkMemoryBounded: sealing an NDJSON stream ten times bigger does not take more heap.
// The input is generated as it is read (never held whole) and the output discarded, so the
// heap holds only what the pipeline keeps: a bounded number of batches. An implementation that
// buffered its input or output would hold tens of megabytes more for the bigger stream.
func TestBulkMemoryBounded(t *testing.T) {
	cfg, _ := bulkConfig(t)
	seal := func(size int64) (peak uint64) {
		pr, pw := io.Pipe()
		go func() {
			_, _, err := bulkgen.Write(pw, size, 3)
			pw.CloseWithError(err)
		}()
		var stderr strings.Builder
		code := 0
		peak = peakHeap(func() {
			code = Main(context.Background(), []string{"seal", "--config", cfg, "--policy", "bulk", "--format", "ndjson", "-j", "2", "--no-progress"},
				pr, io.Discard, &stderr)
		})
		if code != 0 || !strings.Contains(stderr.String(), " 0 failed") {
			t.Fatalf("seal of %d bytes: exit %d: %s", size, code, stderr.String())
		}
		return peak
	}
	seal(1 << 20) // warm up: the keyring and its keys
	small := seal(3 << 20)
	big := seal(30 << 20)
	t.Logf("peak heap above the start: %.1f MiB for 3 MiB of input, %.1f MiB for 30 MiB", float64(small)/(1<<20), float64(big)/(1<<20))
	const bound = 48 << 20
	if big > bound || big > small+16<<20 {
		t.Fatalf("peak heap %s for 30 MiB of input, %s for 3 MiB: want under %d MiB and within 16 MiB of each other",
			fmtMiB(big), fmtMiB(small), bound>>20)
	}
}

func fmtMiB(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
