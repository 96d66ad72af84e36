package keyapi

import (
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	rkmsv1 "github.com/rkms/rkms/api/rkms/v1"
	"github.com/rkms/rkms/internal/access"
	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/keyring/localkms"
	"github.com/rkms/rkms/store"
)

// TestVersionLifecycleRPCs: SetMinDecryptVersion retires older versions (ReadKey of one is
// FAILED_PRECONDITION), DescribeKey and ReadKey with metadata show the state, MaintainKey
// answers, and a read-only credential is refused the lifecycle calls.
func TestVersionLifecycleRPCs(t *testing.T) {
	k := localKeyring(t)
	const readerToken = "reader-token-0123456789"
	c := serve(t, k, keyservice.Options{Token: token, Credentials: []keyservice.Credential{
		{Principal: access.Principal{Name: "reader", Allow: []string{access.Read}}, Token: readerToken}}})
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+token)
	if _, err := c.CreateKey(ctx, &rkmsv1.CreateKeyRequest{Id: "t1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RotateKey(ctx, &rkmsv1.RotateKeyRequest{Id: "t1"}); err != nil {
		t.Fatal(err)
	}
	md, err := c.SetMinDecryptVersion(ctx, &rkmsv1.SetMinDecryptVersionRequest{Id: "t1", Version: 2})
	if err != nil || md.GetMinDecryptVersion() != 2 || md.GetVersions()[0].GetRetired() == "" || md.GetVersions()[1].GetRetired() != "" {
		t.Fatalf("SetMinDecryptVersion = %v, %v", md, err)
	}
	if _, err := c.ReadKey(ctx, &rkmsv1.ReadKeyRequest{Id: "t1", Version: 1}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("ReadKey of a retired version = %v, want FAILED_PRECONDITION", err)
	}
	resp, err := c.ReadKey(ctx, &rkmsv1.ReadKeyRequest{Id: "t1", Metadata: true})
	if err != nil || resp.GetVersion() != 2 || resp.GetMetadata().GetMinDecryptVersion() != 2 {
		t.Fatalf("ReadKey with metadata = %v, %v", resp, err)
	}
	if md, err := c.DescribeKey(ctx, &rkmsv1.DescribeKeyRequest{Id: "t1"}); err != nil || len(md.GetVersions()) != 2 {
		t.Fatalf("DescribeKey = %v, %v", md, err)
	}
	if res, err := c.MaintainKey(ctx, &rkmsv1.MaintainKeyRequest{Id: "t1"}); err != nil || res.GetRotated() != 0 || res.GetMetadata() == nil {
		t.Fatalf("MaintainKey = %v, %v", res, err)
	}
	if _, err := c.SetMinDecryptVersion(ctx, &rkmsv1.SetMinDecryptVersionRequest{Id: "t1", Version: 3}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("SetMinDecryptVersion above current = %v", err)
	}
	rctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+readerToken)
	if _, err := c.SetMinDecryptVersion(rctx, &rkmsv1.SetMinDecryptVersionRequest{Id: "t1", Version: 1}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("reader SetMinDecryptVersion = %v, want PERMISSION_DENIED", err)
	}
	if _, err := c.MaintainKey(rctx, &rkmsv1.MaintainKeyRequest{Id: "t1"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("reader MaintainKey = %v, want PERMISSION_DENIED", err)
	}
	if _, err := c.DescribeKey(rctx, &rkmsv1.DescribeKeyRequest{Id: "t1"}); err != nil {
		t.Fatalf("reader DescribeKey = %v", err)
	}
}

// TestReservedKeyNotRetired: the blind index root (a reserved key id) cannot be retired: every
// stored index is derived from its version 1, so retiring it would make every indexed write and
// lookup fail, and destroying it would lose them for good.
func TestReservedKeyNotRetired(t *testing.T) {
	k := localKeyring(t)
	c := serve(t, k, keyservice.Options{Token: token})
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+token)
	const root = "_rkms.index-root"
	if _, err := c.CreateKey(ctx, &rkmsv1.CreateKeyRequest{Id: root}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RotateKey(ctx, &rkmsv1.RotateKeyRequest{Id: root}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{root, "_RKMS.Index-Root"} {
		if _, err := c.SetMinDecryptVersion(ctx, &rkmsv1.SetMinDecryptVersionRequest{Id: id, Version: 2}); status.Code(err) != codes.InvalidArgument ||
			!strings.Contains(err.Error(), "reserved") {
			t.Fatalf("SetMinDecryptVersion(%s) = %v, want INVALID_ARGUMENT (reserved)", id, err)
		}
	}
	if _, err := c.ReadKey(ctx, &rkmsv1.ReadKeyRequest{Id: root, Version: 1}); err != nil {
		t.Fatalf("the root's version 1 after the refusal: %v", err)
	}
}

// localKeyring is a real keyring over one local software KMS region and a memory store.
func localKeyring(t *testing.T) *keyring.Keyring {
	t.Helper()
	r, err := localkms.Open(filepath.Join(t.TempDir(), "kms"), "a", nil)
	if err != nil {
		t.Fatal(err)
	}
	k, err := keyring.New(store.NewMemory(), []keyring.Region{r}, keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}
