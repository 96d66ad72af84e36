package store

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Errors returned by every [Store] implementation. Callers branch on them with errors.Is.
var (
	// ErrNotFound: no record exists for the id.
	ErrNotFound = errors.New("key record not found")
	// ErrExists: Create lost the first-write-wins race; a record already exists for the id.
	ErrExists = errors.New("key record already exists")
	// ErrConflict: Update's expected revision did not match the stored record (another writer
	// updated or deleted and re-created it in between). Re-read and retry.
	ErrConflict = errors.New("key record changed concurrently")
	// ErrUnavailable: the store could not be reached or did not answer in time. The operation
	// may or may not have taken effect; re-read before assuming either.
	ErrUnavailable = errors.New("key store unavailable")
	// ErrInvalid: the id or record given to a store is unusable (nil record, empty id, id longer
	// than [MaxIDLen] bytes or not valid UTF-8, an Update at [MaxRevision]), or the backend
	// rejected the record (for example DynamoDB's 400 KB item limit). Nothing was read or written.
	ErrInvalid = errors.New("invalid key record or id")
	// ErrCorrupt: a stored record could not be decoded: it is damaged or was written in a newer,
	// unsupported format. Callers must fail closed; retrying does not help.
	ErrCorrupt = errors.New("stored key record is corrupt or in an unsupported format")
)

// MaxIDLen is the longest id, in bytes, that any store accepts. The keyring allows shorter ids
// still; this bound only keeps every backend's key limits (DynamoDB: 2048 bytes) out of reach.
const MaxIDLen = 1024

// CheckID returns an error wrapping [ErrInvalid] if no store can hold a record for id.
func CheckID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("key id is empty: %w", ErrInvalid)
	case len(id) > MaxIDLen:
		return fmt.Errorf("key id is %d bytes, more than %d: %w", len(id), MaxIDLen, ErrInvalid)
	case !utf8.ValidString(id):
		return fmt.Errorf("key id is not valid UTF-8: %w", ErrInvalid)
	}
	return nil
}

// CheckRecord returns an error wrapping [ErrInvalid] if rec cannot be written by a store:
// rec is nil or its ID fails [CheckID].
func CheckRecord(rec *Record) error {
	if rec == nil {
		return fmt.Errorf("key record is nil: %w", ErrInvalid)
	}
	return CheckID(rec.ID)
}

// Record is everything stored for one key id: its numbered versions, each a data key (DEK)
// wrapped under a KMS key in several regions. A Record never holds plaintext key material.
type Record struct {
	// ID is the key id, validated by the keyring before it reaches a store.
	ID string
	// Revision is assigned by the store: a new random starting revision when created (see
	// [NewRevision]), incremented by one by each Update. It is the optimistic-concurrency token
	// for Update. Revisions of a re-created record never match those of a deleted one (with
	// overwhelming probability), so a copy read before a delete can never overwrite the record
	// created after it. Callers compare revisions for equality only and assume no value.
	Revision int64
	// Current is the version number that new encryptions use.
	Current uint32
	// Versions holds every version, in ascending Number order.
	Versions []Version
	// Deleted, when not zero, makes the record a tombstone: the key id was deleted at that time
	// (UTC) and its versions were dropped. Stores keep it like any record; the keyring refuses to
	// serve or silently re-create a tombstoned id (see package keyring). Records written before
	// tombstones existed have no Deleted and are live.
	Deleted time.Time
	// MinDecryptVersion is the lowest version that may still be opened: versions numbered below
	// it are retired and the keyring refuses them. 0 and 1 leave every version open; records
	// written before version lifecycle existed have 0. It is never above Current.
	MinDecryptVersion uint32
}

// IsTombstone reports whether r records a deleted key id ([Record.Deleted] is set).
func (r *Record) IsTombstone() bool { return !r.Deleted.IsZero() }

// Version is one generation of a key id's data key.
type Version struct {
	// Number starts at 1 and increases by one with each rotation.
	Number uint32
	// Created is when the version was generated (UTC, second precision is enough).
	Created time.Time
	// Wrapped holds the DEK wrapped by each region that has a copy, by region name.
	Wrapped map[string]Wrapped
	// Missing lists the regions that were configured but unavailable when the version was
	// created (or rotated in); the keyring repairs them later and removes them from this list.
	Missing []string
	// Retired, when not zero, is when the version was retired (UTC): it fell below the record's
	// MinDecryptVersion. A retired version refuses to open; its copies are destroyed once it has
	// been retired longer than the keyring's retire grace. Lowering MinDecryptVersion before
	// then clears it again.
	Retired time.Time
	// Destroyed, when not zero, is when the version's wrapped copies were deleted (UTC):
	// Wrapped is then empty and the version can never be opened again. The entry stays so that
	// its number is never reused and its history stays visible.
	Destroyed time.Time
	// Seals counts the seals reserved under this version by every replica together (each
	// replica reserves blocks before it seals, so the real count is at most this). The keyring
	// rotates before it would pass its limit.
	Seals uint64
	// Branch, when its KeyID is set, says that the version's data key is wrapped locally under
	// a branch key (the keyring's hierarchical mode) instead of by KMS regions: Wrapped is then
	// empty and Missing unused. A record says itself how each version is wrapped, so records of
	// both kinds (and versions of both kinds in one record) read side by side. Records written
	// before hierarchical mode existed have no Branch.
	Branch BranchWrap
}

// BranchWrap is a data key wrapped under one version of a branch key (package keyring,
// hierarchical mode). The store keeps it opaque; the keyring parses and authenticates Blob.
type BranchWrap struct {
	// KeyID is the branch key's id (a reserved keyring id, e.g. "_rkms.branch.0").
	KeyID string
	// Version is the branch key version the data key is wrapped under (1 or more).
	Version uint32
	// Blob is the wrapped data key (format: keyring's WRAP.md).
	Blob []byte
}

// IsBranchWrapped reports whether v's data key is wrapped under a branch key ([Version.Branch]).
func (v *Version) IsBranchWrapped() bool { return v.Branch.KeyID != "" }

// CheckBranch returns an error wrapping [ErrCorrupt] unless v's branch wrap is absent or well
// formed: a key id, a version of 1 or more and a blob, on a version holding no KMS copy and not
// destroyed. Every store decoder calls it, so a record is never half one kind and half the other.
func (v *Version) CheckBranch() error {
	b := v.Branch
	if b.KeyID == "" {
		if b.Version != 0 || len(b.Blob) > 0 {
			return fmt.Errorf("version %d: branch wrap without a branch key id: %w", v.Number, ErrCorrupt)
		}
		return nil
	}
	switch {
	case b.Version == 0:
		return fmt.Errorf("version %d: branch wrap of version 0: %w", v.Number, ErrCorrupt)
	case len(b.Blob) == 0:
		return fmt.Errorf("version %d: branch wrap without a blob: %w", v.Number, ErrCorrupt)
	case len(v.Wrapped) > 0:
		return fmt.Errorf("version %d: both branch-wrapped and wrapped by kms regions: %w", v.Number, ErrCorrupt)
	case v.IsDestroyed():
		return fmt.Errorf("version %d: destroyed but holds a branch wrap: %w", v.Number, ErrCorrupt)
	}
	return nil
}

// IsRetired reports whether v is retired or destroyed.
func (v *Version) IsRetired() bool { return !v.Retired.IsZero() || v.IsDestroyed() }

// IsDestroyed reports whether v's wrapped copies were deleted.
func (v *Version) IsDestroyed() bool { return !v.Destroyed.IsZero() }

// Wrapped is one region's KMS ciphertext of a DEK.
type Wrapped struct {
	// KeyID is the KMS key (ARN or id) that wrapped the DEK.
	KeyID string
	// Blob is the KMS ciphertext blob.
	Blob []byte
}

// Store persists key records. Implementations must be safe for concurrent use by many replicas:
// Create is first-write-wins and Update is a compare-and-swap on Revision.
//
// Every method honours ctx (deadline and cancellation); a store that cannot answer returns an
// error wrapping [ErrUnavailable].
type Store interface {
	// Get returns a copy of the record for id with a strongly consistent read, or [ErrNotFound].
	Get(ctx context.Context, id string) (*Record, error)
	// Create stores rec if no record exists for rec.ID, or returns [ErrExists] and stores
	// nothing. On success it sets rec.Revision to a new random starting revision ([NewRevision];
	// the revision given is ignored); revisions of a re-created record never match those of a
	// deleted one (with overwhelming probability).
	Create(ctx context.Context, rec *Record) error
	// Update replaces the record for rec.ID if its stored revision equals rec.Revision, and then
	// sets rec.Revision to the new revision, rec.Revision+1. It returns [ErrConflict] if the
	// revision differs, [ErrNotFound] if no record exists, or [ErrInvalid] (nothing read or
	// written) if rec.Revision is [MaxRevision].
	Update(ctx context.Context, rec *Record) error
	// Delete removes the record for id, or returns [ErrNotFound].
	Delete(ctx context.Context, id string) error
	// List returns one page of the stored ids (tombstones included, marked) that start with
	// opts.Prefix and come after opts.After, at most opts.Limit of them ([ListOptions]). An empty
	// [ListPage.Next] means the listing is complete. Errors wrap [ErrInvalid] for bad options
	// and [ErrUnavailable] as for every method.
	List(ctx context.Context, opts ListOptions) (ListPage, error)
	// Ping checks that the store is reachable (used by readiness checks).
	Ping(ctx context.Context) error
	// Close releases resources.
	Close() error
}

// Clone returns a deep copy of r, so that stores and caches never share mutable state with callers.
func (r *Record) Clone() *Record {
	if r == nil {
		return nil
	}
	c := *r
	c.Versions = make([]Version, len(r.Versions))
	for i, v := range r.Versions {
		nv := v
		nv.Wrapped = make(map[string]Wrapped, len(v.Wrapped))
		for k, w := range v.Wrapped {
			nv.Wrapped[k] = Wrapped{KeyID: w.KeyID, Blob: append([]byte(nil), w.Blob...)}
		}
		nv.Missing = append([]string(nil), v.Missing...)
		nv.Branch.Blob = append([]byte(nil), v.Branch.Blob...)
		c.Versions[i] = nv
	}
	return &c
}

// Version returns the version numbered n, or false.
func (r *Record) Version(n uint32) (Version, bool) {
	for _, v := range r.Versions {
		if v.Number == n {
			return v, true
		}
	}
	return Version{}, false
}

// MaxListLimit is the largest [ListOptions.Limit] a store accepts.
const MaxListLimit = 1000

// ListOptions selects one page of [Store.List].
type ListOptions struct {
	// Prefix keeps only ids that start with it; empty keeps all.
	Prefix string
	// After is the cursor of the page to read: empty for the first page, else the [ListPage.Next]
	// of the previous page. Treat it as opaque (today every store uses the last id it examined).
	After string
	// Limit bounds how many records the store examines for the page: 1..[MaxListLimit].
	// A page may hold fewer entries than Limit even when more follow (DynamoDB applies Prefix
	// after reading), and may even be empty with a non-empty Next.
	Limit int
}

// ListEntry is one id of a [ListPage].
type ListEntry struct {
	ID string
	// Deleted: the record is a tombstone ([Record.IsTombstone]).
	Deleted bool
}

// ListPage is one page of [Store.List]. Entries are sorted by id within the page. Memory and
// embedded stores list in id order across pages; DynamoDB lists in its scan order, which is
// unspecified across pages (each page is sorted, the listing as a whole is not).
type ListPage struct {
	Entries []ListEntry
	// Next is the cursor of the next page, empty when the listing is complete.
	Next string
}

// CheckListOptions returns an error wrapping [ErrInvalid] if no store can list with opts.
func CheckListOptions(opts ListOptions) error {
	if opts.Limit < 1 || opts.Limit > MaxListLimit {
		return fmt.Errorf("list limit %d is not in 1..%d: %w", opts.Limit, MaxListLimit, ErrInvalid)
	}
	if len(opts.Prefix) > MaxIDLen || len(opts.After) > MaxIDLen {
		return fmt.Errorf("list prefix or cursor longer than %d bytes: %w", MaxIDLen, ErrInvalid)
	}
	return nil
}
