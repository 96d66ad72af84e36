package keyring

import (
	"context"
	"errors"
	"time"
)

// Class is what kind of failure an error from the keyring is: what the caller can do about it.
// It is the one classification of keyring errors; each edge (the ext_proc server, the admin
// HTTP API, the gRPC key API, the audit log) maps a Class to its own status in one table.
type Class int

const (
	// ClassInternal: anything else (every region refused, a wiped key, a bug). Not the
	// caller's fault and not known to pass.
	ClassInternal Class = iota
	// ClassInvalid: [ErrInvalidID]. The caller's fault.
	ClassInvalid
	// ClassNotFound: [ErrNotFound].
	ClassNotFound
	// ClassLimited: [ErrCreateLimited]; [RetryAfter] says when to try again.
	ClassLimited
	// ClassUnavailable: [ErrUnavailable] or context.DeadlineExceeded. Retrying later may succeed.
	ClassUnavailable
	// ClassCanceled: context.Canceled. The caller went away.
	ClassCanceled
	// ClassDeleted: [ErrDeleted]. The id was deleted; only an explicit re-create brings it back.
	ClassDeleted
	// ClassExists: [ErrExists]. An explicit create of an id that has a key.
	ClassExists
	// ClassRetired: [ErrVersionRetired]. The version was retired on purpose; it will not open.
	ClassRetired
)

var classNames = [...]string{"internal", "invalid", "not_found", "limited", "unavailable", "canceled", "deleted", "exists", "retired"}

func (c Class) String() string {
	if c < 0 || int(c) >= len(classNames) {
		return "unknown"
	}
	return classNames[c]
}

// ClassOf classifies a non-nil error returned by the keyring or by its caller's context. An error that is both unavailable and canceled (a region call cut short by the caller) is
// ClassUnavailable.
func ClassOf(err error) Class {
	switch {
	case errors.Is(err, ErrInvalidID), errors.Is(err, ErrInvalidVersion):
		return ClassInvalid
	case errors.Is(err, ErrDeleted): // before ErrNotFound, which it wraps
		return ClassDeleted
	case errors.Is(err, ErrExists):
		return ClassExists
	case errors.Is(err, ErrVersionRetired):
		return ClassRetired
	case errors.Is(err, ErrNotFound):
		return ClassNotFound
	case errors.Is(err, ErrCreateLimited):
		return ClassLimited
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return ClassUnavailable
	case errors.Is(err, context.Canceled):
		return ClassCanceled
	default:
		return ClassInternal
	}
}

// RetryAfter is how long the caller of a [ClassLimited] error should wait: the
// [*CreateLimitedError]'s delay, at least one second (one second when err carries none).
func RetryAfter(err error) time.Duration {
	retry := time.Second
	if cle := (*CreateLimitedError)(nil); errors.As(err, &cle) {
		retry = max(retry, cle.RetryAfter)
	}
	return retry
}
