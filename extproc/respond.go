package extproc

import (
	"encoding/json"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// headersResponse answers a headers message with CONTINUE, an optional header mutation and an
// optional mode override.
func headersResponse(ph phase, mut *extprocv3.HeaderMutation, mode *filterv3.ProcessingMode) *extprocv3.ProcessingResponse {
	hr := &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{HeaderMutation: mut}}
	r := &extprocv3.ProcessingResponse{ModeOverride: mode}
	if ph == phaseRequest {
		r.Response = &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: hr}
	} else {
		r.Response = &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: hr}
	}
	return r
}

// bodyResponse answers a body message. A nil body leaves it unchanged; otherwise the body is
// replaced and content-length set to its length in the same response, as Envoy checks
// content-length against the new body before replacing it.
func bodyResponse(ph phase, body []byte) *extprocv3.ProcessingResponse {
	cr := &extprocv3.CommonResponse{}
	if body != nil {
		cr.HeaderMutation = contentLength(len(body))
		cr.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: body}}
	}
	br := &extprocv3.BodyResponse{Response: cr}
	if ph == phaseRequest {
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: br}}
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: br}}
}

// trailersResponse answers a trailers message without changes.
func trailersResponse(ph phase) *extprocv3.ProcessingResponse {
	if ph == phaseRequest {
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
}

// immediateResponse makes Envoy answer the HTTP client itself with a JSON error.
func immediateResponse(code int, details, msg string) *extprocv3.ProcessingResponse {
	body, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocv3.ImmediateResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode(code)},
			Headers: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{
				setHeader("content-type", "application/json"),
			}},
			Body:    body,
			Details: details,
		},
	}}
}

// passThroughMode tells Envoy to send nothing more for a request no policy applies to.
func passThroughMode() *filterv3.ProcessingMode {
	return &filterv3.ProcessingMode{
		ResponseHeaderMode: filterv3.ProcessingMode_SKIP,
		RequestBodyMode:    filterv3.ProcessingMode_NONE,
		ResponseBodyMode:   filterv3.ProcessingMode_NONE,
	}
}

// policyMode asks Envoy for exactly the messages a policy needs.
func policyMode(needRequestBody, needResponse bool) *filterv3.ProcessingMode {
	m := passThroughMode()
	if needRequestBody {
		m.RequestBodyMode = filterv3.ProcessingMode_BUFFERED
	}
	if needResponse {
		m.ResponseHeaderMode = filterv3.ProcessingMode_SEND
		m.ResponseBodyMode = filterv3.ProcessingMode_BUFFERED
	}
	return m
}
