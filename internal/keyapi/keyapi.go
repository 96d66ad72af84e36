package keyapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	rkmsv1 "github.com/rkms/rkms/api/rkms/v1"
	"github.com/rkms/rkms/internal/audit"
	"github.com/rkms/rkms/internal/authlimit"
	"github.com/rkms/rkms/keyring"
)

// Keys is what the key API needs from the keyring.
type Keys interface {
	// Get returns the current version of id, creating the key if absent (within the keyring's
	// creation rate limit: keyring.ErrCreateLimited).
	Get(ctx context.Context, id string) (keyring.DataKey, error)
	// Rotate adds a version and returns its number (keyring.ErrNotFound when absent).
	Rotate(ctx context.Context, id string) (uint32, error)
	// Delete removes every version of id (keyring.ErrNotFound when absent).
	Delete(ctx context.Context, id string) error
}

// Options configures the service.
type Options struct {
	// Token is the bearer token every call must present. It must not be empty.
	Token string
	// Logger receives operational events; audit records go to Audit. Nil: discard.
	Logger *slog.Logger
	// Audit receives one record per call, refused ones included (never key material). Nil:
	// audit.New(Logger).
	Audit *audit.Logger
	// Timeout bounds each key operation (default 5s).
	Timeout time.Duration
	// Throttle counts failed authentications per address (shared with the admin API). Nil: a
	// throttle of the service's own.
	Throttle *authlimit.Throttle
	// OnAuthFailure, if not nil, is told of each failed authentication (throttled: refused
	// because the address failed too often).
	OnAuthFailure func(throttled bool)
}

// Service implements rkms.v1.KeyService.
type Service struct {
	rkmsv1.UnimplementedKeyServiceServer

	keys    Keys
	token   [sha256.Size]byte
	log     *slog.Logger
	audit   *audit.Logger
	timeout time.Duration
	limiter *authlimit.Throttle
	onFail  func(throttled bool)
}

var _ rkmsv1.KeyServiceServer = (*Service)(nil)

// New returns the key service over keys.
func New(keys Keys, opts Options) (*Service, error) {
	if keys == nil {
		return nil, errors.New("keyapi: keys are required")
	}
	if opts.Token == "" {
		return nil, errors.New("keyapi: empty token")
	}
	s := &Service{keys: keys, token: sha256.Sum256([]byte(opts.Token)), log: opts.Logger, audit: opts.Audit, timeout: opts.Timeout,
		limiter: opts.Throttle, onFail: opts.OnAuthFailure}
	if s.limiter == nil {
		s.limiter = authlimit.New(nil)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.audit == nil {
		s.audit = audit.New(s.log)
	}
	if s.timeout <= 0 {
		s.timeout = 5 * time.Second
	}
	return s, nil
}

// Register adds KeyService to g.
func (s *Service) Register(g *grpc.Server) { rkmsv1.RegisterKeyServiceServer(g, s) }

// GetKey returns the current version of the key, creating it if absent.
func (s *Service) GetKey(ctx context.Context, req *rkmsv1.GetKeyRequest) (*rkmsv1.GetKeyResponse, error) {
	ctx, cancel, err := s.begin(ctx, audit.OpRead, req.GetId())
	if err != nil {
		return nil, err
	}
	defer cancel()
	dk, err := s.keys.Get(ctx, req.GetId())
	s.audit.Record(ctx, audit.OpRead, req.GetId(), dk.Version, err)
	if err != nil {
		return nil, s.fail(err)
	}
	resp := &rkmsv1.GetKeyResponse{Id: dk.ID, Version: dk.Version}
	if err := dk.Secret.Use(func(b []byte) error {
		resp.Key = append([]byte(nil), b...)
		return nil
	}); err != nil {
		// Evicted and wiped between Get and here: transient.
		return nil, s.fail(err)
	}
	return resp, nil
}

// DeleteKey removes every version of the key.
func (s *Service) DeleteKey(ctx context.Context, req *rkmsv1.DeleteKeyRequest) (*rkmsv1.DeleteKeyResponse, error) {
	ctx, cancel, err := s.begin(ctx, audit.OpDelete, req.GetId())
	if err != nil {
		return nil, err
	}
	defer cancel()
	err = s.keys.Delete(ctx, req.GetId())
	s.audit.Record(ctx, audit.OpDelete, req.GetId(), 0, err)
	if err != nil {
		return nil, s.fail(err)
	}
	return &rkmsv1.DeleteKeyResponse{}, nil
}

// RotateKey adds a version that new encryptions use.
func (s *Service) RotateKey(ctx context.Context, req *rkmsv1.RotateKeyRequest) (*rkmsv1.RotateKeyResponse, error) {
	ctx, cancel, err := s.begin(ctx, audit.OpRotate, req.GetId())
	if err != nil {
		return nil, err
	}
	defer cancel()
	v, err := s.keys.Rotate(ctx, req.GetId())
	s.audit.Record(ctx, audit.OpRotate, req.GetId(), v, err)
	if err != nil {
		return nil, s.fail(err)
	}
	return &rkmsv1.RotateKeyResponse{Id: req.GetId(), Version: v}, nil
}

// begin puts the caller into ctx for audit records, authorizes the call, validates id and
// bounds the operation with the timeout. Refusals are audited.
func (s *Service) begin(ctx context.Context, op, id string) (context.Context, context.CancelFunc, error) {
	remote, subject := audit.PeerFromGRPC(ctx)
	ctx = audit.WithWho(ctx, audit.Who{API: audit.APIGRPC, Remote: remote, Subject: subject})
	if blocked, _ := s.limiter.Blocked(remote); blocked {
		if s.onFail != nil {
			s.onFail(true)
		}
		s.audit.Record(ctx, op, id, 0, audit.ErrDenied)
		return nil, nil, status.Error(codes.ResourceExhausted, "too many failed authentications from this address")
	}
	if !s.authorized(ctx) {
		s.limiter.Fail(remote)
		if s.onFail != nil {
			s.onFail(false)
		}
		s.audit.Record(ctx, op, id, 0, audit.ErrDenied)
		return nil, nil, status.Error(codes.Unauthenticated, "missing or invalid bearer token")
	}
	if err := keyring.ValidateID(id); err != nil {
		s.audit.Record(ctx, op, id, 0, err)
		return nil, nil, status.Error(codes.InvalidArgument, "invalid key id: 1 to 256 characters of A-Z a-z 0-9 . _ : / @ + = -")
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	return ctx, cancel, nil
}

// authorized checks `authorization: Bearer <token>` in constant time: both sides are hashed to
// a fixed length first, so neither the length nor the content of the token leaks through timing.
// Exactly one authorization value is accepted.
func (s *Service) authorized(ctx context.Context) bool {
	const scheme = "bearer "
	md, _ := metadata.FromIncomingContext(ctx)
	vs := md.Get("authorization")
	a := ""
	if len(vs) == 1 {
		a = vs[0]
	}
	ok := len(vs) == 1 && len(a) > len(scheme) && strings.EqualFold(a[:len(scheme)], scheme)
	got := sha256.Sum256([]byte(strings.TrimSpace(a[min(len(a), len(scheme)):])))
	return subtle.ConstantTimeCompare(got[:], s.token[:]) == 1 && ok
}

// fail maps a keyring error to a status with a fixed message per class.
func (s *Service) fail(err error) error {
	switch {
	case errors.Is(err, keyring.ErrInvalidID):
		return status.Error(codes.InvalidArgument, "invalid key id")
	case errors.Is(err, keyring.ErrNotFound):
		return status.Error(codes.NotFound, "key not found")
	case errors.Is(err, keyring.ErrCreateLimited):
		retry := time.Second
		if cle := (*keyring.CreateLimitedError)(nil); errors.As(err, &cle) {
			retry = max(retry, cle.RetryAfter)
		}
		return status.Errorf(codes.ResourceExhausted, "key creation rate limit reached (kms.create_rate): retry after %s", retry)
	case errors.Is(err, keyring.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.Unavailable, "key service unavailable: too few KMS regions or store unreachable")
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request cancelled")
	default:
		s.log.Error("key api operation failed", "err", err)
		return status.Error(codes.Internal, "internal error")
	}
}
