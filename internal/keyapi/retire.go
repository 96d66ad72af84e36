package keyapi

import (
	"context"
	"time"

	rkmsv1 "github.com/rkms/rkms/api/rkms/v1"
	"github.com/rkms/rkms/internal/audit"
	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/keyring"
)

// DescribeKey returns the key's version lifecycle state (read right; no key material).
func (s *Server) DescribeKey(ctx context.Context, req *rkmsv1.DescribeKeyRequest) (*rkmsv1.KeyMetadata, error) {
	sess, err := s.session(ctx, audit.OpRead, req.GetId())
	if err != nil {
		return nil, err
	}
	ki, err := sess.Describe(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(err)
	}
	return metadataOf(ki), nil
}

// SetMinDecryptVersion retires the versions below the one given (rotate right).
func (s *Server) SetMinDecryptVersion(ctx context.Context, req *rkmsv1.SetMinDecryptVersionRequest) (*rkmsv1.KeyMetadata, error) {
	sess, err := s.session(ctx, keyservice.OpSetMinDecryptVersion, req.GetId())
	if err != nil {
		return nil, err
	}
	ki, err := sess.SetMinDecryptVersion(ctx, req.GetId(), req.GetVersion())
	if err != nil {
		return nil, toStatus(err)
	}
	return metadataOf(ki), nil
}

// MaintainKey runs the key's lifecycle now (rotate right).
func (s *Server) MaintainKey(ctx context.Context, req *rkmsv1.MaintainKeyRequest) (*rkmsv1.MaintainKeyResponse, error) {
	sess, err := s.session(ctx, keyservice.OpMaintain, req.GetId())
	if err != nil {
		return nil, err
	}
	res, err := sess.Maintain(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &rkmsv1.MaintainKeyResponse{Rotated: res.Rotated, Reason: res.Reason, Destroyed: res.Destroyed,
		Metadata: metadataOf(res.Info)}, nil
}

// timeString is t in RFC 3339 (UTC), "" for the zero time.
func timeString(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func metadataOf(ki keyring.KeyInfo) *rkmsv1.KeyMetadata {
	md := &rkmsv1.KeyMetadata{Id: ki.ID, Current: ki.Current, MinDecryptVersion: ki.MinDecryptVersion,
		RotationDue: timeString(ki.RotationDue), MaxSeals: ki.MaxSeals, SealsLeft: ki.SealsLeft}
	for _, v := range ki.Versions {
		md.Versions = append(md.Versions, &rkmsv1.VersionMetadata{Version: v.Number, Created: timeString(v.Created),
			Retired: timeString(v.Retired), Destroyed: timeString(v.Destroyed), DestroyAfter: timeString(v.DestroyAfter),
			Seals: v.Seals, Regions: uint32(v.Regions)})
	}
	return md
}
