package extproc

import (
	"encoding/json"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// headersResp is every message of a headers response in one allocation (the response is
// built for every headers message; separate messages were four allocations).
type headersResp struct {
	r    extprocv3.ProcessingResponse
	req  extprocv3.ProcessingResponse_RequestHeaders
	resp extprocv3.ProcessingResponse_ResponseHeaders
	hr   extprocv3.HeadersResponse
	cr   extprocv3.CommonResponse
}

// headersResponse answers a headers message with CONTINUE, an optional header mutation and an
// optional mode override.
func headersResponse(ph phase, mut *extprocv3.HeaderMutation, mode *filterv3.ProcessingMode) *extprocv3.ProcessingResponse {
	return new(headersResp).fill(ph, mut, mode)
}

// fill builds a headers response in a (see headersResponse), overwriting what a held.
func (a *headersResp) fill(ph phase, mut *extprocv3.HeaderMutation, mode *filterv3.ProcessingMode) *extprocv3.ProcessingResponse {
	*a = headersResp{}
	a.cr.HeaderMutation = mut
	a.hr.Response = &a.cr
	a.r.ModeOverride = mode
	if ph == phaseRequest {
		a.req.RequestHeaders = &a.hr
		a.r.Response = &a.req
	} else {
		a.resp.ResponseHeaders = &a.hr
		a.r.Response = &a.resp
	}
	return &a.r
}

// bodyResp is every message of a body response in one allocation: with a replaced body and its
// content-length that was thirteen allocations per body message.
type bodyResp struct {
	r       extprocv3.ProcessingResponse
	req     extprocv3.ProcessingResponse_RequestBody
	resp    extprocv3.ProcessingResponse_ResponseBody
	br      extprocv3.BodyResponse
	cr      extprocv3.CommonResponse
	bm      extprocv3.BodyMutation
	bmBody  extprocv3.BodyMutation_Body
	hm      extprocv3.HeaderMutation
	set     [1]*corev3.HeaderValueOption
	opt     corev3.HeaderValueOption
	hv      corev3.HeaderValue
	noApp   wrapperspb.BoolValue
	clenBuf [20]byte // decimal content-length
}

// bodyResponse answers a body message. A nil body leaves it unchanged; otherwise the body is
// replaced and content-length set to its length in the same response, as Envoy checks
// content-length against the new body before replacing it. The header is set as [setHeader]
// sets it: raw_value only, append=false.
func bodyResponse(ph phase, body []byte) *extprocv3.ProcessingResponse {
	return new(bodyResp).fill(ph, body)
}

// fill builds a body response in a (see bodyResponse), overwriting what a held.
func (a *bodyResp) fill(ph phase, body []byte) *extprocv3.ProcessingResponse {
	*a = bodyResp{}
	if body != nil {
		a.hv.Key = "content-length"
		a.hv.RawValue = strconv.AppendInt(a.clenBuf[:0], int64(len(body)), 10)
		a.opt.Header = &a.hv
		a.opt.Append = &a.noApp // false
		a.set[0] = &a.opt
		a.hm.SetHeaders = a.set[:]
		a.cr.HeaderMutation = &a.hm
		a.bmBody.Body = body
		a.bm.Mutation = &a.bmBody
		a.cr.BodyMutation = &a.bm
	}
	a.br.Response = &a.cr
	if ph == phaseRequest {
		a.req.RequestBody = &a.br
		a.r.Response = &a.req
	} else {
		a.resp.ResponseBody = &a.br
		a.r.Response = &a.resp
	}
	return &a.r
}

// trailersResponse answers a trailers message without changes.
func trailersResponse(ph phase) *extprocv3.ProcessingResponse {
	if ph == phaseRequest {
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
}

// errorResponse is the ImmediateResponse of a refusal: its status, details and JSON message,
// and retry-after when the refusal has one.
func errorResponse(pe *procError) *extprocv3.ProcessingResponse {
	retry := ""
	if d := pe.retryAfter(); d > 0 {
		retry = strconv.Itoa(int(d / time.Second))
	}
	return immediateResponseCode(httpStatus(pe), pe.kind.details(), pe.msg, pe.kind.code(), retry)
}

// immediateResponse makes Envoy answer the HTTP client itself with a JSON error, with a
// retry-after header when retryAfter is not "".
func immediateResponse(code int, details, msg, retryAfter string) *extprocv3.ProcessingResponse {
	return immediateResponseCode(code, details, msg, "", retryAfter)
}

// immediateResponseCode is immediateResponse with a JSON "code" member when errCode is not "".
func immediateResponseCode(code int, details, msg, errCode, retryAfter string) *extprocv3.ProcessingResponse {
	body, _ := json.Marshal(struct {
		Error string `json:"error"`
		Code  string `json:"code,omitempty"`
	}{msg, errCode})
	set := []*corev3.HeaderValueOption{setHeader("content-type", "application/json")}
	if retryAfter != "" {
		set = append(set, setHeader("retry-after", retryAfter))
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocv3.ImmediateResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(code)},
			Headers: &extprocv3.HeaderMutation{SetHeaders: set},
			Body:    body,
			Details: details,
		},
	}}
}

// modes are the mode overrides and header mutations a server sends, built once: every stream
// sends the same few, and proto messages may be marshalled concurrently as long as none changes.
type modes struct {
	passThrough *filterv3.ProcessingMode
	policy      [2][2]*filterv3.ProcessingMode // [needRequestBody][needResponse]
	// dropAcceptEncoding asks Envoy to remove accept-encoding: responses must come uncompressed
	// to be rewritten.
	dropAcceptEncoding *extprocv3.HeaderMutation
}

func newModes() modes {
	m := modes{passThrough: passThroughMode(),
		dropAcceptEncoding: &extprocv3.HeaderMutation{RemoveHeaders: []string{"accept-encoding"}}}
	for _, body := range []bool{false, true} {
		for _, resp := range []bool{false, true} {
			m.policy[b2i(body)][b2i(resp)] = policyMode(body, resp)
		}
	}
	return m
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
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
