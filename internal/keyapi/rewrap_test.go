package keyapi

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	rkmsv1 "github.com/rkms/rkms/api/rkms/v1"
	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/internal/access"
	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/keyring/keyringtest"
)

const (
	migratorToken = "migrator-token-0123456789"
	listerToken   = "lister-token-0123456789ab"
	otherLimit    = 64 << 10 // the app's bound for calls other than Rewrap
)

// rewrapRig is the key API on a loopback gRPC server with the app's receive limits, over a fake
// keyring with t1 at version 3 and gone deleted; migrator may rewrap, lister may only list.
type rewrapRig struct {
	keys  *keyringtest.Fake
	c     rkmsv1.KeyServiceClient
	conn  *grpc.ClientConn
	audit *bytes.Buffer
}

func newRewrapRig(t *testing.T) *rewrapRig {
	t.Helper()
	f := keyringtest.NewFake()
	f.Put("t1", 3)
	f.Put("gone", 1)
	if err := f.Delete(context.Background(), "gone"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	srv, err := newServer(f, keyservice.Options{Logger: slog.New(slog.NewJSONHandler(&buf, nil)), Credentials: []keyservice.Credential{
		{Principal: access.Principal{Name: "migrator", Allow: []string{access.Rewrap}}, Token: migratorToken},
		{Principal: access.Principal{Name: "lister", Allow: []string{access.List, access.Read}}, Token: listerToken},
	}})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(append([]grpc.ServerOption{grpc.MaxRecvMsgSize(MaxRecvBytes), grpc.ChainUnaryInterceptor(LimitRequests(otherLimit))},
		srv.ServerOptions()...)...)
	srv.Register(g)
	go func() { _ = g.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(4<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); g.Stop() })
	return &rewrapRig{keys: f, c: rkmsv1.NewKeyServiceClient(conn), conn: conn, audit: &buf}
}

func (r *rewrapRig) seal(t *testing.T, id string, v uint32, mode envelope.Mode, label string, ctx []byte, pt string) string {
	t.Helper()
	dk, err := r.keys.GetVersion(context.Background(), id, v)
	if err != nil {
		t.Fatal(err)
	}
	out, err := envelope.Seal(nil, envelope.Key(dk), mode, label, ctx, []byte(pt))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func as(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

// TestRewrapRPC: the items of one call come back in order, rewrapped, unchanged or with their
// own error code; the new ciphertext opens under the current version with the same label and
// context; one batch record is audited, without ciphertexts or values.
func TestRewrapRPC(t *testing.T) {
	r := newRewrapRig(t)
	tctx := []byte{0, 1, 2, 0xff}
	old := r.seal(t, "t1", 1, envelope.Randomized, "ssn", tctx, `"123-45-6789"`)
	cur := r.seal(t, "t1", 3, envelope.Deterministic, "ssn", nil, `"x"`)
	resp, err := r.c.Rewrap(as(migratorToken), &rkmsv1.RewrapRequest{Items: []*rkmsv1.RewrapItem{
		{KeyId: "t1", Label: "ssn", Context: tctx, Ciphertext: old},
		{KeyId: "t1", Label: "ssn", Ciphertext: cur},
		{KeyId: "t1", Label: "ssn", Ciphertext: old}, // the context is missing
		{KeyId: "gone", Label: "ssn", Ciphertext: old},
		{KeyId: "nobody", Label: "ssn", Ciphertext: "rkms:AQ"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	it := resp.GetItems()
	if len(it) != 5 {
		t.Fatalf("%d results", len(it))
	}
	if it[0].GetError() != nil || !it[0].GetRewrapped() || it[0].GetVersion() != 3 {
		t.Fatalf("old: %v", it[0])
	}
	dk, _ := r.keys.GetVersion(context.Background(), "t1", 3)
	if pt, err := envelope.Open(nil, envelope.Key(dk), "ssn", tctx, []byte(it[0].GetCiphertext())); err != nil || string(pt) != `"123-45-6789"` {
		t.Fatalf("the rewrapped value opens to %q, %v", pt, err)
	}
	if it[1].GetError() != nil || it[1].GetRewrapped() || it[1].GetCiphertext() != cur || it[1].GetVersion() != 3 {
		t.Fatalf("current: %v", it[1])
	}
	for i, code := range map[int]string{2: "authentication_failed", 3: "invalid_argument", 4: "invalid_argument"} {
		if e := it[i].GetError(); e.GetCode() != code || e.GetMessage() == "" || it[i].GetCiphertext() != "" {
			t.Errorf("item %d: %v, want %s", i, it[i], code)
		}
	}
	if it[3].GetError().GetMessage() != "the ciphertext names another key id" {
		t.Errorf("gone with t1's ciphertext: %v", it[3])
	}
	logs := strings.TrimSpace(r.audit.String())
	var rec map[string]any
	if strings.Count(logs, "\n") != 0 || json.Unmarshal([]byte(logs), &rec) != nil {
		t.Fatalf("want one audit record:\n%s", logs)
	}
	if rec["api"] != "grpc" || rec["op"] != "rewrap" || rec["items"] != 5.0 || rec["rewrapped"] != 1.0 || rec["unchanged"] != 1.0 ||
		rec["failed"] != 3.0 || rec["principal"] != "migrator" || rec["result"] != "ok" {
		t.Fatalf("batch record: %s", logs)
	}
	for _, leak := range []string{old[10:40], cur[10:40], "123-45-6789"} {
		if strings.Contains(logs, leak) {
			t.Fatalf("the audit log carries %q", leak)
		}
	}
}

// TestRewrapRPCRefusals: a credential without rewrap gets PermissionDenied per item (audited);
// no token, too many items and an oversized request fail the whole call; the 1 MiB bound is
// Rewrap's alone.
func TestRewrapRPCRefusals(t *testing.T) {
	r := newRewrapRig(t)
	old := r.seal(t, "t1", 1, envelope.Randomized, "ssn", nil, `"v"`)
	one := []*rkmsv1.RewrapItem{{KeyId: "t1", Label: "ssn", Ciphertext: old}}

	resp, err := r.c.Rewrap(as(listerToken), &rkmsv1.RewrapRequest{Items: one})
	if err != nil || resp.GetItems()[0].GetError().GetCode() != "forbidden" {
		t.Fatalf("lister: %v, %v", resp, err)
	}
	if !strings.Contains(r.audit.String(), `"op":"rewrap","key_id":"t1","result":"denied"`) {
		t.Fatalf("no denial audited:\n%s", r.audit)
	}

	r.audit.Reset()
	if _, err := r.c.Rewrap(context.Background(), &rkmsv1.RewrapRequest{Items: one}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no token: %v", err)
	}
	if !strings.Contains(r.audit.String(), `"op":"rewrap","result":"denied"`) {
		t.Fatalf("no token, not audited:\n%s", r.audit)
	}

	r.audit.Reset()
	many := make([]*rkmsv1.RewrapItem, keyservice.MaxRewrapItems+1)
	for i := range many {
		many[i] = one[0]
	}
	if _, err := r.c.Rewrap(as(migratorToken), &rkmsv1.RewrapRequest{Items: many}); status.Code(err) != codes.InvalidArgument ||
		!strings.Contains(err.Error(), "at most 1000") {
		t.Fatalf("1001 items: %v", err)
	}
	if !strings.Contains(r.audit.String(), `"items":1001`) || !strings.Contains(r.audit.String(), `"result":"invalid"`) {
		t.Fatalf("1001 items, audit:\n%s", r.audit)
	}

	// A request of about 900 KiB passes (its items fail one by one); over 1 MiB does not.
	big := func(n int) []*rkmsv1.RewrapItem {
		items := make([]*rkmsv1.RewrapItem, 10)
		for i := range items {
			items[i] = &rkmsv1.RewrapItem{KeyId: "t1", Label: "ssn", Ciphertext: "rkms:" + strings.Repeat("A", n/10)}
		}
		return items
	}
	if resp, err := r.c.Rewrap(as(migratorToken), &rkmsv1.RewrapRequest{Items: big(900 << 10)}); err != nil || len(resp.GetItems()) != 10 {
		t.Fatalf("900 KiB: %v", err)
	}
	if _, err := r.c.Rewrap(as(migratorToken), &rkmsv1.RewrapRequest{Items: big(1100 << 10)}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("1.1 MiB: %v", err)
	}
	if _, err := r.c.GetKey(as(listerToken), &rkmsv1.GetKeyRequest{Id: strings.Repeat("k", 100<<10)}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("GetKey of 100 KiB: %v", err)
	}
	if _, err := r.c.ReadKey(as(listerToken), &rkmsv1.ReadKeyRequest{Id: "t1"}); err != nil {
		t.Fatalf("a small call after the refusals: %v", err)
	}
}

// TestRewrapAuthenticatedBeforeItsMessage: a Rewrap call without a valid token is refused from
// its headers, before the server reads its message (up to 1 MiB), so an unauthenticated client
// cannot make rkms hold a megabyte per stream. The client opens the call and never sends the
// message: the refusal must arrive anyway.
func TestRewrapAuthenticatedBeforeItsMessage(t *testing.T) {
	r := newRewrapRig(t)
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want codes.Code
	}{
		{"no token", context.Background(), codes.Unauthenticated},
		{"wrong token", as("not-a-token"), codes.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(tc.ctx, 3*time.Second)
			defer cancel()
			desc := &grpc.StreamDesc{StreamName: "Rewrap", ServerStreams: false, ClientStreams: false}
			s, err := r.conn.NewStream(ctx, desc, rkmsv1.KeyService_Rewrap_FullMethodName)
			if err != nil {
				t.Fatal(err)
			}
			// No SendMsg, no CloseSend: the message never comes.
			err = s.RecvMsg(new(rkmsv1.RewrapResponse))
			if status.Code(err) != tc.want {
				t.Fatalf("got %v, want %v before the message", err, tc.want)
			}
		})
	}
	if !strings.Contains(r.audit.String(), `"op":"rewrap","result":"denied"`) {
		t.Fatalf("early refusal not audited:\n%s", r.audit)
	}
	// An authenticated call still works, and other methods are not affected.
	if _, err := r.c.ReadKey(as(listerToken), &rkmsv1.ReadKeyRequest{Id: "t1"}); err != nil {
		t.Fatal(err)
	}
}
