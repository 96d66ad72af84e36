package keyapi

import (
	"context"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	rkmsv1 "github.com/rkms/rkms/api/rkms/v1"
	"github.com/rkms/rkms/internal/access"
	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/internal/testing/tlstest"
	"github.com/rkms/rkms/internal/tlsconf"
	"github.com/rkms/rkms/keyring/keyringtest"
)

// TestPermissionDenied: over a real mutual-TLS connection, a caller identified by its bearer
// token or by its client certificate's URI SAN may do what its credential allows and gets
// PERMISSION_DENIED (naming the missing permission) for the rest; a certificate no credential
// names is UNAUTHENTICATED.
func TestPermissionDenied(t *testing.T) {
	const readerToken, gitopsURI = "reader-token-0123456789", "spiffe://cluster/ns/ops/sa/gitops"
	ca := tlstest.NewCA(t, "ca")
	srv := ca.Server(t, "server")
	scfg, err := tlsconf.New(tlsconf.Files{CertFile: srv.CertFile, KeyFile: srv.KeyFile, ClientCAFile: ca.File},
		tlsconf.Options{NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	f := keyringtest.NewFake()
	f.Put("tenant-a", 1)
	svc, err := newServer(f, keyservice.Options{Credentials: []keyservice.Credential{
		{Principal: access.Principal{Name: "reader", Allow: []string{access.Read}, IDPrefixes: []string{"tenant-"}}, Token: readerToken},
		{Principal: access.Principal{Name: "gitops", Allow: []string{access.Rotate}}, Subject: gitopsURI},
	}})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(grpc.Creds(credentials.NewTLS(scfg)))
	svc.Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	client := func(p tlstest.Pair) rkmsv1.KeyServiceClient {
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(tlstest.ClientConfig(ca.Pool(), p.TLS))))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return rkmsv1.NewKeyServiceClient(conn)
	}
	gitops := client(ca.ClientSANs(t, "gitops", []string{gitopsURI}, nil))
	plain := client(ca.Client(t, "plain"))
	reader := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+readerToken)
	anon := context.Background()
	for _, tc := range []struct {
		name    string
		c       rkmsv1.KeyServiceClient
		ctx     context.Context
		call    call
		want    codes.Code
		wantMsg string
	}{
		{"reader reads", plain, reader, get("tenant-a"), codes.OK, ""},
		{"reader outside its prefix", plain, reader, get("other"), codes.PermissionDenied, "read permission"},
		{"reader may not create", plain, reader, get("tenant-new"), codes.PermissionDenied, "create permission"},
		{"reader may not rotate", plain, reader, rotate("tenant-a"), codes.PermissionDenied, "rotate permission"},
		{"reader may not delete", plain, reader, del("tenant-a"), codes.PermissionDenied, "delete permission"},
		{"certificate rotates", gitops, anon, rotate("tenant-a"), codes.OK, ""},
		{"certificate may not read", gitops, anon, get("tenant-a"), codes.PermissionDenied, "read permission"},
		{"unnamed certificate", plain, anon, rotate("tenant-a"), codes.Unauthenticated, "bearer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.call(tc.ctx, tc.c)
			if st := status.Convert(err); st.Code() != tc.want || !strings.Contains(st.Message(), tc.wantMsg) {
				t.Fatalf("%v, want %v %q", err, tc.want, tc.wantMsg)
			}
		})
	}
}
