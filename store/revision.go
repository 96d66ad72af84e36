package store

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
)

// InitialRevisionLimit bounds the revisions [Store.Create] assigns: each is in
// [1, InitialRevisionLimit).
const InitialRevisionLimit = 1 << 62

// MaxRevision is the largest revision a record can have. A record at MaxRevision cannot be updated
// (its next revision does not exist), so [NextRevision] and every [Store.Update] refuse it with
// [ErrInvalid]. Starting below 2^62 and adding one per Update, no record ever gets there.
const MaxRevision = math.MaxInt64

// NewRevision returns a fresh starting revision for Create: uniformly random in
// [1, InitialRevisionLimit), read from crypto/rand, so unpredictable and, with overwhelming
// probability, unlike any revision an earlier record for the same id had.
func NewRevision() int64 {
	var b [8]byte
	for {
		// crypto/rand.Read never returns an error: it crashes the program instead (Go 1.24+).
		_, _ = rand.Read(b[:])
		if r := int64(binary.BigEndian.Uint64(b[:]) >> 2); r != 0 { // 62 random bits, not 0
			return r
		}
	}
}

// NextRevision returns the revision that an Update of a record at rev stores: rev+1. It returns an
// error wrapping [ErrInvalid] if rev is [MaxRevision], which has no successor.
func NextRevision(rev int64) (int64, error) {
	if rev >= MaxRevision {
		return 0, fmt.Errorf("revision %d has no successor: %w", rev, ErrInvalid)
	}
	return rev + 1, nil
}
