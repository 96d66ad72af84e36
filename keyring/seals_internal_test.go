package keyring

import (
	"testing"
	"unsafe"
)

// TestSealBudgetSmall: a replica holds one sealBudget per key that seals, up to the cache's size
// (100,000 keys by default), so its size is memory per key (BENCHMARKS.md, issue 5's memory
// target). With the key id and the reservation's state inline it took 80 bytes, 12.6 MB of heap
// with 100,000 keys.
func TestSealBudgetSmall(t *testing.T) {
	if n := unsafe.Sizeof(sealBudget{}); n > 32 {
		t.Errorf("sealBudget is %d bytes, want at most 32", n)
	}
}
