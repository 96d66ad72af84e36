package keyservice

import (
	"context"
	"errors"
	"fmt"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/internal/access"
	"github.com/rkms/rkms/internal/audit"
	"github.com/rkms/rkms/keyring"
)

// Audit operations of the version lifecycle calls. Both need the rotate right: they change
// which versions encrypt and decrypt, as a rotation does.
const (
	OpSetMinDecryptVersion = "set_min_decrypt_version"
	OpMaintain             = "maintain"
)

// Lifecycle is what the lifecycle calls need from the keyring beyond [Keys]. Keys that do not
// implement it make those calls fail as Internal.
type Lifecycle interface {
	// Describe returns id's lifecycle state; it never opens a key (keyring.ErrNotFound,
	// keyring.ErrDeleted).
	Describe(ctx context.Context, id string) (keyring.KeyInfo, error)
	// SetMinDecryptVersion retires the versions below v and un-retires those at or above it
	// that are not destroyed (keyring.ErrInvalidVersion when v is above the current version).
	SetMinDecryptVersion(ctx context.Context, id string, v uint32) (keyring.KeyInfo, error)
	// Maintain rotates id if due and destroys versions retired longer than the grace.
	Maintain(ctx context.Context, id string) (keyring.MaintainResult, error)
}

var _ Lifecycle = (*keyring.Keyring)(nil)

// errNoLifecycle is the cause of a lifecycle call on keys without it (a wiring bug).
var errNoLifecycle = errors.New("the key service has no version lifecycle")

func (s *Service) lifecycle() (Lifecycle, error) {
	lc, ok := s.keys.(Lifecycle)
	if !ok {
		return nil, errNoLifecycle
	}
	return lc, nil
}

// Describe returns id's lifecycle state (versions, retirement, seal counts, next rotation). It
// needs the read right and is audited as a read; it reads no key material. Errors are *Error.
func (ss *Session) Describe(ctx context.Context, id string) (keyring.KeyInfo, error) {
	ctx, cancel, err := ss.begin(ctx, audit.OpRead, id)
	if err != nil {
		return keyring.KeyInfo{}, err
	}
	defer cancel()
	return ss.describe(ctx, id)
}

// describe is Describe for a session already authorised to read id (after Get or Read).
func (ss *Session) describe(ctx context.Context, id string) (keyring.KeyInfo, error) {
	lc, err := ss.s.lifecycle()
	if err != nil {
		return keyring.KeyInfo{}, ss.fail(audit.OpRead, err)
	}
	ki, err := lc.Describe(ctx, id)
	return ki, ss.fail(audit.OpRead, err)
}

// Metadata returns id's lifecycle state for a caller that has just read its key with Get or
// Read on this session (no second authorisation or audit record). Errors are *Error.
func (ss *Session) Metadata(ctx context.Context, id string) (keyring.KeyInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, ss.s.timeout)
	defer cancel()
	if !ss.p.Allows(access.Read, id) {
		return keyring.KeyInfo{}, ss.permit(audit.WithWho(ctx, ss.who), access.Read, id)
	}
	return ss.describe(ctx, id)
}

// errReservedRetire: SetMinDecryptVersion of a reserved key id ([envelope.IsReservedKeyID]).
var errReservedRetire = errors.New("reserved key id")

// SetMinDecryptVersion sets id's min decrypt version to v: older versions refuse to open and
// their copies are destroyed after the retire grace; lowering it again un-retires versions not
// destroyed yet. It needs the rotate right and is audited as set_min_decrypt_version with v.
// Errors are *Error (InvalidArgument when v is above the current version).
func (ss *Session) SetMinDecryptVersion(ctx context.Context, id string, v uint32) (keyring.KeyInfo, error) {
	ctx, cancel, err := ss.beginLifecycle(ctx, OpSetMinDecryptVersion, id)
	if err != nil {
		return keyring.KeyInfo{}, err
	}
	defer cancel()
	var ki keyring.KeyInfo
	if envelope.IsReservedKeyID(id) {
		// The blind index root: every stored index comes from its version 1.
		err := fmt.Errorf("set min decrypt version of %q: %w", id, errReservedRetire)
		ss.s.audit.Record(ctx, OpSetMinDecryptVersion, id, v, err)
		return ki, &Error{Class: InvalidArgument, Msg: "a reserved key id (the blind index root) cannot be retired: every stored index is derived from it", Err: err}
	}
	lc, err := ss.s.lifecycle()
	if err == nil {
		ki, err = lc.SetMinDecryptVersion(ctx, id, v)
	}
	ss.s.audit.Record(ctx, OpSetMinDecryptVersion, id, v, err)
	if errors.Is(err, keyring.ErrInvalidVersion) {
		return ki, &Error{Class: InvalidArgument, Msg: "min decrypt version must not be above the key's current version", Err: err}
	}
	return ki, ss.fail(OpSetMinDecryptVersion, err)
}

// Maintain runs id's lifecycle now: a due rotation (age or seals) and the destruction of
// versions retired longer than the grace. It needs the rotate right and is audited as maintain
// with the version that became current (0: none). Errors are *Error.
func (ss *Session) Maintain(ctx context.Context, id string) (keyring.MaintainResult, error) {
	ctx, cancel, err := ss.beginLifecycle(ctx, OpMaintain, id)
	if err != nil {
		return keyring.MaintainResult{}, err
	}
	defer cancel()
	lc, err := ss.s.lifecycle()
	var res keyring.MaintainResult
	if err == nil {
		res, err = lc.Maintain(ctx, id)
	}
	ss.s.audit.Record(ctx, OpMaintain, id, res.Rotated, err)
	return res, ss.fail(OpMaintain, err)
}

// beginLifecycle is begin for a lifecycle call: audited under op, authorised by the rotate
// right.
func (ss *Session) beginLifecycle(ctx context.Context, op, id string) (context.Context, context.CancelFunc, error) {
	ctx = audit.WithWho(ctx, ss.who)
	if err := keyring.ValidateID(id); err != nil {
		ss.s.audit.Record(ctx, op, id, 0, err)
		return nil, nil, &Error{Class: InvalidArgument, Msg: msgIDRule, Err: err}
	}
	if !ss.p.Allows(access.Rotate, id) {
		ss.s.audit.Record(ctx, op, id, 0, audit.ErrForbidden)
		ss.s.onForbidden(ss.p.Name, op)
		return nil, nil, &Error{Class: Forbidden, Msg: forbiddenMsg(access.Rotate),
			Err: fmt.Errorf("credential %q, %s: %w", ss.p.Name, op, audit.ErrForbidden)}
	}
	ctx, cancel := context.WithTimeout(ctx, ss.s.timeout)
	return ctx, cancel, nil
}
