package extproc

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/extproc/policy"
)

// Streamed bodies (duplex.go) message by message, the way Envoy sends them in
// FULL_DUPLEX_STREAMED mode (envoy/duplex_test.go checked it against the real Envoy).

func duplexPolicies() []policy.Config {
	return []policy.Config{
		{Name: "imports", KeyID: "tenant-{header:x-tenant-id}", Request: policy.Direction{Stream: true, Encrypt: []policy.Field{{Path: "$.ssn"}}}},
		{Name: "exports", KeyID: "tenant-{header:x-tenant-id}", DecryptOnly: true, Response: policy.Direction{Stream: true, Decrypt: []policy.Field{{Path: "$.ssn"}}}},
	}
}

// duplexClient opens a stream on a streaming route that names pol.
func duplexClient(t *testing.T, s *Server, pol string) extprocv3.ExternalProcessor_ProcessClient {
	t.Helper()
	fe := startServer(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	ctx = metadata.AppendToOutgoingContext(ctx, PolicyMetadataKey, pol, StreamMetadataKey, StreamMetadataValue)
	c, err := fe.client.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func roundTrip(t *testing.T, c extprocv3.ExternalProcessor_ProcessClient, m *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
	t.Helper()
	if err := c.Send(m); err != nil {
		t.Fatal(err)
	}
	return c.Recv()
}

func reqHeaders(method, path, contentType string, eos bool) *extprocv3.ProcessingRequest {
	h := hdrs{{":method", method}, {":path", path}, {"x-tenant-id", "t1"}}
	if contentType != "" {
		h = append(h, [2]string{"content-type", contentType})
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: h.proto(), EndOfStream: eos}}}
}

func respHeaders(contentType string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: hdrs{{":status", "200"}, {"content-type", contentType}}.proto()}}}
}

func reqChunk(b string, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: []byte(b), EndOfStream: eos}}}
}

func respChunk(b string, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
		ResponseBody: &extprocv3.HttpBody{Body: []byte(b), EndOfStream: eos}}}
}

// streamed returns a body answer's streamed_response, failing t if it is not one.
func streamedOf(t *testing.T, r *extprocv3.ProcessingResponse) *extprocv3.StreamedBodyResponse {
	t.Helper()
	br := r.GetRequestBody()
	if br == nil {
		br = r.GetResponseBody()
	}
	sr := br.GetResponse().GetBodyMutation().GetStreamedResponse()
	if sr == nil {
		t.Fatalf("answer %v is not a streamed_response", r)
	}
	return sr
}

// TestDuplexRequest: chunks that split lines and values anywhere come out sealed, with the
// stamp on the headers' answer, end_of_stream on the last, nothing answered for a duplicate
// final chunk (envoyproxy/envoy#46237), and the budget all given back at the end.
func TestDuplexRequest(t *testing.T) {
	s, err := NewServer(duplexPolicies(), newFakeKeys(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := duplexClient(t, s, "imports")
	r, err := roundTrip(t, c, reqHeaders("POST", "/imports", "application/x-ndjson", false))
	if err != nil || r.GetRequestHeaders() == nil || r.GetModeOverride() != nil || r.GetDynamicMetadata() == nil {
		t.Fatalf("headers answer %v, %v: want CONTINUE, no mode_override, the stamp", r, err)
	}
	in := `{"ssn":"SECRET-1","n":1}` + "\n" + `{"n":2,"ssn":"SECRET-2"}` + "\n"
	var out []byte
	for i, cut := range []int{3, 11, 30, len(in)} {
		from := []int{0, 3, 11, 30}[i]
		r, err := roundTrip(t, c, reqChunk(in[from:cut], cut == len(in)))
		if err != nil {
			t.Fatal(err)
		}
		sr := streamedOf(t, r)
		out = append(out, sr.GetBody()...)
		if sr.GetEndOfStream() != (cut == len(in)) {
			t.Fatalf("chunk %d: end_of_stream %v", i, sr.GetEndOfStream())
		}
	}
	if bytes.Contains(out, []byte("SECRET")) || bytes.Count(out, []byte(envelope.Prefix)) != 2 || bytes.Count(out, []byte("\n")) != 2 {
		t.Fatalf("output %s: want two lines, each ssn sealed", out)
	}
	// The duplicate final chunk is not answered: the next answer is the response headers'.
	if err := c.Send(reqChunk(in[30:], true)); err != nil {
		t.Fatal(err)
	}
	r, err = roundTrip(t, c, respHeaders("application/json"))
	if err != nil || r.GetResponseHeaders() == nil {
		t.Fatalf("after a duplicate final chunk: %v, %v; want the response headers' answer", r, err)
	}
	if _, err := roundTrip(t, c, respChunk(`{"ok":true}`, true)); err != nil {
		t.Fatal(err)
	}
	_ = c.CloseSend()
	waitReserved(t, s, 0)
}

// TestDuplexBudget: what a stream holds (a selected value split over chunks) is charged to the
// memory budget while it is held, and given back once written.
func TestDuplexBudget(t *testing.T) {
	s, err := NewServer(duplexPolicies(), newFakeKeys(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := duplexClient(t, s, "imports")
	if _, err := roundTrip(t, c, reqHeaders("POST", "/imports", "application/x-ndjson", false)); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 600<<10)
	var out []byte
	for _, chunk := range []string{`{"ssn":"` + long, `x`} {
		r, err := roundTrip(t, c, reqChunk(chunk, false))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, streamedOf(t, r).GetBody()...)
	}
	// The first answer was read (the second chunk came after it): the held value is what is
	// reserved now, besides the second chunk's answer.
	if got := s.Stats().ReservedBytes; got < 600<<10 {
		t.Fatalf("reserved %d bytes while a 600 KiB value is held", got)
	}
	r, err := roundTrip(t, c, reqChunk(`"}`+"\n", true))
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, streamedOf(t, r).GetBody()...)
	// 64 x's: the plaintext is 600 KiB of them, while a ciphertext (base64url) holds "xxxx"
	// by chance in about 1 run in 20, which made this test flaky.
	if !strings.HasPrefix(string(out), `{"ssn":"rkms:`) || bytes.Contains(out, []byte(strings.Repeat("x", 64))) {
		t.Fatalf("output %.100s...: want the value sealed", out)
	}
	_ = c.CloseSend()
	waitReserved(t, s, 0)
}

// TestDuplexResponseError: a value that does not open in a streamed response ends the ext_proc
// stream with a non-OK status (Envoy resets the client's stream: its headers are out), and no
// byte of the broken line goes out.
func TestDuplexResponseError(t *testing.T) {
	s, err := NewServer(duplexPolicies(), newFakeKeys(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := duplexClient(t, s, "exports")
	for _, m := range []*extprocv3.ProcessingRequest{reqHeaders("GET", "/exports", "", true), respHeaders("application/x-ndjson")} {
		if _, err := roundTrip(t, c, m); err != nil {
			t.Fatal(err)
		}
	}
	r, err := roundTrip(t, c, respChunk(`{"ssn":null}`+"\n"+`{"ssn":"PLAIN-1"}`+"\n", false))
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("answer %v, error %v: want InvalidArgument", r, err)
	}
	if !strings.Contains(status.Convert(err).Message(), "line 2") {
		t.Errorf("status %q does not name line 2", status.Convert(err).Message())
	}
	waitReserved(t, s, 0)
}

// TestDuplexRefusals: refusals at the headers of a streaming route, before anything goes on.
func TestDuplexRefusals(t *testing.T) {
	notStreaming := duplexPolicies()
	notStreaming[0].Request.Stream = false
	for _, tc := range []struct {
		name        string
		pols        []policy.Config
		contentType string
		status      int
	}{
		{"policy without request.stream", notStreaming, "application/x-ndjson", 500},
		{"text", duplexPolicies(), "text/plain", 415},
		{"two types", duplexPolicies(), "application/json, application/x-ndjson", 415},
		{"no type", duplexPolicies(), "", 415},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewServer(tc.pols, newFakeKeys(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			c := duplexClient(t, s, "imports")
			r, err := roundTrip(t, c, reqHeaders("POST", "/imports", tc.contentType, false))
			if err != nil || int(r.GetImmediateResponse().GetStatus().GetCode()) != tc.status {
				t.Fatalf("answer %v, %v: want %d", r, err, tc.status)
			}
		})
	}
}

// waitReserved waits for the server's budget to come back to want bytes reserved (a stream's
// goroutine frees it once the stream ends).
func waitReserved(t *testing.T, s *Server, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().ReservedBytes != want {
		if time.Now().After(deadline) {
			t.Fatalf("reserved %d bytes, want %d", s.Stats().ReservedBytes, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
