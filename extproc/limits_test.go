package extproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rkms/rkms/envelope"
)

// cards returns a patients body with n card numbers (n values the policy encrypts).
func cards(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"number":"4111-%04d"}`, i)
	}
	return `{"name":"n","cards":[` + strings.Join(parts, ",") + `]}`
}

// TestMaxFields: a body with more selected values than MaxFields is refused with a message that
// names the limit: 413 for a request (the app never sees it), 502 for a response.
func TestMaxFields(t *testing.T) {
	e := newTestEnv(t, Options{MaxFields: 10})
	tests := []struct {
		name    string
		req     httpReq
		app     func(*httpReq) httpResp // nil: the recorder app
		status  int
		message string
	}{
		{"request at the limit", jsonReq("POST", "/patients", "t1", cards(10)), nil, 201, ""},
		{"request over the limit", jsonReq("POST", "/patients", "t1", cards(11)), nil, 413, "request body has more than 10 selected fields"},
		{"response over the limit", jsonReq("GET", "/patients/1", "t1", ""), func(*httpReq) httpResp {
			items := make([]string, 11)
			for i := range items {
				items[i] = `{"ssn":null}` // null passes at a decrypt path: only the count refuses
			}
			return httpResp{status: 200, headers: hdrs{{"content-type", "application/json"}},
				body: []byte(`{"items":[` + strings.Join(items, ",") + `]}`)}
		}, 502, "response body has more than 10 selected fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := tt.app
			if app == nil {
				app = recorderApp(e.app)
			}
			before := len(e.app.Received())
			x := e.envoy.do(envoyCfg{}, tt.req, app)
			if x.client.status != tt.status {
				t.Fatalf("status %d, want %d: %s", x.client.status, tt.status, x.client.body)
			}
			if tt.message != "" {
				if got := errorMessage(t, x); got != tt.message {
					t.Fatalf("error %q, want %q", got, tt.message)
				}
			}
			if tt.status == 413 && len(e.app.Received()) != before {
				t.Fatal("the app received a refused request")
			}
		})
	}
}

// idKeys records the request id that each key lookup's context carries.
type idKeys struct {
	Keys
	mu  sync.Mutex
	ids []string
}

func (k *idKeys) Current(ctx context.Context, id string) (envelope.Key, error) {
	k.mu.Lock()
	k.ids = append(k.ids, RequestID(ctx))
	k.mu.Unlock()
	return k.Keys.Current(ctx, id)
}

// TestRequestIDInKeyContext: Keys implementations see the HTTP request's id (for audit records of
// key creation), and nothing outside a lookup does.
func TestRequestIDInKeyContext(t *testing.T) {
	keys := &idKeys{Keys: newFakeKeys()}
	srv, err := NewServer(loadPolicies(t), keys, Options{TrustRequestID: true})
	if err != nil {
		t.Fatal(err)
	}
	fe := startServer(t, srv)
	req := jsonReq("POST", "/patients", "t1", `{"ssn":"1"}`)
	req.headers = append(req.headers, [2]string{"x-request-id", "req-42"})
	if x := fe.do(envoyCfg{}, req, func(*httpReq) httpResp {
		return httpResp{status: 204}
	}); x.client.status != 204 {
		t.Fatalf("status %d: %s", x.client.status, x.client.body)
	}
	keys.mu.Lock()
	defer keys.mu.Unlock()
	if len(keys.ids) != 1 || keys.ids[0] != "req-42" {
		t.Fatalf("request ids seen by Keys: %q", keys.ids)
	}
	if RequestID(context.Background()) != "" {
		t.Fatal("RequestID outside a lookup")
	}
}

// TestMaxConcurrentStreams: with the limit reached, one more stream ends at once with
// RESOURCE_EXHAUSTED and a message naming the limit (Envoy, failing closed, answers
// status_on_error); once a stream ends, a new one is served again.
func TestMaxConcurrentStreams(t *testing.T) {
	const limit = 3
	e := newTestEnv(t, Options{MaxConcurrentStreams: limit, MaxStreamsPerClient: limit, MaxStreamsPerTenant: limit})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The per-connection limit would make this client queue its streams instead of sending
	// them; several connections reach the server-wide limit, as several Envoy workers do.
	open := func(fe *fakeEnvoy) (extprocv3.ExternalProcessor_ProcessClient, error) {
		st, err := fe.client.Process(ctx)
		if err != nil {
			return nil, err
		}
		// A stream the server refused at once makes Send fail with io.EOF; gRPC's contract is
		// that the real status then comes from Recv.
		if err := st.Send(fuzzMessage(0)); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		_, err = st.Recv()
		return st, err
	}
	var held []extprocv3.ExternalProcessor_ProcessClient
	for range limit {
		st, err := open(startServer(t, e.srv))
		if err != nil {
			t.Fatalf("stream within the limit: %v", err)
		}
		held = append(held, st)
	}
	_, err := open(startServer(t, e.srv))
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "too many concurrent ext_proc streams (limit 3)") {
		t.Fatalf("stream over the limit: %v, want ResourceExhausted naming the limit", err)
	}
	// End one held stream; the server notices when the stream's handler returns.
	_ = held[0].CloseSend()
	if _, err := held[0].Recv(); err == nil {
		t.Fatal("held stream answered after close")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, err := open(startServer(t, e.srv))
		if err == nil {
			_ = st.CloseSend()
			break
		}
		if status.Code(err) != codes.ResourceExhausted || time.Now().After(deadline) {
			t.Fatalf("after a stream ended: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMaxConcurrentStreamsPerConnection: the limit is advertised in HTTP/2 SETTINGS, so a client
// on one connection holds its next stream back instead of sending it.
func TestMaxConcurrentStreamsPerConnection(t *testing.T) {
	const limit = 2
	e := newTestEnv(t, Options{MaxConcurrentStreams: limit, MaxStreamsPerClient: limit, MaxStreamsPerTenant: limit})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range limit {
		st, err := e.envoy.client.Process(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(fuzzMessage(0)); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	st, err := e.envoy.client.Process(short)
	if err == nil {
		_, err = st.Recv()
	}
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("stream over the per-connection limit: %v, want it held back until its deadline", err)
	}
	if n := e.srv.streams.Load(); n != limit {
		t.Fatalf("%d streams reached the server, want %d", n, limit)
	}
}

func TestOptionsRejectNegativeLimits(t *testing.T) {
	for _, o := range []Options{{MaxFields: -1}, {MaxConcurrentStreams: -1}} {
		if _, err := NewServer(nil, newFakeKeys(), o); err == nil {
			t.Errorf("NewServer accepted %+v", o)
		}
	}
}

// TestOptionsLimits: the shares may not exceed the stream limit, the budget must hold one
// largest body, and the defaults follow MaxConcurrentStreams and MaxBodyBytes.
func TestOptionsLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		ok   bool
	}{
		{"defaults", Options{}, true},
		{"client share over the stream limit", Options{MaxConcurrentStreams: 8, MaxStreamsPerClient: 9}, false},
		{"tenant share over the stream limit", Options{MaxConcurrentStreams: 8, MaxStreamsPerTenant: 9}, false},
		{"budget under one body", Options{MaxBodyBytes: 1 << 20, MemoryBudget: BodyCostFactor<<20 - 1}, false},
		{"budget of one body", Options{MaxBodyBytes: 1 << 20, MemoryBudget: BodyCostFactor << 20}, true},
		{"negative timeout", Options{IdleTimeout: -1}, false},
		{"negative share", Options{MaxStreamsPerClient: -1}, false},
		{"negative budget", Options{MemoryBudget: -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewServer(nil, newFakeKeys(), tc.o); (err == nil) != tc.ok {
				t.Errorf("NewServer: %v, want ok %v", err, tc.ok)
			}
		})
	}
	o := Options{MaxConcurrentStreams: 100, MaxBodyBytes: 64 << 20}
	if err := o.withDefaults(); err != nil {
		t.Fatal(err)
	}
	if o.MaxStreamsPerClient != 25 || o.MaxStreamsPerTenant != 25 || o.MemoryBudget != BodyCostFactor*64<<20 ||
		o.StreamTimeout != DefaultStreamTimeout || o.IdleTimeout != DefaultIdleTimeout || o.FirstMessageTimeout != DefaultFirstMessageTimeout {
		t.Errorf("defaults: %+v", o)
	}
}
