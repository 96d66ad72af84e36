package extproc

import (
	"strconv"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/proto"
)

// TestResponsesAsMessages checks the single-allocation response builders against the same
// messages built one by one.
func TestResponsesAsMessages(t *testing.T) {
	body := []byte(`{"ssn":"rkms:AQ"}`)
	common := func(body []byte) *extprocv3.CommonResponse {
		if body == nil {
			return &extprocv3.CommonResponse{}
		}
		return &extprocv3.CommonResponse{
			HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
				setHeader("content-length", strconv.Itoa(len(body)))}},
			BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: body}},
		}
	}
	mut := &extprocv3.HeaderMutation{RemoveHeaders: []string{"accept-encoding"}}
	mode := policyMode(true, true)
	for _, tc := range []struct {
		name string
		got  *extprocv3.ProcessingResponse
		want *extprocv3.ProcessingResponse
	}{
		{"request body replaced", bodyResponse(phaseRequest, body), &extprocv3.ProcessingResponse{
			Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: common(body)}}}},
		{"response body replaced", bodyResponse(phaseResponse, body), &extprocv3.ProcessingResponse{
			Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{Response: common(body)}}}},
		{"empty body replaced", bodyResponse(phaseResponse, []byte{}), &extprocv3.ProcessingResponse{
			Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{Response: common([]byte{})}}}},
		{"request body unchanged", bodyResponse(phaseRequest, nil), &extprocv3.ProcessingResponse{
			Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: common(nil)}}}},
		{"request headers with mutation and mode", headersResponse(phaseRequest, mut, mode), &extprocv3.ProcessingResponse{
			ModeOverride: mode,
			Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{
				Response: &extprocv3.CommonResponse{HeaderMutation: mut}}}}},
		{"response headers", headersResponse(phaseResponse, nil, nil), &extprocv3.ProcessingResponse{
			Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{
				Response: &extprocv3.CommonResponse{}}}}},
		{"pass through", headersResponse(phaseRequest, nil, passThroughMode()), &extprocv3.ProcessingResponse{
			ModeOverride: &filterv3.ProcessingMode{ResponseHeaderMode: filterv3.ProcessingMode_SKIP,
				RequestBodyMode: filterv3.ProcessingMode_NONE, ResponseBodyMode: filterv3.ProcessingMode_NONE},
			Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{
				Response: &extprocv3.CommonResponse{}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !proto.Equal(tc.got, tc.want) {
				t.Fatalf("got  %v\nwant %v", tc.got, tc.want)
			}
			// The wire form is what Envoy sees; it must match too.
			g, err := proto.MarshalOptions{Deterministic: true}.Marshal(tc.got)
			if err != nil {
				t.Fatal(err)
			}
			w, _ := proto.MarshalOptions{Deterministic: true}.Marshal(tc.want)
			if string(g) != string(w) {
				t.Fatalf("wire forms differ:\n got %x\nwant %x", g, w)
			}
		})
	}
	if n := testing.AllocsPerRun(100, func() { _ = bodyResponse(phaseRequest, body) }); n > 1 {
		t.Errorf("bodyResponse: %v allocations, want 1", n)
	}
}
