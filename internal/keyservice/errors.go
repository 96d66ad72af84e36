package keyservice

import (
	"errors"
	"fmt"
	"time"

	"github.com/rkms/rkms/keyring"
)

// Class is what kind of refusal or failure an [Error] is. It is a closed set: each transport
// maps every Class to its own status in one table (internal/admin's status, internal/keyapi's
// code).
type Class int

const (
	// Internal: anything not classed below. The cause is logged, never shown.
	Internal Class = iota
	// InvalidArgument: the key id (or the request naming it) is malformed.
	InvalidArgument
	// NotFound: the key does not exist.
	NotFound
	// Limited: the key would have to be created and the creation rate limit is exhausted;
	// [Error.RetryAfter] says when to try again.
	Limited
	// Unavailable: too few KMS regions, the store unreachable, or the per-call timeout passed.
	Unavailable
	// Canceled: the caller went away before the operation finished.
	Canceled
	// Unauthenticated: no bearer token, or the wrong one.
	Unauthenticated
	// Throttled: the caller's address failed authentication too often (internal/authlimit);
	// [Error.RetryAfter] says when its window ends.
	Throttled
	// Forbidden: the caller authenticated, but its credential does not allow the operation on
	// that key id (admin.credentials: allow, id_prefixes).
	Forbidden
	// Deleted: the key id was deleted; it is not re-created except by an explicit create with
	// recreate (keyring.ErrDeleted).
	Deleted
	// Exists: an explicit create of an id that has a key (keyring.ErrExists).
	Exists
	// AuthenticationFailed: a ciphertext did not verify under its key, label and context (a
	// wrong label or context, or modified bytes); it says nothing more (envelope.ErrAuthentication).
	// Only [Session.Rewrap]'s per-item errors carry it.
	AuthenticationFailed
)

var classNames = [...]string{"internal", "invalid_argument", "not_found", "limited", "unavailable",
	"canceled", "unauthenticated", "throttled", "forbidden", "deleted", "exists", "authentication_failed"}

// Classes returns every Class, for tables that must cover them all.
func Classes() []Class {
	cs := make([]Class, len(classNames))
	for i := range cs {
		cs[i] = Class(i)
	}
	return cs
}

func (c Class) String() string {
	if c < 0 || int(c) >= len(classNames) {
		return "unknown"
	}
	return classNames[c]
}

// Messages shown to clients, fixed per class so that they never carry internals or key material.
const (
	msgInternal        = "internal error"
	msgInvalidID       = "invalid key id"
	msgIDRule          = "invalid key id: 1 to 256 characters of A-Z a-z 0-9 . _ : / @ + = -"
	msgNotFound        = "key not found"
	msgLimited         = "key creation rate limit reached (kms.create_rate)"
	msgUnavailable     = "key service unavailable: too few KMS regions or store unreachable"
	msgCanceled        = "request cancelled"
	msgUnauthenticated = "missing or invalid bearer token"
	msgThrottled       = "too many failed authentications from this address"
	msgDeleted         = "key deleted: only an explicit create with recreate brings the id back"
	msgExists          = "key already exists"
)

// forbiddenMsg is the message of a Forbidden refusal of op: it names the operation (a fixed
// name), never the key id or the credential.
func forbiddenMsg(op string) string {
	return "not allowed: this credential lacks the " + op + " permission for this key id"
}

// Error is every error the service returns.
type Error struct {
	Class Class
	// Msg is safe to show the client. For Limited it names the limit and the transport adds when
	// to retry in its own way.
	Msg string
	// RetryAfter is whole seconds, at least one (Limited and Throttled; zero otherwise).
	RetryAfter time.Duration
	// Err is the cause, for logs (nil for refusals that have none).
	Err error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Class.String() + ": " + e.Msg
	}
	return fmt.Sprintf("%s: %s: %v", e.Class, e.Msg, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// classes maps the keyring's classification ([keyring.ClassOf]) to the service's, with the
// message each one shows.
var classes = map[keyring.Class]struct {
	class Class
	msg   string
}{
	keyring.ClassInternal:    {Internal, msgInternal},
	keyring.ClassInvalid:     {InvalidArgument, msgInvalidID},
	keyring.ClassNotFound:    {NotFound, msgNotFound},
	keyring.ClassLimited:     {Limited, msgLimited},
	keyring.ClassUnavailable: {Unavailable, msgUnavailable},
	keyring.ClassCanceled:    {Canceled, msgCanceled},
	keyring.ClassDeleted:     {Deleted, msgDeleted},
	keyring.ClassExists:      {Exists, msgExists},
}

// Classify returns err as an *Error: itself when it is one already, else the class of a keyring
// or context error (see [keyring.ClassOf]).
func Classify(err error) *Error {
	if e := (*Error)(nil); errors.As(err, &e) {
		return e
	}
	kc := keyring.ClassOf(err)
	c := classes[kc]
	e := &Error{Class: c.class, Msg: c.msg, Err: err}
	if kc == keyring.ClassLimited {
		e.RetryAfter = keyring.RetryAfter(err)
	}
	return e
}
