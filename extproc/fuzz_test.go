package extproc

import (
	"bytes"
	"context"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Bodies the fuzzer picks from. Every occurrence of "SECRET" sits in a field that the patients
// policy encrypts (or in a document that is not valid JSON), so it must never be forwarded.
var fuzzBodies = []string{
	`{"ssn":"SECRET-1","name":"n"}`,
	`{"ssn":"SECRET-1"`,
	`{"contact":{"email":"SECRET-2"}}`,
	`{"cards":[{"number":"SECRET-3"},{"number":"SECRET-3b"}]}`,
	`{"SSN":"SECRET-4"}`,
	`{"ssn":"SECRET-5","ssn":"SECRET-5"}`,
	`{"ssn":{"deep":["SECRET-6"]}}`,
	"SECRET\x00{",
	`{"ssn":"SECRET-7"} {"ssn":"SECRET-7"}`,
	``,
}

type fuzzHeaders struct {
	path, tenant string
	eos          bool
}

var fuzzRequests = []fuzzHeaders{
	{"/patients", "t1", false},
	{"/patients/1", "t1", true},
	{"/notes", "", false},
	{"/patients", "", false},
}

func fuzzMessage(b byte) *extprocv3.ProcessingRequest {
	v := int(b >> 3)
	switch b % 8 {
	case 0:
		h := fuzzRequests[v%len(fuzzRequests)]
		method := "POST"
		if h.eos {
			method = "GET"
		}
		hs := hdrs{{":method", method}, {":path", h.path}, {"content-type", "application/json"}}
		if h.tenant != "" {
			hs = append(hs, [2]string{"x-tenant-id", h.tenant})
		}
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
			RequestHeaders: &extprocv3.HttpHeaders{Headers: hs.proto(), EndOfStream: h.eos}}}
	case 1, 2:
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
			RequestBody: &extprocv3.HttpBody{Body: []byte(fuzzBodies[v%len(fuzzBodies)]), EndOfStream: b%8 == 1}}}
	case 3:
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
			ResponseHeaders: &extprocv3.HttpHeaders{Headers: hdrs{{":status", "200"}, {"content-type", "application/json"}}.proto(), EndOfStream: v%2 == 1}}}
	case 4:
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
			ResponseBody: &extprocv3.HttpBody{Body: []byte(fuzzBodies[v%len(fuzzBodies)]), EndOfStream: true}}}
	case 5:
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestTrailers{RequestTrailers: &extprocv3.HttpTrailers{}}}
	case 6:
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseTrailers{ResponseTrailers: &extprocv3.HttpTrailers{}}}
	default:
		return &extprocv3.ProcessingRequest{ObservabilityMode: v%2 == 1} // no request part at all
	}
}

// FuzzMessageSequence feeds random sequences of (possibly out of order, duplicated or empty)
// messages to one stream's processor. It must never panic, must answer each message with the
// matching kind, an immediate response, or a non-OK gRPC status, and must never let a request
// body with a tagged plaintext through under the patients policy.
func FuzzMessageSequence(f *testing.F) {
	f.Add([]byte{0, 1, 3, 4}, uint8(0))
	f.Add([]byte{1, 0, 1}, uint8(0))
	f.Add([]byte{0x10, 1, 0x18}, uint8(1))
	f.Add([]byte{8, 3, 4, 5, 6}, uint8(0))
	f.Add([]byte{0, 0x21, 0x29, 0x11}, uint8(0))
	f.Add([]byte{0x10, 0x19}, uint8(1))
	f.Add([]byte{0, 7, 0x0f}, uint8(2))
	srv, err := NewServer(loadPolicies(f), newFakeKeys(), Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, ops []byte, meta uint8) {
		if len(ops) > 24 {
			ops = ops[:24]
		}
		ctx := context.Background()
		named := ""
		switch meta % 3 {
		case 1:
			named = "patients"
		case 2:
			named = "nope"
		}
		if named != "" {
			ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(PolicyMetadataKey, named))
		}
		p := srv.newProcessor(ctx)
		guarded := false // the stream's request is under the patients policy
		for _, b := range ops {
			msg := fuzzMessage(b)
			resp, err := p.handle(ctx, msg)
			if err != nil {
				if status.Code(err) == codes.OK {
					t.Fatalf("error %v maps to gRPC OK", err)
				}
				return // the stream ends
			}
			if resp.GetImmediateResponse() != nil {
				continue
			}
			if !matches(msg, resp) {
				t.Fatalf("answer %T to %T", resp.GetResponse(), msg.GetRequest())
			}
			if rh := msg.GetRequestHeaders(); rh != nil {
				h := parseHeaders(rh.GetHeaders())
				guarded = named == "patients" || bytes.HasPrefix([]byte(h.first(":path")), []byte("/patients"))
			}
			if rb := msg.GetRequestBody(); rb != nil && guarded {
				out := rb.GetBody()
				if m := resp.GetRequestBody().GetResponse().GetBodyMutation(); m != nil {
					out = m.GetBody()
				}
				if bytes.Contains(out, []byte("SECRET")) {
					t.Fatalf("tagged plaintext forwarded: %s", out)
				}
			}
		}
	})
}

func matches(req *extprocv3.ProcessingRequest, resp *extprocv3.ProcessingResponse) bool {
	switch req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return resp.GetRequestHeaders() != nil
	case *extprocv3.ProcessingRequest_RequestBody:
		return resp.GetRequestBody() != nil
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return resp.GetRequestTrailers() != nil
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return resp.GetResponseHeaders() != nil
	case *extprocv3.ProcessingRequest_ResponseBody:
		return resp.GetResponseBody() != nil
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return resp.GetResponseTrailers() != nil
	}
	return false
}
