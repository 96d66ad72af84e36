package audit

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rkms/rkms/internal/testing/tlstest"
	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/store"
)

func records(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		delete(m, "time")
		out = append(out, m)
	}
	return out
}

func TestRecord(t *testing.T) {
	tests := []struct {
		name    string
		who     *Who
		op, id  string
		version uint32
		err     error
		want    map[string]any
	}{
		{"http read ok", &Who{API: APIHTTP, Remote: "127.0.0.1:1", Subject: "CN=ops"}, OpRead, "tenant-a", 3, nil,
			map[string]any{"api": "http", "op": "read", "key_id": "tenant-a", "version": 3.0, "result": "ok", "remote": "127.0.0.1:1", "subject": "CN=ops"}},
		{"grpc denied", &Who{API: APIGRPC, Remote: "127.0.0.1:2"}, OpDelete, "k", 0, ErrDenied,
			map[string]any{"api": "grpc", "op": "delete", "key_id": "k", "result": "denied", "remote": "127.0.0.1:2", "error": ErrDenied.Error()}},
		{"invalid id omitted", &Who{API: APIHTTP}, OpRead, "bad id\n", 0, fmt.Errorf("x: %w", keyring.ErrInvalidID),
			map[string]any{"api": "http", "op": "read", "result": "invalid", "remote": "", "error": "x: " + keyring.ErrInvalidID.Error()}},
		{"extproc create", &Who{API: APIExtProc, Remote: "127.0.0.1:3", RequestID: "req-1"}, OpCreate, "t", 1, nil,
			map[string]any{"api": "extproc", "op": "create", "key_id": "t", "version": 1.0, "result": "ok", "remote": "127.0.0.1:3", "request_id": "req-1"}},
		{"principal named", &Who{API: APIHTTP, Remote: "127.0.0.1:4", Principal: "billing-svc"}, OpRead, "tenant-a", 2, nil,
			map[string]any{"api": "http", "op": "read", "key_id": "tenant-a", "version": 2.0, "result": "ok", "remote": "127.0.0.1:4", "principal": "billing-svc"}},
		{"forbidden", &Who{API: APIGRPC, Remote: "127.0.0.1:5", Principal: "billing-svc"}, OpRotate, "tenant-a", 0, ErrForbidden,
			map[string]any{"api": "grpc", "op": "rotate", "key_id": "tenant-a", "result": "denied", "remote": "127.0.0.1:5", "principal": "billing-svc", "error": ErrForbidden.Error()}},
		{"no caller", nil, OpRotate, "t", 0, fmt.Errorf("w: %w", keyring.ErrNotFound),
			map[string]any{"api": "internal", "op": "rotate", "key_id": "t", "result": "not_found", "remote": "", "error": "w: " + keyring.ErrNotFound.Error()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			a := New(slog.New(slog.NewJSONHandler(&buf, nil)))
			ctx := context.Background()
			if tt.who != nil {
				ctx = WithWho(ctx, *tt.who)
			}
			a.Record(ctx, tt.op, tt.id, tt.version, tt.err)
			got := records(t, &buf)
			if len(got) != 1 {
				t.Fatalf("%d records", len(got))
			}
			want := map[string]any{"level": "INFO", "msg": "audit", "logger": "audit"}
			for k, v := range tt.want {
				want[k] = v
			}
			if !reflect.DeepEqual(got[0], want) {
				t.Fatalf("record\n got %v\nwant %v", got[0], want)
			}
		})
	}
}

func TestResult(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ResultOK},
		{fmt.Errorf("a: %w", ErrDenied), ResultDenied},
		{fmt.Errorf("a: %w", keyring.ErrInvalidID), ResultInvalid},
		{fmt.Errorf("a: %w", keyring.ErrNotFound), ResultNotFound},
		{fmt.Errorf("a: %w", store.ErrNotFound), ResultNotFound},
		{fmt.Errorf("a: %w", keyring.ErrUnavailable), ResultUnavailable},
		{fmt.Errorf("a: %w", store.ErrUnavailable), ResultUnavailable},
		{context.DeadlineExceeded, ResultUnavailable},
		{errors.New("boom"), ResultError},
	}
	for _, tt := range tests {
		if got := Result(tt.err); got != tt.want {
			t.Errorf("Result(%v) = %s, want %s", tt.err, got, tt.want)
		}
	}
}

// failingStore refuses every Create as unavailable.
type failingStore struct{ store.Store }

func (failingStore) Create(context.Context, *store.Record) error { return store.ErrUnavailable }

func TestWrapStore(t *testing.T) {
	var buf bytes.Buffer
	a := New(slog.New(slog.NewJSONHandler(&buf, nil)))
	st := a.WrapStore(store.NewMemory())
	ctx := WithWho(context.Background(), Who{API: APIExtProc, Remote: "127.0.0.1:9", RequestID: "r1"})
	rec := &store.Record{ID: "tenant-x", Current: 1, Versions: []store.Version{{Number: 1, Created: time.Now(),
		Wrapped: map[string]store.Wrapped{"r1": {KeyID: "k", Blob: []byte{1, 2, 3}}}}}}
	if err := st.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	// The loser of a first-write race records nothing.
	if err := st.Create(ctx, rec); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	if err := a.WrapStore(failingStore{}).Create(ctx, rec); !errors.Is(err, store.ErrUnavailable) {
		t.Fatal(err)
	}
	got := records(t, &buf)
	if len(got) != 2 {
		t.Fatalf("records: %v", got)
	}
	if got[0]["op"] != "create" || got[0]["result"] != "ok" || got[0]["key_id"] != "tenant-x" || got[0]["version"] != 1.0 || got[0]["request_id"] != "r1" {
		t.Fatalf("create record: %v", got[0])
	}
	if got[1]["result"] != "unavailable" {
		t.Fatalf("failed create record: %v", got[1])
	}
}

func TestPeerFromHTTP(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	c := ca.Client(t, "ops")
	r := httptest.NewRequest("GET", "/key?id=a", nil)
	r.RemoteAddr = "127.0.0.1:5"
	if remote, subject := PeerFromHTTP(r); remote != "127.0.0.1:5" || subject != "" {
		t.Fatalf("plain: %q %q", remote, subject)
	}
	// A certificate presented but not verified (no client CA configured) is not a subject.
	r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c.Cert}}
	if _, subject := PeerFromHTTP(r); subject != "" {
		t.Fatalf("unverified certificate gave subject %q", subject)
	}
	r.TLS.VerifiedChains = [][]*x509.Certificate{{c.Cert, ca.Cert}}
	if _, subject := PeerFromHTTP(r); subject != "CN=ops,O=rkms tests" {
		t.Fatalf("subject %q", subject)
	}
}

func TestResolver(t *testing.T) {
	var buf bytes.Buffer
	type reqKey struct{}
	a := New(slog.New(slog.NewJSONHandler(&buf, nil)), func(ctx context.Context) (Who, bool) {
		id, ok := ctx.Value(reqKey{}).(string)
		return Who{API: APIExtProc, RequestID: id}, ok
	})
	a.Record(context.WithValue(context.Background(), reqKey{}, "r-7"), OpCreate, "k", 1, nil)
	// An explicit Who wins over the resolver.
	a.Record(WithWho(context.WithValue(context.Background(), reqKey{}, "r-8"), Who{API: APIHTTP}), OpRead, "k", 1, nil)
	a.Record(context.Background(), OpCreate, "k", 1, nil)
	got := records(t, &buf)
	if got[0]["api"] != "extproc" || got[0]["request_id"] != "r-7" || got[1]["api"] != "http" || got[1]["request_id"] != nil || got[2]["api"] != "internal" {
		t.Fatalf("records: %v", got)
	}
}
