package keyservice

import (
	"context"
	"errors"
	"fmt"

	"github.com/rkms/rkms/internal/access"
	"github.com/rkms/rkms/internal/audit"
	"github.com/rkms/rkms/keyring"
)

// OpReserveSeals is the audit operation of [Session.ReserveSeals].
const OpReserveSeals = "reserve_seals"

// SealReserver is what [Session.ReserveSeals] needs from the keyring: its seal count
// (keyring.rotation.max_seals). Keys that do not implement it count no seals.
type SealReserver interface {
	// ReserveSeals counts n seals under version v of id against the version's limit, at most
	// SealBlock at once (keyring.ErrSealLimit: the version may seal no more).
	ReserveSeals(ctx context.Context, id string, v uint32, n int) error
	// SealBlock is the most one ReserveSeals may ask for; 0 when no seals are counted.
	SealBlock() int
}

var _ SealReserver = (*keyring.Keyring)(nil)

// Reservation is the outcome of [Session.ReserveSeals].
type Reservation struct {
	// Reserved is how many values the caller may seal under the version: at most what it
	// asked for and one block of the keyring's; what it asked for when no seals are counted.
	Reserved int
	// Limit says that the version may seal no more (it was, or is being, rotated): take the
	// current key again. Reserved is 0 then.
	Limit bool
	// Counted is false when the keyring counts no seals (keyring.rotation.max_seals 0).
	Counted bool
}

// ReserveSeals counts n seals that the caller will make itself under version v of id (rkms seal
// --server seals with a key it read from the admin API) against the version's seal limit, as
// rkms's own seals are: each replica reserves blocks of them in the store. It needs the read
// right (the caller has the key already) and is audited as reserve_seals with v. n is capped at
// one block of the keyring's. Errors are *Error.
func (ss *Session) ReserveSeals(ctx context.Context, id string, v uint32, n int) (Reservation, error) {
	ctx = audit.WithWho(ctx, ss.who)
	if err := keyring.ValidateID(id); err != nil {
		ss.s.audit.Record(ctx, OpReserveSeals, id, v, err)
		return Reservation{}, &Error{Class: InvalidArgument, Msg: msgIDRule, Err: err}
	}
	if !ss.p.Allows(access.Read, id) {
		ss.s.audit.Record(ctx, OpReserveSeals, id, v, audit.ErrForbidden)
		ss.s.onForbidden(ss.p.Name, OpReserveSeals)
		return Reservation{}, &Error{Class: Forbidden, Msg: forbiddenMsg(access.Read),
			Err: fmt.Errorf("credential %q, %s: %w", ss.p.Name, OpReserveSeals, audit.ErrForbidden)}
	}
	if n < 1 || v < 1 {
		err := fmt.Errorf("reserve %d seals of version %d: %w", n, v, errBadReservation)
		ss.s.audit.Record(ctx, OpReserveSeals, id, v, err)
		return Reservation{}, &Error{Class: InvalidArgument, Msg: "count and version must be at least 1", Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, ss.s.timeout)
	defer cancel()
	sr, counted := ss.s.keys.(SealReserver)
	counted = counted && sr.SealBlock() > 0
	// Only the current version may take seals, and a version above it must not start a budget
	// (it would refuse the current version's seals on this replica until its reservation fails).
	cur, err := ss.s.keys.Lookup(ctx, id)
	switch {
	case err != nil:
		ss.s.audit.Record(ctx, OpReserveSeals, id, v, err)
		return Reservation{}, ss.fail(OpReserveSeals, err)
	case v > cur.Version:
		err := fmt.Errorf("reserve seals of version %d, current %d: %w", v, cur.Version, errBadReservation)
		ss.s.audit.Record(ctx, OpReserveSeals, id, v, err)
		return Reservation{}, &Error{Class: InvalidArgument, Msg: "the version is above the key's current version", Err: err}
	case v < cur.Version:
		// Answered, not failed: the caller takes the current key (audited as ok, as a limit).
		ss.s.audit.Record(ctx, OpReserveSeals, id, v, nil)
		return Reservation{Limit: true, Counted: counted}, nil
	}
	if !counted {
		ss.s.audit.Record(ctx, OpReserveSeals, id, v, nil)
		return Reservation{Reserved: n}, nil
	}
	n = min(n, sr.SealBlock())
	err = sr.ReserveSeals(ctx, id, v, n)
	if errors.Is(err, keyring.ErrSealLimit) {
		ss.s.audit.Record(ctx, OpReserveSeals, id, v, nil)
		return Reservation{Limit: true, Counted: true}, nil
	}
	ss.s.audit.Record(ctx, OpReserveSeals, id, v, err)
	if err != nil {
		return Reservation{}, ss.fail(OpReserveSeals, err)
	}
	return Reservation{Reserved: n, Counted: true}, nil
}

// errBadReservation: ReserveSeals with a count or version below 1, or a version above the
// current one (audited as invalid, as a bad version is).
var errBadReservation = fmt.Errorf("bad seal reservation: %w", keyring.ErrInvalidVersion)
