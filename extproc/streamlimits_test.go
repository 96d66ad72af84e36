package extproc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	testenv "github.com/rkms/rkms/internal/testing/env"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// limitRec records refusals by limits (LimitObserver) beside the messages (Observer).
type limitRec struct {
	mu      sync.Mutex
	refused map[string]int
}

func (r *limitRec) ObserveRequest(string, string, string, int, time.Duration) {}
func (r *limitRec) ObserveFields(string, string, int)                         {}
func (r *limitRec) ObserveRefused(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refused == nil {
		r.refused = map[string]int{}
	}
	r.refused[reason]++
}

func (r *limitRec) count(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refused[reason]
}

// postHeaders is Envoy's request_headers of a POST /patients for tenant, with content-length cl
// (none when negative) and, when client is not "", the source.address request attribute.
func postHeaders(tenant, client string, cl int) *extprocv3.ProcessingRequest {
	hs := hdrs{{":method", "POST"}, {":path", "/patients"}, {"content-type", "application/json"}, {"x-tenant-id", tenant}}
	if cl >= 0 {
		hs = append(hs, [2]string{"content-length", strconv.Itoa(cl)})
	}
	m := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: hs.proto()}}}
	if client != "" {
		m.Attributes = map[string]*structpb.Struct{attributesNamespace: {Fields: map[string]*structpb.Value{
			attrSourceAddress: structpb.NewStringValue(client)}}}
	}
	return m
}

// paddedBody is a patients JSON body of exactly n bytes (n >= 40) with one tagged field.
func paddedBody(n int) []byte {
	const head, tail = `{"ssn":"123-45-6789","name":"`, `"}`
	return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
}

func requestBody(b []byte) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: b, EndOfStream: true}}}
}

// rawStream is one ext_proc stream driven message by message.
type rawStream struct {
	t      testing.TB
	st     extprocv3.ExternalProcessor_ProcessClient
	cancel context.CancelFunc
}

func openRaw(t testing.TB, fe *fakeEnvoy) *rawStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	st, err := fe.client.Process(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	r := &rawStream{t: t, st: st, cancel: cancel}
	t.Cleanup(cancel)
	return r
}

// ask sends m and returns the answer, or the stream's end (a Send that fails with io.EOF means
// the server ended the stream: its status comes from Recv).
func (r *rawStream) ask(m *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
	if err := r.st.Send(m); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return r.st.Recv()
}

// immediate checks that resp is an ImmediateResponse with code, retry-after: 1 and the JSON
// error msg, and that the server then ends the stream.
func (r *rawStream) immediate(resp *extprocv3.ProcessingResponse, err error, code int, msg string) {
	r.t.Helper()
	if err != nil {
		r.t.Fatalf("want immediate response %d, got error %v", code, err)
	}
	ir := resp.GetImmediateResponse()
	if ir == nil || int(ir.GetStatus().GetCode()) != code {
		r.t.Fatalf("want immediate response %d, got %v", code, resp)
	}
	var retry string
	for _, h := range ir.GetHeaders().GetSetHeaders() {
		if h.GetHeader().GetKey() == "retry-after" {
			retry = string(h.GetHeader().GetRawValue())
		}
	}
	var body struct{ Error string }
	if jerr := json.Unmarshal(ir.GetBody(), &body); jerr != nil || body.Error != msg || retry != "1" {
		r.t.Fatalf("immediate response body %s, retry-after %q; want error %q, retry-after 1", ir.GetBody(), retry, msg)
	}
	if _, err := r.st.Recv(); !errors.Is(err, io.EOF) {
		r.t.Fatalf("after a refusal by a limit the stream ended with %v, want OK at once", err)
	}
}

// waitReleased waits until no stream is in flight and every share and byte of the budget has
// been given back.
func waitReleased(t testing.TB, s *Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := s.Stats()
		if st.Streams == 0 && st.ReservedBytes == 0 && s.clients.len() == 0 && s.tenants.len() == 0 && s.openers.len() == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not released: %+v, %d clients, %d tenants", st, s.clients.len(), s.tenants.len())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitNoHandlers waits until no goroutine runs a stream handler (Process) or its wire.
func waitNoHandlers(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	buf := make([]byte, 4<<20)
	for {
		all := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(all, "extproc.(*run).serve") && !strings.Contains(all, "extproc.(*Server).Process") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream goroutines left:\n%s", all)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStreamTimeouts: a stream that sends nothing, stops sending, or lives too long ends with
// DEADLINE_EXCEEDED after its limit (not before), counted with its reason; the handler and its
// wire goroutine end, and its slot is free again.
func TestStreamTimeouts(t *testing.T) {
	get := fuzzMessage(1 << 3) // GET /patients/1 (end_of_stream)
	respHeaders := fuzzMessage(3)
	for _, tc := range []struct {
		name   string
		opts   Options
		msgs   []*extprocv3.ProcessingRequest
		pause  time.Duration // between messages
		reason string
		after  time.Duration // earliest end
	}{
		{"never sends", Options{FirstMessageTimeout: 200 * time.Millisecond}, nil, 0, RefusedFirstMessageTimeout, 200 * time.Millisecond},
		{"stops after headers", Options{IdleTimeout: 200 * time.Millisecond}, []*extprocv3.ProcessingRequest{get}, 0, RefusedIdleTimeout, 200 * time.Millisecond},
		// The second message comes well inside both limits even on a loaded machine; then the
		// stream's life (1 s) ends before the idle wait (0.9 s after it) would.
		{"lives too long", Options{StreamTimeout: time.Second, IdleTimeout: 900 * time.Millisecond},
			[]*extprocv3.ProcessingRequest{get, respHeaders}, 250 * time.Millisecond, RefusedStreamTimeout, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &limitRec{}
			logs := &testenv.LockedBuffer{}
			tc.opts.Observer = rec
			tc.opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
			e := newTestEnv(t, tc.opts)
			start := time.Now()
			r := openRaw(t, e.envoy)
			for i, m := range tc.msgs {
				if i > 0 {
					time.Sleep(tc.pause)
				}
				if _, err := r.ask(m); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
			}
			_, err := r.st.Recv()
			took := time.Since(start)
			if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(status.Convert(err).Message(), tc.reason) {
				t.Fatalf("stream ended with %v, want DEADLINE_EXCEEDED naming %s", err, tc.reason)
			}
			if took < tc.after || took > tc.after+3*time.Second {
				t.Errorf("ended after %v, want about %v", took, tc.after)
			}
			if rec.count(tc.reason) != 1 {
				t.Errorf("refusals %v, want one %s", rec.refused, tc.reason)
			}
			waitReleased(t, e.srv)
			waitNoHandlers(t)
			if n := strings.Count(logs.String(), "ext_proc stream ended: timeout"); n != 1 || !strings.Contains(logs.String(), "level=WARN") ||
				!strings.Contains(logs.String(), "reason="+tc.reason) {
				t.Errorf("want one warning naming %s, got %d:\n%s", tc.reason, n, logs)
			}
		})
	}
}

// TestClientShare: a client (source.address from a trusted peer, port stripped) holds at most
// MaxStreamsPerClient streams; one more is answered 429 with retry-after and ended at once;
// other clients are served; a freed slot serves the client again.
func TestClientShare(t *testing.T) {
	rec := &limitRec{}
	e := newTestEnv(t, Options{MaxConcurrentStreams: 16, MaxStreamsPerClient: 2, MaxStreamsPerTenant: 16, Observer: rec})
	var held []*rawStream
	for i := range 2 {
		r := openRaw(t, e.envoy)
		if resp, err := r.ask(postHeaders("t1", "10.0.0.1:"+strconv.Itoa(1000+i), 10)); err != nil || resp.GetRequestHeaders() == nil {
			t.Fatalf("stream %d within the share: %v, %v", i, resp, err)
		}
		held = append(held, r)
	}
	r := openRaw(t, e.envoy)
	resp, err := r.ask(postHeaders("t1", "10.0.0.1:3000", 10))
	r.immediate(resp, err, 429, "too many requests in flight from this client")
	if rec.count(RefusedClientShare) != 1 {
		t.Errorf("refusals %v", rec.refused)
	}
	other := openRaw(t, e.envoy)
	if resp, err := other.ask(postHeaders("t1", "10.0.0.2:1000", 10)); err != nil || resp.GetRequestHeaders() == nil {
		t.Fatalf("another client: %v, %v", resp, err)
	}
	held[0].cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := openRaw(t, e.envoy)
		resp, err := r.ask(postHeaders("t1", "10.0.0.1:4000", 10))
		if err == nil && resp.GetRequestHeaders() != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a stream of the client ended: %v, %v", resp, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestTenantShare: a tenant (the computed key id) holds at most MaxStreamsPerTenant streams,
// whatever the clients; other tenants are served.
func TestTenantShare(t *testing.T) {
	rec := &limitRec{}
	e := newTestEnv(t, Options{MaxConcurrentStreams: 16, MaxStreamsPerClient: 16, MaxStreamsPerTenant: 1, Observer: rec})
	a := openRaw(t, e.envoy)
	if resp, err := a.ask(postHeaders("t1", "10.0.0.1:1", 10)); err != nil || resp.GetRequestHeaders() == nil {
		t.Fatalf("first stream of t1: %v, %v", resp, err)
	}
	b := openRaw(t, e.envoy)
	resp, err := b.ask(postHeaders("t1", "10.0.0.2:1", 10))
	b.immediate(resp, err, 429, "too many requests in flight for this tenant")
	c := openRaw(t, e.envoy)
	if resp, err := c.ask(postHeaders("t2", "10.0.0.2:1", 10)); err != nil || resp.GetRequestHeaders() == nil {
		t.Fatalf("other tenant: %v, %v", resp, err)
	}
	if rec.count(RefusedTenantShare) != 1 {
		t.Errorf("refusals %v", rec.refused)
	}
	a.cancel()
	c.cancel()
	waitReleased(t, e.srv)
}

// TestClientKey: source.address counts only from an authenticated ext_proc peer (verified
// client certificate or loopback); otherwise the peer's own IP names the client.
func TestClientKey(t *testing.T) {
	tcp := func(ip string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: 4444} }
	verified := credentials.TLSInfo{State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{}}}}
	for _, tc := range []struct {
		name   string
		peer   *peer.Peer
		source string
		want   string
	}{
		{"loopback peer, source address", &peer.Peer{Addr: tcp("127.0.0.1")}, "10.0.0.1:5000", "10.0.0.1"},
		{"loopback peer, IPv6 source address", &peer.Peer{Addr: tcp("::1")}, "[2001:db8::1]:5000", "2001:db8::1"},
		{"verified peer, source address", &peer.Peer{Addr: tcp("203.0.113.9"), AuthInfo: verified}, "10.0.0.1:5000", "10.0.0.1"},
		{"unauthenticated peer, source address ignored", &peer.Peer{Addr: tcp("203.0.113.9")}, "10.0.0.1:5000", "203.0.113.9"},
		{"loopback peer, no source address", &peer.Peer{Addr: tcp("127.0.0.1")}, "", "127.0.0.1"},
		{"no peer", nil, "10.0.0.1:5000", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.peer != nil {
				ctx = peer.NewContext(ctx, tc.peer)
			}
			if got := clientKey(ctx, postHeaders("t1", tc.source, 10)); got != tc.want {
				t.Errorf("client %q, want %q", got, tc.want)
			}
		})
	}
}
