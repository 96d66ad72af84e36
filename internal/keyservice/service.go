package keyservice

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/rkms/rkms/internal/access"
	"github.com/rkms/rkms/internal/audit"
	"github.com/rkms/rkms/internal/authlimit"
	"github.com/rkms/rkms/keyring"
)

// DefaultTimeout bounds a key operation when [Options.Timeout] is not set.
const DefaultTimeout = 5 * time.Second

// ReadyTimeout bounds a readiness check.
const ReadyTimeout = 2 * time.Second

// Keys is what the service needs from the keyring.
type Keys interface {
	// Get returns the current version of id, creating the key if absent (within the keyring's
	// creation rate limit: keyring.ErrCreateLimited); keyring.ErrDeleted for a deleted id.
	Get(ctx context.Context, id string) (keyring.DataKey, error)
	// Lookup returns the current version of id; it never creates (keyring.ErrNotFound,
	// keyring.ErrDeleted).
	Lookup(ctx context.Context, id string) (keyring.DataKey, error)
	// GetVersion returns version v of id; it never creates (keyring.ErrNotFound).
	GetVersion(ctx context.Context, id string, v uint32) (keyring.DataKey, error)
	// Create creates id's key, version 1 (keyring.ErrExists; keyring.ErrDeleted unless
	// recreate).
	Create(ctx context.Context, id string, recreate bool) (keyring.DataKey, error)
	// List returns one page of ids (see keyring.Keyring.List).
	List(ctx context.Context, prefix, after string, limit int) (keyring.ListPage, error)
	// Rotate adds a version and returns its number (keyring.ErrNotFound when absent).
	Rotate(ctx context.Context, id string) (uint32, error)
	// Delete removes every version of id (keyring.ErrNotFound when absent).
	Delete(ctx context.Context, id string) error
	// Ready reports whether keys can be served now (an error wrapping keyring.ErrUnavailable
	// when not).
	Ready(ctx context.Context) error
}

var _ Keys = (*keyring.Keyring)(nil)

// Options configures the service.
type Options struct {
	// Token, when not empty, is the single admin token: a credential named access.LegacyName
	// that may do every operation on every id.
	Token string
	// Credentials are the named credentials (admin.credentials). At least one credential, from
	// Token or here, is required.
	Credentials []Credential
	// Logger receives operational events; audit records go to Audit. Nil: discard.
	Logger *slog.Logger
	// Audit receives one record per key operation, refused ones included (never key material).
	// Nil: audit.New(Logger).
	Audit *audit.Logger
	// Timeout bounds each key operation. Zero or negative: DefaultTimeout.
	Timeout time.Duration
	// Throttle counts failed authentications per address. Nil: a throttle of the service's own.
	Throttle *authlimit.Throttle
	// OnAuthFailure, if not nil, is told of each failed authentication (throttled: refused
	// because the address failed too often), for metrics.
	OnAuthFailure func(throttled bool)
	// OnForbidden, if not nil, is told of each operation refused because the caller's
	// credential does not allow it (principal names come from the configuration: a bounded set).
	OnForbidden func(principal, op string)
	// OnRewrap, if not nil, is told after each Rewrap call how many items had each result:
	// "rewrapped", "unchanged", or the class name of the item's error (a bounded set), for
	// metrics. Only results with items are reported.
	OnRewrap func(result string, n int)
}

// Service is the key service behind the admin HTTP API and the gRPC key API. It is safe for
// concurrent use.
type Service struct {
	keys    Keys
	creds   *credentials
	log     *slog.Logger
	audit   *audit.Logger
	timeout time.Duration
	limiter *authlimit.Throttle
	onFail  func(throttled bool)

	onForbidden func(principal, op string)
	onRewrap    func(result string, n int)
}

// New returns the service over keys.
func New(keys Keys, opts Options) (*Service, error) {
	if keys == nil {
		return nil, errors.New("keyservice: keys are required")
	}
	all := opts.Credentials
	if opts.Token != "" {
		all = append([]Credential{{Principal: access.All(access.LegacyName), Token: opts.Token}}, all...)
	}
	creds, err := newCredentials(all)
	if err != nil {
		return nil, err
	}
	s := &Service{keys: keys, creds: creds, log: opts.Logger, audit: opts.Audit,
		timeout: opts.Timeout, limiter: opts.Throttle, onFail: opts.OnAuthFailure, onForbidden: opts.OnForbidden, onRewrap: opts.OnRewrap}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.audit == nil {
		s.audit = audit.New(s.log)
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.limiter == nil {
		s.limiter = authlimit.New(nil)
	}
	if s.onFail == nil {
		s.onFail = func(bool) {}
	}
	if s.onForbidden == nil {
		s.onForbidden = func(string, string) {}
	}
	return s, nil
}

// Ready reports whether keys can be served now, within ReadyTimeout. It needs no session.
func (s *Service) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	err := s.keys.Ready(ctx)
	if err != nil {
		s.log.Warn("not ready", "err", err)
	}
	return err
}

// Get gets the current version of id, creating the key if absent, and lends its bytes to read
// (which must not keep them). It needs the read permission, and the create permission when the
// key is absent: without it the key is only looked up, and an absent one is refused as
// Forbidden (audited as a denied create). Errors are *Error.
func (ss *Session) Get(ctx context.Context, id string, read func(id string, version uint32, key []byte)) error {
	ctx, cancel, err := ss.begin(ctx, audit.OpRead, id)
	if err != nil {
		return err
	}
	defer cancel()
	var dk keyring.DataKey
	if ss.p.Allows(access.Create, id) {
		dk, err = ss.s.keys.Get(ctx, id)
	} else if dk, err = ss.s.keys.Lookup(ctx, id); errors.Is(err, keyring.ErrNotFound) && !errors.Is(err, keyring.ErrDeleted) {
		// Absent: getting it would create it. A deleted id stays Deleted, as with the permission.
		return ss.permit(ctx, access.Create, id)
	}
	ss.s.audit.Record(ctx, audit.OpRead, id, dk.Version, err)
	return ss.fail(audit.OpRead, ss.lend(dk, err, read))
}

// Read gets version of id (0: the current one) and lends its bytes to read, like Get, but never
// creates: NotFound when id has no key (or no such version), Deleted when it was deleted. It is
// audited as a read. Errors are *Error.
func (ss *Session) Read(ctx context.Context, id string, version uint32, read func(id string, version uint32, key []byte)) error {
	ctx, cancel, err := ss.begin(ctx, audit.OpRead, id)
	if err != nil {
		return err
	}
	defer cancel()
	var dk keyring.DataKey
	if version == 0 {
		dk, err = ss.s.keys.Lookup(ctx, id)
	} else {
		dk, err = ss.s.keys.GetVersion(ctx, id, version)
	}
	ss.s.audit.Record(ctx, audit.OpRead, id, max(dk.Version, version), err)
	return ss.fail(audit.OpRead, ss.lend(dk, err, read))
}

// Create creates id's key (version 1) and lends its bytes to read: Exists when id has a key,
// Deleted when it was deleted and recreate is false (with recreate, the deleted id gets a new
// key). Errors are *Error.
func (ss *Session) Create(ctx context.Context, id string, recreate bool, read func(id string, version uint32, key []byte)) error {
	ctx, cancel, err := ss.begin(ctx, audit.OpCreate, id)
	if err != nil {
		return err
	}
	defer cancel()
	dk, err := ss.s.keys.Create(ctx, id, recreate)
	ss.s.audit.Record(ctx, audit.OpCreate, id, dk.Version, err)
	return ss.fail(audit.OpCreate, ss.lend(dk, err, read))
}

// lend passes dk's bytes to read when err is nil.
func (ss *Session) lend(dk keyring.DataKey, err error, read func(id string, version uint32, key []byte)) error {
	if err != nil {
		return err
	}
	// Fails only if the key was evicted and wiped since it was handed out.
	return dk.Secret.Use(func(b []byte) error {
		read(dk.ID, dk.Version, b)
		return nil
	})
}

// Rotate adds a version of id that new encryptions use and returns its number. Errors are *Error.
func (ss *Session) Rotate(ctx context.Context, id string) (uint32, error) {
	ctx, cancel, err := ss.begin(ctx, audit.OpRotate, id)
	if err != nil {
		return 0, err
	}
	defer cancel()
	v, err := ss.s.keys.Rotate(ctx, id)
	ss.s.audit.Record(ctx, audit.OpRotate, id, v, err)
	return v, ss.fail(audit.OpRotate, err)
}

// Delete removes every version of id. Errors are *Error.
func (ss *Session) Delete(ctx context.Context, id string) error {
	ctx, cancel, err := ss.begin(ctx, audit.OpDelete, id)
	if err != nil {
		return err
	}
	defer cancel()
	err = ss.s.keys.Delete(ctx, id)
	ss.s.audit.Record(ctx, audit.OpDelete, id, 0, err)
	return ss.fail(audit.OpDelete, err)
}

// Malformed refuses op for a request its transport could not read a key id from: it is audited
// as invalid with cause (which wraps keyring.ErrInvalidID) and returned as an InvalidArgument
// *Error showing msg.
func (ss *Session) Malformed(ctx context.Context, op, msg string, cause error) error {
	ss.s.audit.Record(audit.WithWho(ctx, ss.who), op, "", 0, cause)
	return &Error{Class: InvalidArgument, Msg: msg, Err: cause}
}

// begin puts the caller into ctx for audit records, validates id, checks that the principal
// may do op on id (a refusal of either is audited) and bounds the operation with the timeout.
func (ss *Session) begin(ctx context.Context, op, id string) (context.Context, context.CancelFunc, error) {
	ctx = audit.WithWho(ctx, ss.who)
	if err := keyring.ValidateID(id); err != nil {
		ss.s.audit.Record(ctx, op, id, 0, err)
		return nil, nil, &Error{Class: InvalidArgument, Msg: msgIDRule, Err: err}
	}
	if err := ss.permit(ctx, op, id); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, ss.s.timeout)
	return ctx, cancel, nil
}

// fail classifies err (nil stays nil); an internal error is logged here, once for every
// transport.
func (ss *Session) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	e := Classify(err)
	if e.Class == Internal {
		ss.s.log.Error("key operation failed", "api", ss.who.API, "op", op, "err", err)
	}
	return e
}
