package keyapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	rkmsv1 "github.com/rkms/rkms/api/rkms/v1"
	"github.com/rkms/rkms/internal/authlimit"
	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/keyring/keyringtest"
	"github.com/rkms/rkms/secret"
)

const token = "s3cret-token"

// newServer is the key API over a key service on keys: the construction every test shares.
func newServer(keys keyservice.Keys, opts keyservice.Options) (*Server, error) {
	svc, err := keyservice.New(keys, opts)
	if err != nil {
		return nil, err
	}
	return New(svc)
}

// serve runs the service on a loopback TCP listener and returns a real client.
func serve(t *testing.T, keys keyservice.Keys, opts keyservice.Options) rkmsv1.KeyServiceClient {
	t.Helper()
	svc, err := newServer(keys, opts)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	svc.Register(g)
	go func() { _ = g.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); g.Stop() })
	return rkmsv1.NewKeyServiceClient(conn)
}

type call func(ctx context.Context, c rkmsv1.KeyServiceClient) (any, error)

func get(id string) call {
	return func(ctx context.Context, c rkmsv1.KeyServiceClient) (any, error) {
		return c.GetKey(ctx, &rkmsv1.GetKeyRequest{Id: id})
	}
}

func del(id string) call {
	return func(ctx context.Context, c rkmsv1.KeyServiceClient) (any, error) {
		return c.DeleteKey(ctx, &rkmsv1.DeleteKeyRequest{Id: id})
	}
}

func rotate(id string) call {
	return func(ctx context.Context, c rkmsv1.KeyServiceClient) (any, error) {
		return c.RotateKey(ctx, &rkmsv1.RotateKeyRequest{Id: id})
	}
}

// TestKeyService is the admin HTTP API's behaviour table (internal/admin), call for call, over a
// real gRPC connection.
func TestKeyService(t *testing.T) {
	internal := errors.New("dial tcp 10.1.2.3:443: secret internals")
	bearer := []string{"authorization", "Bearer " + token}
	tests := []struct {
		name    string
		call    call
		md      []string // outgoing metadata pairs
		setup   func(*keyringtest.Fake)
		opts    keyservice.Options
		want    codes.Code
		wantMsg string // substring of the status message
		check   func(t *testing.T, resp any)
	}{
		{name: "get creates", call: get("alice"), md: bearer, want: codes.OK,
			check: func(t *testing.T, resp any) {
				r := resp.(*rkmsv1.GetKeyResponse)
				if r.GetId() != "alice" || r.GetVersion() != 1 || len(r.GetKey()) != 32 {
					t.Fatalf("bad response %v", r)
				}
			}},
		{name: "scheme case-insensitive", call: get("alice"), md: []string{"authorization", "bearer " + token}, want: codes.OK},
		{name: "no token", call: get("alice"), want: codes.Unauthenticated, wantMsg: "bearer"},
		{name: "wrong token", call: get("alice"), md: []string{"authorization", "Bearer nope"}, want: codes.Unauthenticated, wantMsg: "bearer"},
		{name: "token prefix", call: get("alice"), md: []string{"authorization", "Bearer " + token[:5]}, want: codes.Unauthenticated},
		{name: "token with suffix", call: get("alice"), md: []string{"authorization", "Bearer " + token + "x"}, want: codes.Unauthenticated},
		{name: "basic auth", call: get("alice"), md: []string{"authorization", "Basic " + token}, want: codes.Unauthenticated},
		{name: "two authorization values", call: get("alice"), md: append([]string{"authorization", "Bearer nope"}, bearer...), want: codes.Unauthenticated},
		{name: "delete needs token", call: del("alice"), want: codes.Unauthenticated},
		{name: "rotate needs token", call: rotate("alice"), want: codes.Unauthenticated},
		{name: "token checked before id", call: get(""), want: codes.Unauthenticated},
		{name: "no id", call: get(""), md: bearer, want: codes.InvalidArgument, wantMsg: "invalid key id"},
		{name: "bad id chars", call: get("a b"), md: bearer, want: codes.InvalidArgument, wantMsg: "invalid key id"},
		{name: "id too long", call: get(strings.Repeat("a", 257)), md: bearer, want: codes.InvalidArgument},
		{name: "delete bad id", call: del("a\nb"), md: bearer, want: codes.InvalidArgument},
		{name: "delete absent", call: del("bob"), md: bearer, want: codes.NotFound, wantMsg: "not found"},
		{name: "delete", call: del("bob"), md: bearer, want: codes.OK,
			setup: func(f *keyringtest.Fake) { f.Put("bob", 1) }},
		{name: "rotate", call: rotate("bob"), md: bearer, want: codes.OK,
			setup: func(f *keyringtest.Fake) { f.Put("bob", 1) },
			check: func(t *testing.T, resp any) {
				if r := resp.(*rkmsv1.RotateKeyResponse); r.GetVersion() != 2 || r.GetId() != "bob" {
					t.Fatalf("bad rotate response %v", r)
				}
			}},
		{name: "rotate absent", call: rotate("nobody"), md: bearer, want: codes.NotFound},
		{name: "unavailable", call: get("alice"), md: bearer, want: codes.Unavailable, wantMsg: "unavailable",
			setup: func(f *keyringtest.Fake) { f.Fail = fmt.Errorf("create: %w: %w", keyring.ErrUnavailable, internal) }},
		{name: "deadline is unavailable", call: get("alice"), md: bearer, want: codes.Unavailable,
			opts:  keyservice.Options{Timeout: 20 * time.Millisecond},
			setup: func(f *keyringtest.Fake) { f.Delay = time.Second }},
		{name: "invalid id from the keyring", call: rotate("alice"), md: bearer, want: codes.InvalidArgument,
			setup: func(f *keyringtest.Fake) { f.Fail = fmt.Errorf("%w: reserved", keyring.ErrInvalidID) }},
		{name: "create limited", call: get("alice"), md: bearer, want: codes.ResourceExhausted, wantMsg: "retry after 2s",
			setup: func(f *keyringtest.Fake) {
				f.Fail = fmt.Errorf("create key: %w", &keyring.CreateLimitedError{RetryAfter: 2 * time.Second})
			}},
		{name: "internal hidden", call: get("alice"), md: bearer, want: codes.Internal, wantMsg: "internal error",
			setup: func(f *keyringtest.Fake) { f.Fail = internal }},
		{name: "wiped key is internal", call: get("alice"), md: bearer, want: codes.Internal,
			setup: func(f *keyringtest.Fake) { f.Fail = secret.ErrWiped }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := keyringtest.NewFake()
			if tc.setup != nil {
				tc.setup(f)
			}
			opts := tc.opts
			opts.Token = token
			c := serve(t, f, opts)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if len(tc.md) > 0 {
				ctx = metadata.AppendToOutgoingContext(ctx, tc.md...)
			}
			resp, err := tc.call(ctx, c)
			st := status.Convert(err)
			if st.Code() != tc.want {
				t.Fatalf("code %v (%q), want %v", st.Code(), st.Message(), tc.want)
			}
			if !strings.Contains(st.Message(), tc.wantMsg) {
				t.Fatalf("message %q does not mention %q", st.Message(), tc.wantMsg)
			}
			if strings.Contains(st.Message(), "10.1.2.3") {
				t.Fatalf("internals leaked: %q", st.Message())
			}
			if tc.check != nil {
				tc.check(t, resp)
			}
		})
	}
}

// TestAuditLog checks one audit record per call, with the key id and never the key.
func TestAuditLog(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil))
	c := serve(t, keyringtest.NewFake(), keyservice.Options{Token: token, Logger: log})
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	resp, err := c.GetKey(ctx, &rkmsv1.GetKeyRequest{Id: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.RotateKey(ctx, &rkmsv1.RotateKeyRequest{Id: "alice"}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	for _, want := range []string{`"op":"read"`, `"op":"rotate"`, `"key_id":"alice"`, `"api":"grpc"`, `"remote":"127.0.0.1:`} {
		if !strings.Contains(out, want) {
			t.Errorf("audit log lacks %s:\n%s", want, out)
		}
	}
	for _, secretForm := range []string{string(resp.GetKey()), base64.StdEncoding.EncodeToString(resp.GetKey())} {
		if strings.Contains(out, secretForm) {
			t.Fatal("key material in the audit log")
		}
	}
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

func TestNewRejects(t *testing.T) {
	if _, err := newServer(keyringtest.NewFake(), keyservice.Options{}); err == nil {
		t.Error("New accepted an empty token")
	}
	if _, err := newServer(nil, keyservice.Options{Token: token}); err == nil {
		t.Error("New accepted nil keys")
	}
	if _, err := New(nil); err == nil {
		t.Error("New accepted a nil key service")
	}
}

// TestFailedAuthThrottled: after authlimit.Failures failed calls from one address, even the
// right token is refused with RESOURCE_EXHAUSTED until the window ends.
func TestFailedAuthThrottled(t *testing.T) {
	th := authlimit.New(nil)
	s, err := newServer(keyringtest.NewFake(), keyservice.Options{Token: "throttle-token-0123456789", Throttle: th})
	if err != nil {
		t.Fatal(err)
	}
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 9), Port: 7}})
	call := func(tok string) codes.Code {
		md := metadata.Pairs("authorization", "Bearer "+tok)
		_, err := s.GetKey(metadata.NewIncomingContext(ctx, md), &rkmsv1.GetKeyRequest{Id: "tenant-a"})
		return status.Code(err)
	}
	for range authlimit.Failures {
		if c := call("wrong"); c != codes.Unauthenticated {
			t.Fatalf("wrong token: %v", c)
		}
	}
	if c := call("throttle-token-0123456789"); c != codes.ResourceExhausted {
		t.Fatalf("right token after %d failures: %v, want ResourceExhausted", authlimit.Failures, c)
	}
}

// TestEveryClassHasACode: the code table covers the key service's closed set of classes.
func TestEveryClassHasACode(t *testing.T) {
	for c := keyservice.Internal; c <= keyservice.Exists; c++ {
		if code, ok := classCodes[c]; !ok || code == codes.OK {
			t.Errorf("class %v has no code", c)
		}
	}
}
