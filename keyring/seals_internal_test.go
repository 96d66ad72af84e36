package keyring

import (
	"errors"
	"reflect"
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

// TestBudgetSlotsNotReachedLate: a budget's slot is reused for another key once the budget is
// dropped (past max) or moved to a new version, and a reservation that ends after that adds
// its seals to nobody: never to the key that took the slot, nor to the new version (seals are
// reserved in the store per version: counting one version's block for another, or one key's
// for another, would let a version pass max_seals).
func TestBudgetSlotsNotReachedLate(t *testing.T) {
	bs := newBudgets(1, nil)
	take := func(id string, v uint32, need int64) (*pendingReservation, bool, bool, error) {
		t.Helper()
		return bs.take(id, v, need, 0)
	}
	pa, start, took, err := take("a", 1, 1)
	if err != nil || !start || took || pa == nil {
		t.Fatalf("first take of a: %v %v %v %v, want a reservation to start and nothing taken", pa, start, took, err)
	}
	// b takes a's slot (max 1): a's budget is dropped.
	if _, _, _, err := take("b", 1, 1); err != nil {
		t.Fatal(err)
	}
	if len(bs.slots) != 1 || len(bs.index) != 1 {
		t.Fatalf("%d slots, %d budgets: want the slot reused", len(bs.slots), len(bs.index))
	}
	bs.add("a", 1, 1000) // a's reservation ends late
	bs.finish("a", pa, nil, false)
	if bs.has("b", 1, 1) || bs.has("a", 1, 1) {
		t.Fatal("a's late block reached a budget")
	}
	// A new version of b: its old version's block goes nowhere.
	bs.add("b", 1, 1000)
	if !bs.has("b", 1, 1000) {
		t.Fatal("b's own block was not added")
	}
	if _, _, _, err := take("b", 2, 1); err != nil {
		t.Fatal(err)
	}
	bs.add("b", 1, 1000)
	if bs.has("b", 2, 1) {
		t.Fatal("version 1's block counted for version 2")
	}
	if _, _, _, err := take("b", 1, 1); !errors.Is(err, ErrSealLimit) {
		t.Fatalf("take of a rotated version: %v, want ErrSealLimit", err)
	}
	// A spent version's budget is dropped and its slot freed.
	p2, _, _, _ := take("b", 2, 1)
	bs.finish("b", p2, ErrSealLimit, true)
	if len(bs.index) != 0 || len(bs.free) != 1 || len(bs.pending) != 0 {
		t.Fatalf("%d budgets, %d free slots, %d pending after a spent version: want 0, 1, 0", len(bs.index), len(bs.free), len(bs.pending))
	}
}

// TestSealBudgetPointerFree: the budgets' slice must hold no pointer, or the collector scans
// all of it on every cycle (BenchmarkGCWarmKeyring; BENCHMARKS.md, the POST's tail latency).
func TestSealBudgetPointerFree(t *testing.T) {
	var walk func(reflect.Type) bool
	walk = func(ty reflect.Type) bool {
		switch ty.Kind() {
		case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
			return true
		case reflect.Array:
			return walk(ty.Elem())
		case reflect.Struct:
			for i := range ty.NumField() {
				if !walk(ty.Field(i).Type) {
					return false
				}
			}
			return true
		}
		return false
	}
	if !walk(reflect.TypeFor[sealBudget]()) {
		t.Error("sealBudget holds a pointer (or a string, slice, map, interface, channel)")
	}
}
