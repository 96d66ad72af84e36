package extproc

import (
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/proto"

	"github.com/rkms/rkms/extproc/grpccodec"
	"github.com/rkms/rkms/extproc/policy"
)

// TestCodecEveryAnswer encodes every shape of answer rkms sends with the server's codec
// (extproc/grpccodec, vtprotobuf's marshalling under the build tag vtprotobuf, proto.Marshal
// without) and checks that it is as long as proto.Marshal's encoding and decodes to the same
// message. The bytes may differ in order: vtprotobuf writes fields in field-number order,
// proto.Marshal puts a oneof after the other fields, and map entries have no defined order.
func TestCodecEveryAnswer(t *testing.T) {
	m := newModes()
	st := newStamps([]*policy.Policy{})
	sealed := []byte(`{"name":"rkms:v1:...","n":1}`)
	large := make([]byte, 64<<10) // above gRPC's pooling threshold
	for i := range large {
		large[i] = byte('a' + i%26)
	}
	stamped := func(r *extprocv3.ProcessingResponse) *extprocv3.ProcessingResponse {
		r.DynamicMetadata = st.none
		return r
	}
	cases := []struct {
		name string
		resp *extprocv3.ProcessingResponse
	}{
		{"request headers, continue", headersResponse(phaseRequest, nil, nil)},
		{"request headers, pass through, stamped", stamped(headersResponse(phaseRequest, nil, m.passThrough))},
		{"request headers, policy mode, drop accept-encoding", headersResponse(phaseRequest, m.dropAcceptEncoding, m.policy[1][1])},
		{"request headers, policy mode without body", headersResponse(phaseRequest, nil, m.policy[0][1])},
		{"response headers, mutation", headersResponse(phaseResponse, &extprocv3.HeaderMutation{SetHeaders: nil, RemoveHeaders: []string{"content-length"}}, nil)},
		{"request body, unchanged, stamped", stamped(bodyResponse(phaseRequest, nil))},
		{"request body, replaced, stamped", stamped(bodyResponse(phaseRequest, sealed))},
		{"request body, replaced, large", bodyResponse(phaseRequest, large)},
		{"response body, replaced", bodyResponse(phaseResponse, sealed)},
		{"response body, empty replacement", bodyResponse(phaseResponse, []byte{})},
		{"request trailers", trailersResponse(phaseRequest)},
		{"response trailers", trailersResponse(phaseResponse)},
		{"streamed request chunk", streamedResponse(phaseRequest, sealed, false)},
		{"streamed response end", streamedResponse(phaseResponse, nil, true)},
		{"immediate response, retry-after", errorResponse(limitError(kindBusy, phaseRequest, RefusedClientShare, "too many streams"))},
		{"immediate response, auth", errorResponse(newError(kindAuth, phaseResponse, "authentication failed", nil))},
		{"immediate response, plain", immediateResponse(403, "rkms_forbidden", "forbidden", "")},
	}
	codec := grpccodec.Codec{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want, err := proto.Marshal(c.resp)
			if err != nil {
				t.Fatal(err)
			}
			data, err := codec.Marshal(c.resp)
			if err != nil {
				t.Fatalf("codec marshal: %v", err)
			}
			got := data.Materialize()
			data.Free()
			if len(got) != len(want) {
				t.Errorf("codec wrote %d bytes, proto.Marshal %d", len(got), len(want))
			}
			var back extprocv3.ProcessingResponse
			if err := proto.Unmarshal(got, &back); err != nil {
				t.Fatalf("decode the codec's bytes: %v", err)
			}
			if !proto.Equal(&back, c.resp) {
				t.Errorf("decoded %v, want %v", &back, c.resp)
			}
		})
	}
}
