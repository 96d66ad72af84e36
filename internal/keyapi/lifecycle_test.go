package keyapi

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	rkmsv1 "github.com/rkms/rkms/api/rkms/v1"
	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/keyring/keyringtest"
)

// TestLifecycleRPCs: ReadKey, CreateKey, ListKeys and the codes of deleted and existing ids,
// through a real gRPC client.
func TestLifecycleRPCs(t *testing.T) {
	newFake := func(t *testing.T) *keyringtest.Fake {
		f := keyringtest.NewFake()
		f.Put("live", 3)
		f.Put("gone", 1)
		if err := f.Delete(context.Background(), "gone"); err != nil {
			t.Fatal(err)
		}
		return f
	}
	read := func(id string, v uint32) call {
		return func(ctx context.Context, c rkmsv1.KeyServiceClient) (any, error) {
			return c.ReadKey(ctx, &rkmsv1.ReadKeyRequest{Id: id, Version: v})
		}
	}
	create := func(id string, recreate bool) call {
		return func(ctx context.Context, c rkmsv1.KeyServiceClient) (any, error) {
			return c.CreateKey(ctx, &rkmsv1.CreateKeyRequest{Id: id, Recreate: recreate})
		}
	}
	tests := []struct {
		name        string
		call        call
		want        codes.Code
		wantVersion uint32
	}{
		{"read current", read("live", 0), codes.OK, 3},
		{"read version", read("live", 2), codes.OK, 2},
		{"read absent", read("typo", 0), codes.NotFound, 0},
		{"read deleted", read("gone", 0), codes.FailedPrecondition, 0},
		{"get deleted", get("gone"), codes.FailedPrecondition, 0},
		{"create", create("new", false), codes.OK, 1},
		{"create existing", create("live", false), codes.AlreadyExists, 0},
		{"create deleted", create("gone", false), codes.FailedPrecondition, 0},
		{"recreate deleted", create("gone", true), codes.OK, 1},
		{"delete deleted", del("gone"), codes.FailedPrecondition, 0},
		{"rotate deleted", rotate("gone"), codes.FailedPrecondition, 0},
		{"list page size over max", func(ctx context.Context, c rkmsv1.KeyServiceClient) (any, error) {
			return c.ListKeys(ctx, &rkmsv1.ListKeysRequest{PageSize: 1001})
		}, codes.InvalidArgument, 0},
		{"list bad token", func(ctx context.Context, c rkmsv1.KeyServiceClient) (any, error) {
			return c.ListKeys(ctx, &rkmsv1.ListKeysRequest{PageToken: "!"})
		}, codes.InvalidArgument, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			c := serve(t, f, keyservice.Options{Token: token})
			ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
			resp, err := tc.call(ctx, c)
			if status.Code(err) != tc.want {
				t.Fatalf("code %v (%v), want %v", status.Code(err), err, tc.want)
			}
			if r, ok := resp.(*rkmsv1.GetKeyResponse); ok && err == nil && (r.GetVersion() != tc.wantVersion || len(r.GetKey()) != 32) {
				t.Fatalf("response version %d, %d key bytes; want version %d", r.GetVersion(), len(r.GetKey()), tc.wantVersion)
			}
			if tc.name == "read absent" {
				if _, err := f.Lookup(context.Background(), "typo"); err == nil {
					t.Fatal("ReadKey created the key")
				}
			}
		})
	}
}

func TestListKeysPaging(t *testing.T) {
	f := keyringtest.NewFake()
	for _, id := range []string{"t/a", "t/b", "t/c", "u"} {
		f.Put(id, 1)
	}
	if err := f.Delete(context.Background(), "t/b"); err != nil {
		t.Fatal(err)
	}
	c := serve(t, f, keyservice.Options{Token: token})
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	var ids, dels []string
	req := &rkmsv1.ListKeysRequest{Prefix: "t/", PageSize: 1}
	for pages := 0; ; pages++ {
		resp, err := c.ListKeys(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		ids, dels = append(ids, resp.GetIds()...), append(dels, resp.GetDeletedIds()...)
		if resp.GetNextPageToken() == "" {
			break
		}
		if pages > 5 {
			t.Fatal("listing does not end")
		}
		req.PageToken = resp.GetNextPageToken()
	}
	if !slices.Equal(ids, []string{"t/a", "t/c"}) || !slices.Equal(dels, []string{"t/b"}) {
		t.Fatalf("ids %v, deleted %v", ids, dels)
	}
}
