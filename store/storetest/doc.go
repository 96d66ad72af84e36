// Package storetest is the conformance suite that every [store.Store] implementation must pass.
//
// # Use
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openMyStore(t) })
//	}
//
// [Run] calls newStore once per subtest. The factory may return a fresh store each time or share
// one backend: every subtest uses its own key ids (derived from the subtest name), so subtests never
// see each other's records. The suite closes nothing; the factory registers cleanup with t.Cleanup.
//
// # What it checks
//
// The consistency and error contracts documented in package store: exact round trip of binary
// blobs, ErrNotFound/ErrExists/ErrConflict/ErrInvalid where the contract says, revisions assigned
// by the store (a fresh start in [1, 2^62) per Create, distinct across ids and re-creations, +1
// per Update; no test assumes a value), a stale Update after Delete and re-Create failing with
// ErrConflict and changing nothing (the ABA case), copy semantics in both directions,
// first-write-wins under 16 concurrent Creates, no lost update under concurrent compare-and-swap
// loops, cancelled contexts failing with ErrUnavailable and writing nothing, Ping, tombstones
// (Record.Deleted) round-tripping and turning live again, and List: paging with every limit down to
// one, prefixes, tombstones marked, deleted records gone, each page sorted, bad options refused.
//
// # Test hooks
//
// [Memory] ([NewMemory]) wraps the production store.Memory with what tests of code built on a
// Store need: call counters, a simulated outage and a hook that runs before each operation.
package storetest
