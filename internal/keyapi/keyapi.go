package keyapi

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	rkmsv1 "github.com/rkms/rkms/api/rkms/v1"
	"github.com/rkms/rkms/internal/audit"
	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/keyring"
)

// Server implements rkms.v1.KeyService: a gRPC transport over a [keyservice.Service].
type Server struct {
	rkmsv1.UnimplementedKeyServiceServer

	svc *keyservice.Service
}

var _ rkmsv1.KeyServiceServer = (*Server)(nil)

// New returns the gRPC key API over svc.
func New(svc *keyservice.Service) (*Server, error) {
	if svc == nil {
		return nil, errors.New("keyapi: key service is required")
	}
	return &Server{svc: svc}, nil
}

// Register adds KeyService to g.
func (s *Server) Register(g *grpc.Server) { rkmsv1.RegisterKeyServiceServer(g, s) }

// GetKey returns the current version of the key, creating it if absent.
func (s *Server) GetKey(ctx context.Context, req *rkmsv1.GetKeyRequest) (*rkmsv1.GetKeyResponse, error) {
	sess, err := s.session(ctx, audit.OpRead, req.GetId())
	if err != nil {
		return nil, err
	}
	var resp *rkmsv1.GetKeyResponse
	if err := sess.Get(ctx, req.GetId(), func(id string, version uint32, key []byte) {
		resp = &rkmsv1.GetKeyResponse{Id: id, Version: version, Key: append([]byte(nil), key...)}
	}); err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}

// ReadKey returns the current version of the key, or the version asked for; it never creates.
func (s *Server) ReadKey(ctx context.Context, req *rkmsv1.ReadKeyRequest) (*rkmsv1.GetKeyResponse, error) {
	sess, err := s.session(ctx, audit.OpRead, req.GetId())
	if err != nil {
		return nil, err
	}
	var resp *rkmsv1.GetKeyResponse
	if err := sess.Read(ctx, req.GetId(), req.GetVersion(), lend(&resp)); err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}

// CreateKey creates the key (version 1), or re-creates a deleted one with recreate.
func (s *Server) CreateKey(ctx context.Context, req *rkmsv1.CreateKeyRequest) (*rkmsv1.GetKeyResponse, error) {
	sess, err := s.session(ctx, audit.OpCreate, req.GetId())
	if err != nil {
		return nil, err
	}
	var resp *rkmsv1.GetKeyResponse
	if err := sess.Create(ctx, req.GetId(), req.GetRecreate(), lend(&resp)); err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}

// ListKeys returns one page of key ids.
func (s *Server) ListKeys(ctx context.Context, req *rkmsv1.ListKeysRequest) (*rkmsv1.ListKeysResponse, error) {
	sess, err := s.session(ctx, audit.OpList, req.GetPrefix())
	if err != nil {
		return nil, err
	}
	if req.GetPageSize() > keyservice.MaxListLimit {
		return nil, toStatus(sess.Malformed(ctx, audit.OpList, "invalid limit: 1 to 1000",
			fmt.Errorf("page size %d: %w", req.GetPageSize(), keyring.ErrInvalidID)))
	}
	res, err := sess.List(ctx, keyservice.ListRequest{Prefix: req.GetPrefix(), Cursor: req.GetPageToken(), Limit: int(req.GetPageSize())})
	if err != nil {
		return nil, toStatus(err)
	}
	return &rkmsv1.ListKeysResponse{Ids: res.IDs, DeletedIds: res.Deleted, NextPageToken: res.Next}, nil
}

// lend returns the read callback of the key service that fills *resp with a copy of the key.
func lend(resp **rkmsv1.GetKeyResponse) func(id string, version uint32, key []byte) {
	return func(id string, version uint32, key []byte) {
		*resp = &rkmsv1.GetKeyResponse{Id: id, Version: version, Key: append([]byte(nil), key...)}
	}
}

// DeleteKey removes every version of the key.
func (s *Server) DeleteKey(ctx context.Context, req *rkmsv1.DeleteKeyRequest) (*rkmsv1.DeleteKeyResponse, error) {
	sess, err := s.session(ctx, audit.OpDelete, req.GetId())
	if err != nil {
		return nil, err
	}
	if err := sess.Delete(ctx, req.GetId()); err != nil {
		return nil, toStatus(err)
	}
	return &rkmsv1.DeleteKeyResponse{}, nil
}

// RotateKey adds a version that new encryptions use.
func (s *Server) RotateKey(ctx context.Context, req *rkmsv1.RotateKeyRequest) (*rkmsv1.RotateKeyResponse, error) {
	sess, err := s.session(ctx, audit.OpRotate, req.GetId())
	if err != nil {
		return nil, err
	}
	v, err := sess.Rotate(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &rkmsv1.RotateKeyResponse{Id: req.GetId(), Version: v}, nil
}

// session authenticates the caller of ctx with the key service; a refusal comes back as a
// status. Exactly one authorization value is accepted: with several, none is.
func (s *Server) session(ctx context.Context, op, id string) (*keyservice.Session, error) {
	remote, subject := audit.PeerFromGRPC(ctx)
	c := keyservice.Caller{API: audit.APIGRPC, Remote: remote, Subject: subject, Identities: peerIdentities(ctx)}
	md, _ := metadata.FromIncomingContext(ctx)
	if vs := md.Get("authorization"); len(vs) == 1 {
		c.Authorization = vs[0]
	}
	sess, err := s.svc.Authenticate(ctx, c, op, id)
	if err != nil {
		return nil, toStatus(err)
	}
	return sess, nil
}

// peerIdentities returns the verified client certificate identities of the gRPC peer of ctx
// (mutual TLS), for credentials with an mtls_subject.
func peerIdentities(ctx context.Context) []string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil
	}
	return keyservice.TLSIdentities(&ti.State)
}

// classCodes maps each key service class to its code: the only place that does.
var classCodes = map[keyservice.Class]codes.Code{
	keyservice.InvalidArgument:      codes.InvalidArgument,
	keyservice.Unauthenticated:      codes.Unauthenticated,
	keyservice.Forbidden:            codes.PermissionDenied,
	keyservice.NotFound:             codes.NotFound,
	keyservice.Deleted:              codes.FailedPrecondition,
	keyservice.Exists:               codes.AlreadyExists,
	keyservice.AuthenticationFailed: codes.InvalidArgument, // per rewrap item only
	keyservice.Limited:              codes.ResourceExhausted,
	keyservice.Throttled:            codes.ResourceExhausted,
	keyservice.Canceled:             codes.Canceled,
	keyservice.Unavailable:          codes.Unavailable,
	keyservice.Internal:             codes.Internal,
}

// toStatus turns the key service error err into a status: the code of its class and its fixed
// message.
func toStatus(err error) error {
	e := keyservice.Classify(err)
	code, ok := classCodes[e.Class]
	if !ok {
		code = codes.Internal
	}
	msg := e.Msg
	if e.Class == keyservice.Limited {
		msg += ": retry after " + e.RetryAfter.String()
	}
	return status.Error(code, msg)
}
