package extproc

import (
	"context"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestMaxConcurrentStreams: with the limit reached, one more stream ends at once with
// RESOURCE_EXHAUSTED and a message naming the limit (Envoy, failing closed, answers
// status_on_error); once a stream ends, a new one is served again.
func TestMaxConcurrentStreams(t *testing.T) {
	const limit = 3
	e := newTestEnv(t, Options{MaxConcurrentStreams: limit})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The per-connection limit would make this client queue its streams instead of sending
	// them; several connections reach the server-wide limit, as several Envoy workers do.
	open := func(fe *fakeEnvoy) (extprocv3.ExternalProcessor_ProcessClient, error) {
		st, err := fe.client.Process(ctx)
		if err != nil {
			return nil, err
		}
		if err := st.Send(fuzzMessage(0)); err != nil {
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
	e := newTestEnv(t, Options{MaxConcurrentStreams: limit})
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
