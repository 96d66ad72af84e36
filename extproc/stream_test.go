package extproc

import (
	"context"
	"errors"
	"io"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestStreamProtocol drives raw streams: broken sequences end with a non-OK status (Envoy then
// fails the request closed), never with OK; a stream Envoy closes ends cleanly.
func TestStreamProtocol(t *testing.T) {
	e := newTestEnv(t, Options{})
	post := fuzzMessage(0)       // POST /patients, tenant t1
	get := fuzzMessage(1 << 3)   // GET /patients/1 (end_of_stream)
	notes := fuzzMessage(2 << 3) // POST /notes (no policy)
	body := fuzzMessage(1)       // {"ssn":"SECRET-1",...}
	respHeaders := fuzzMessage(3)
	respBody := fuzzMessage(4)
	for _, tc := range []struct {
		name string
		msgs []*extprocv3.ProcessingRequest
		ok   int // answers expected before the failure
		code codes.Code
	}{
		{"body before headers", []*extprocv3.ProcessingRequest{body}, 0, codes.FailedPrecondition},
		{"headers twice", []*extprocv3.ProcessingRequest{post, post}, 1, codes.FailedPrecondition},
		{"body after end of stream", []*extprocv3.ProcessingRequest{get, body}, 1, codes.FailedPrecondition},
		{"two request bodies (STREAMED)", []*extprocv3.ProcessingRequest{post, fuzzMessage(2), body}, 2, codes.FailedPrecondition},
		{"response body without response headers", []*extprocv3.ProcessingRequest{get, respBody}, 1, codes.FailedPrecondition},
		{"response headers twice", []*extprocv3.ProcessingRequest{get, respHeaders, respHeaders}, 2, codes.FailedPrecondition},
		{"empty message", []*extprocv3.ProcessingRequest{{}}, 0, codes.FailedPrecondition},
		{"observability mode", []*extprocv3.ProcessingRequest{{ObservabilityMode: true, Request: post.Request}}, 0, codes.FailedPrecondition},
		{"message after an immediate response", []*extprocv3.ProcessingRequest{fuzzMessage(3 << 3), body}, 1, codes.FailedPrecondition},
		{"complete exchange", []*extprocv3.ProcessingRequest{post, body, respHeaders, respBody}, 4, codes.OK},
		{"no policy, bodies sent anyway", []*extprocv3.ProcessingRequest{notes, body, respHeaders, respBody}, 4, codes.OK},
		{"closed at once", nil, 0, codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			st, err := e.envoy.client.Process(ctx)
			if err != nil {
				t.Fatal(err)
			}
			answered := 0
			var end error
			for _, m := range tc.msgs {
				if err := st.Send(m); err != nil {
					break
				}
				if _, end = st.Recv(); end != nil {
					break
				}
				answered++
			}
			if end == nil {
				_ = st.CloseSend()
				_, end = st.Recv()
			}
			if answered != tc.ok {
				t.Errorf("%d answers, want %d", answered, tc.ok)
			}
			switch {
			case tc.code == codes.OK && !errors.Is(end, io.EOF):
				t.Errorf("stream ended with %v, want OK", end)
			case tc.code != codes.OK && status.Code(end) != tc.code:
				t.Errorf("stream ended with %v, want %v", end, tc.code)
			}
		})
	}
}
