package keyservice

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"strings"
	"time"

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
	// Token is the bearer token every key operation must present. It must not be empty.
	Token string
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
}

// Service is the key service behind the admin HTTP API and the gRPC key API. It is safe for
// concurrent use.
type Service struct {
	keys    Keys
	token   [sha256.Size]byte
	log     *slog.Logger
	audit   *audit.Logger
	timeout time.Duration
	limiter *authlimit.Throttle
	onFail  func(throttled bool)
}

// New returns the service over keys.
func New(keys Keys, opts Options) (*Service, error) {
	if keys == nil {
		return nil, errors.New("keyservice: keys are required")
	}
	if opts.Token == "" {
		return nil, errors.New("keyservice: empty token")
	}
	s := &Service{keys: keys, token: sha256.Sum256([]byte(opts.Token)), log: opts.Logger, audit: opts.Audit,
		timeout: opts.Timeout, limiter: opts.Throttle, onFail: opts.OnAuthFailure}
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
	return s, nil
}

// Caller is who makes a call, as its transport saw it.
type Caller struct {
	API     string // audit.APIHTTP or audit.APIGRPC
	Remote  string // peer address; failed authentications are counted per host
	Subject string // verified client certificate subject (mutual TLS), else empty
	// Authorization is the one authorization value presented ("Bearer <token>"; the scheme is
	// case-insensitive, the token is not). Empty: none.
	Authorization string
}

// Session is an authenticated caller: key operations are only reachable through one.
type Session struct {
	s   *Service
	who audit.Who
}

// Authenticate checks c's bearer token in constant time (both sides are hashed to a fixed
// length first, so neither the length nor the content of the token leaks through timing) unless
// c's address failed too often. A refusal is an *Error of class Throttled or Unauthenticated,
// counted for OnAuthFailure and audited as denied for op on id (op empty: the request is no key
// operation, nothing is audited).
func (s *Service) Authenticate(ctx context.Context, c Caller, op, id string) (*Session, error) {
	who := audit.Who{API: c.API, Remote: c.Remote, Subject: c.Subject}
	if blocked, left := s.limiter.Blocked(c.Remote); blocked {
		s.onFail(true)
		s.deny(ctx, who, op, id)
		// Whole seconds, rounded past the end of the window: never sooner than it ends.
		return nil, &Error{Class: Throttled, Msg: msgThrottled, RetryAfter: time.Duration(int(left.Seconds())+1) * time.Second}
	}
	if !s.tokenOK(c.Authorization) {
		s.limiter.Fail(c.Remote)
		s.onFail(false)
		s.deny(ctx, who, op, id)
		return nil, &Error{Class: Unauthenticated, Msg: msgUnauthenticated}
	}
	return &Session{s: s, who: who}, nil
}

func (s *Service) deny(ctx context.Context, who audit.Who, op, id string) {
	if op != "" {
		s.audit.Record(audit.WithWho(ctx, who), op, id, 0, audit.ErrDenied)
	}
}

func (s *Service) tokenOK(authorization string) bool {
	const scheme = "bearer "
	a := authorization
	ok := len(a) > len(scheme) && strings.EqualFold(a[:len(scheme)], scheme)
	got := sha256.Sum256([]byte(strings.TrimSpace(a[min(len(a), len(scheme)):])))
	return subtle.ConstantTimeCompare(got[:], s.token[:]) == 1 && ok
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
// (which must not keep them). Errors are *Error.
func (ss *Session) Get(ctx context.Context, id string, read func(id string, version uint32, key []byte)) error {
	ctx, cancel, err := ss.begin(ctx, audit.OpRead, id)
	if err != nil {
		return err
	}
	defer cancel()
	dk, err := ss.s.keys.Get(ctx, id)
	ss.s.audit.Record(ctx, audit.OpRead, id, dk.Version, err)
	if err == nil {
		// Fails only if the key was evicted and wiped between Get and here.
		err = dk.Secret.Use(func(b []byte) error {
			read(dk.ID, dk.Version, b)
			return nil
		})
	}
	return ss.fail(audit.OpRead, err)
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

// begin puts the caller into ctx for audit records, validates id (a refusal is audited) and
// bounds the operation with the timeout.
func (ss *Session) begin(ctx context.Context, op, id string) (context.Context, context.CancelFunc, error) {
	ctx = audit.WithWho(ctx, ss.who)
	if err := keyring.ValidateID(id); err != nil {
		ss.s.audit.Record(ctx, op, id, 0, err)
		return nil, nil, &Error{Class: InvalidArgument, Msg: msgIDRule, Err: err}
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
