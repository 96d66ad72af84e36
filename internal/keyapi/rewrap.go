package keyapi

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/proto"

	rkmsv1 "github.com/rkms/rkms/api/rkms/v1"
	"github.com/rkms/rkms/internal/audit"
	"github.com/rkms/rkms/internal/keyservice"
)

// MaxRecvBytes is the largest request the key API receives: a Rewrap request
// (keyservice.MaxRewrapRequestBytes). Give it to grpc.MaxRecvMsgSize, and [LimitRequests] to
// hold every other call to its own, smaller bound.
const MaxRecvBytes = keyservice.MaxRewrapRequestBytes

// LimitRequests returns an interceptor that refuses, with RESOURCE_EXHAUSTED, a request other
// than Rewrap over maxOther bytes (its encoded size): the server receives up to MaxRecvBytes
// for Rewrap, and no other call needs more than a key id.
func LimitRequests(maxOther int) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if info.FullMethod != rkmsv1.KeyService_Rewrap_FullMethodName {
			if m, ok := req.(proto.Message); ok && proto.Size(m) > maxOther {
				return nil, status.Errorf(codes.ResourceExhausted, "request larger than %d bytes", maxOther)
			}
		}
		return handler(ctx, req)
	}
}

// Rewrap moves each item's ciphertext to the current version of its key id (see
// keyservice.Session.Rewrap); per-item errors carry the class name and its fixed message.
func (s *Server) Rewrap(ctx context.Context, req *rkmsv1.RewrapRequest) (*rkmsv1.RewrapResponse, error) {
	sess, err := s.session(ctx, audit.OpRewrap, "")
	if err != nil {
		return nil, err
	}
	in := req.GetItems()
	if err := sess.CheckRewrapCount(ctx, len(in)); err != nil {
		return nil, toStatus(err)
	}
	items := make([]keyservice.RewrapItem, len(in))
	for i, it := range in {
		items[i] = keyservice.RewrapItem{KeyID: it.GetKeyId(), Label: it.GetLabel(), Context: it.GetContext(), Ciphertext: it.GetCiphertext()}
	}
	res, err := sess.Rewrap(ctx, items)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &rkmsv1.RewrapResponse{Items: make([]*rkmsv1.RewrapItemResult, len(res))}
	for i, r := range res {
		if r.Err != nil {
			out.Items[i] = &rkmsv1.RewrapItemResult{Error: &rkmsv1.RewrapError{Code: r.Err.Class.String(), Message: r.Err.Msg}}
			continue
		}
		out.Items[i] = &rkmsv1.RewrapItemResult{Ciphertext: r.Ciphertext, Version: r.Version, Rewrapped: r.Rewrapped}
	}
	return out, nil
}

// ServerOptions are the options the key API's gRPC server needs beyond its limits and
// credentials: a tap that authenticates a Rewrap call from its headers before gRPC reads its
// message (up to MaxRecvBytes). Without it an unauthenticated client could make the server hold
// a megabyte per stream; with it, a refused caller costs only its headers. The refusal is
// audited and counted like any failed authentication; the handler authenticates again (the
// tap's context carries nothing to it).
func (s *Server) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.InTapHandle(s.tapRewrap)}
}

// tapRewrap runs in the transport's reader while it holds a lock: it must stay fast, and
// authentication is (hashes and one map lookup, no I/O).
func (s *Server) tapRewrap(ctx context.Context, info *tap.Info) (context.Context, error) {
	if info.FullMethodName != rkmsv1.KeyService_Rewrap_FullMethodName {
		return ctx, nil
	}
	if _, err := s.session(ctx, audit.OpRewrap, ""); err != nil {
		return ctx, err
	}
	return ctx, nil
}
