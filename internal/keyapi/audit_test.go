package keyapi

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	rkmsv1 "github.com/rkms/rkms/api/rkms/v1"
	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/internal/testing/tlstest"
	"github.com/rkms/rkms/internal/tlsconf"
	"github.com/rkms/rkms/keyring/keyringtest"
)

// TestAuditRecords: every call, refused ones included, gives one record naming the operation, the
// key id (when valid), the result and the caller, with the mTLS client certificate's subject.
func TestAuditRecords(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil))
	ca := tlstest.NewCA(t, "ca")
	srvPair, cli := ca.Server(t, "server"), ca.Client(t, "ops")
	scfg, err := tlsconf.New(tlsconf.Files{CertFile: srvPair.CertFile, KeyFile: srvPair.KeyFile, ClientCAFile: ca.File},
		tlsconf.Options{NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := newServer(keyringtest.NewFake(), keyservice.Options{Token: token, Logger: log})
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
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(tlstest.ClientConfig(ca.Pool(), cli.TLS))))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); g.Stop() })
	c := rkmsv1.NewKeyServiceClient(conn)

	authed := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	anon := context.Background()
	calls := []struct {
		ctx  context.Context
		call call
		want map[string]any
	}{
		{authed, get("alice"), map[string]any{"op": "read", "key_id": "alice", "version": 1.0, "result": "ok", "principal": "admin"}},
		{authed, rotate("alice"), map[string]any{"op": "rotate", "key_id": "alice", "version": 2.0, "result": "ok", "principal": "admin"}},
		{anon, get("alice"), map[string]any{"op": "read", "key_id": "alice", "result": "denied"}},
		{anon, del("alice"), map[string]any{"op": "delete", "key_id": "alice", "result": "denied"}},
		{authed, get("bad id"), map[string]any{"op": "read", "result": "invalid", "principal": "admin"}},
		{authed, rotate("nobody"), map[string]any{"op": "rotate", "key_id": "nobody", "result": "not_found", "principal": "admin"}},
		{authed, del("alice"), map[string]any{"op": "delete", "key_id": "alice", "result": "ok", "principal": "admin"}},
	}
	for _, cl := range calls {
		_, _ = cl.call(cl.ctx, c)
	}
	mu.Lock()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	mu.Unlock()
	if len(lines) != len(calls) {
		t.Fatalf("%d records for %d calls:\n%s", len(lines), len(calls), strings.Join(lines, "\n"))
	}
	for i, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if rec["msg"] != "audit" || rec["logger"] != "audit" || rec["api"] != "grpc" || rec["subject"] != "CN=ops,O=rkms tests" ||
			!strings.HasPrefix(rec["remote"].(string), "127.0.0.1:") {
			t.Errorf("record %d: caller fields wrong: %s", i, line)
		}
		for k, v := range calls[i].want {
			if rec[k] != v {
				t.Errorf("record %d: %s = %v, want %v (%s)", i, k, rec[k], v, line)
			}
		}
		if _, has := rec["principal"]; has != (calls[i].want["principal"] != nil) {
			t.Errorf("record %d: principal presence wrong: %s", i, line)
		}
		if _, has := rec["key_id"]; has != (calls[i].want["key_id"] != nil) {
			t.Errorf("record %d: key_id presence wrong: %s", i, line)
		}
	}
}
