// Package store defines where rkms keeps its key records, and the contract every backend meets.
//
// A [Store] persists one [Record] per key id. A record holds the key's numbered versions; each
// version is a data key (DEK) wrapped by KMS in one or more regions ([Wrapped]). A record never
// holds plaintext key material, so a store's contents are useless without KMS access, but they are
// still the only copy of every key: losing a record loses the data encrypted under it.
//
// Three implementations exist and all pass the conformance suite in package storetest:
//
//   - [Memory] ([NewMemory]): in process, for tests and single-process experiments. Tests that
//     inject failures or count calls wrap it with storetest.NewMemory.
//   - store/embedded: a single bbolt file, for one process on one machine.
//   - store/dynamodb: a DynamoDB table (optionally a global table), for many replicas in many regions.
//
// # Consistency contract
//
// Many rkms replicas share one store, so every implementation must give these guarantees:
//
//   - Get is strongly consistent: it returns the record as of the latest successful Create, Update
//     or Delete for that id (for DynamoDB, as seen by the region that answered; see store/dynamodb).
//   - Create is first-write-wins: of any number of concurrent Creates for one id, exactly one
//     succeeds and stores its record with a new starting revision; every other one returns
//     [ErrExists] and stores nothing. A caller that gets ErrExists must Get the winner's record
//     and use it.
//   - Update is a compare-and-swap on [Record.Revision]: it replaces the stored record only if the
//     stored revision equals rec.Revision, and the new revision is rec.Revision+1. Two concurrent
//     Updates from the same revision cannot both succeed, so no update is lost.
//   - Records are values: a store copies ([Record.Clone]) what it is given and what it returns, so
//     a caller mutating a record never changes what is stored, and vice versa.
//
// # Revisions
//
// Revisions are assigned by the store: Create sets a new random starting revision, uniform in
// [1, 2^62) from crypto/rand ([NewRevision]), and each Update adds 1 ([NextRevision]). Callers
// treat revisions as opaque tokens: they compare them for equality and assume no value.
//
// Random starts close an ABA hole. If Create always started at the same revision, a record
// deleted and re-created between a writer's Get and its Update (a background repair, a rotation)
// could be back at the very revision the writer read, the compare-and-swap would pass, and the
// stale record would overwrite the re-created one: the new key would be lost. With random starts,
// revisions of a re-created record never match those of a deleted one (with overwhelming
// probability: a stale revision matches a re-created record updated n times with probability at
// most (n+1)/2^62), so the stale Update fails with [ErrConflict].
//
// Revisions cannot overflow in practice (2^62 updates of one record), but an Update at
// [MaxRevision] fails with [ErrInvalid] rather than wrap around.
//
// # Error contract
//
// Callers branch with errors.Is on these sentinels, which implementations wrap with context:
//
//   - [ErrNotFound]: Get, Update or Delete of an id with no record.
//   - [ErrExists]: Create lost the first-write-wins race.
//   - [ErrConflict]: Update's revision was stale. Re-read, re-apply and retry.
//   - [ErrUnavailable]: the store could not be reached, did not answer in time, or the context was
//     cancelled or expired (the error then also wraps ctx.Err()). The operation may or may not have
//     taken effect: re-read before assuming either. Callers fail closed.
//   - [ErrInvalid]: the id or record is unusable ([CheckID], [CheckRecord]), or an Update's
//     revision has no successor ([NextRevision]); nothing was done.
//   - [ErrCorrupt]: a stored record could not be decoded. Callers fail closed; retrying does not help.
//
// A retried write whose first attempt took effect but whose answer was lost can surface as
// ErrExists (Create) or ErrConflict (Update) for the caller's own write. Both already require a
// re-read, which then shows the caller's record, so the contract holds.
//
// Errors never contain wrapped key blobs; they name the key id and the operation.
package store
