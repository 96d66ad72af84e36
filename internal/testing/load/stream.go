package load

import (
	"context"
	"fmt"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/internal/devjwt"
)

// Exchange is one HTTP request as Envoy (envoy/ingress.yaml) presents it to ext_proc: request
// headers with the verified token's payload in metadata_context (and x-tenant-id set from its
// tenant claim), the buffered request body, response headers and the buffered response body. The
// response body is the request body as the server returned it (sealed by rkms), as an app that
// stores and returns the record would send it back.
type Exchange struct {
	body    []byte
	headers []*extprocv3.ProcessingRequest // per tenant: request headers message
	respHdr *extprocv3.ProcessingRequest
	check   bool // verify that the request body came back sealed (rkms) or unchanged (no-op)
}

// NewExchange prepares the messages for body and tenants 0..tenants-1. When sealed is true,
// every stream checks that the server sealed the tagged fields.
func NewExchange(body []byte, tenants int, sealed bool) *Exchange {
	x := &Exchange{body: body, check: sealed}
	for n := range max(tenants, 1) {
		x.headers = append(x.headers, requestHeaders("/patients", "POST", len(body), n))
	}
	rh := &corev3.HeaderMap{}
	for _, kv := range [][2]string{{":status", "201"}, {"content-type", "application/json"},
		{"content-length", strconv.Itoa(len(body))}, {"date", "Mon, 01 Jun 2026 10:00:00 GMT"}} {
		rh.Headers = append(rh.Headers, &corev3.HeaderValue{Key: kv[0], RawValue: []byte(kv[1])})
	}
	x.respHdr = &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: rh}}}
	return x
}

// requestHeaders is the request headers message of tenant n's request as Envoy presents it:
// the verified token's payload in metadata_context and x-tenant-id set from its tenant claim;
// bodyLen > 0 adds a JSON content type and length.
func requestHeaders(path, method string, bodyLen, n int) *extprocv3.ProcessingRequest {
	hm := &corev3.HeaderMap{}
	kvs := [][2]string{
		{":authority", "127.0.0.1:10000"}, {":path", path}, {":method", method}, {":scheme", "http"},
		{"user-agent", "rkms-load"}, {"x-tenant-id", TenantValue(n)},
		{"x-forwarded-proto", "http"}, {"x-request-id", "5f7b2c1e-load-" + strconv.Itoa(n)},
	}
	if bodyLen > 0 {
		kvs = append(kvs, [2]string{"content-type", "application/json"}, [2]string{"content-length", strconv.Itoa(bodyLen)})
	}
	for _, kv := range kvs {
		hm.Headers = append(hm.Headers, &corev3.HeaderValue{Key: kv[0], RawValue: []byte(kv[1])})
	}
	payload, err := structpb.NewStruct(map[string]any{"iss": devjwt.DefaultIssuer, "aud": devjwt.DefaultAudience,
		"sub": "user@" + TenantValue(n), devjwt.TenantClaim: TenantValue(n), "iat": 1780000000, "exp": 1780003600})
	if err != nil {
		panic(err) // only strings and numbers above
	}
	return &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: hm, EndOfStream: bodyLen == 0}},
		MetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			extproc.JWTNamespace: {Fields: map[string]*structpb.Value{extproc.JWTPayloadKey: structpb.NewStructValue(payload)}},
		}},
	}
}

// Tenants returns how many tenants the exchange cycles through.
func (x *Exchange) Tenants() int { return len(x.headers) }

// PolicyContext returns ctx with the gRPC metadata by which the route names the policy.
func PolicyContext(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, extproc.PolicyMetadataKey, PolicyName)
}

// Messages is how many messages a stream of the exchange sends.
const Messages = 4

// Message returns message i (0 to Messages-1) of tenant n's stream: request headers, request
// body, response headers, response body. answers holds the server's answers to the messages
// before i; the response body is the request body as the server's answer to it returned it
// (sealed by rkms, unchanged by the no-op server). Every message carries the tenant's verified
// token payload in metadata_context, as Envoy 1.40 sends the forwarded metadata with each
// message of a stream (envoy.TestEnvoyModesResponseOnly checks it on the real binary); until
// issue 18 only the request headers carried it here.
func (x *Exchange) Message(i, n int, answers []*extprocv3.ProcessingResponse) *extprocv3.ProcessingRequest {
	hdr := x.headers[n%len(x.headers)]
	var m *extprocv3.ProcessingRequest
	switch i {
	case 0:
		return hdr
	case 1:
		m = &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
			RequestBody: &extprocv3.HttpBody{Body: x.body, EndOfStream: true}}}
	case 2:
		m = &extprocv3.ProcessingRequest{Request: x.respHdr.Request}
	default:
		m = x.ResponseBody(answers[1].GetRequestBody().GetResponse().GetBodyMutation().GetBody())
	}
	m.MetadataContext = hdr.MetadataContext
	return m
}

// ResponseBody returns the response body message (message 3) carrying sealed, the request body
// as the server's answer to it returned it (nil: the server left the body unchanged).
func (x *Exchange) ResponseBody(sealed []byte) *extprocv3.ProcessingRequest {
	if sealed == nil {
		sealed = x.body
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
		ResponseBody: &extprocv3.HttpBody{Body: sealed, EndOfStream: true}}}
}

// Check verifies the server's answer to message i: CONTINUE, and when the exchange checks (rkms)
// the request body sealed and the response body opened back to the original.
func (x *Exchange) Check(i int, resp *extprocv3.ProcessingResponse) error {
	what := [Messages]string{"request headers", "request body", "response headers", "response body"}[i]
	if ir := resp.GetImmediateResponse(); ir != nil {
		return fmt.Errorf("%s: immediate response %d: %s", what, ir.GetStatus().GetCode(), ir.GetBody())
	}
	if !x.check {
		return nil
	}
	switch i {
	case 1:
		sealed := resp.GetRequestBody().GetResponse().GetBodyMutation().GetBody()
		if sealed == nil {
			sealed = x.body
		}
		return checkSealed(sealed)
	case 3:
		if opened := resp.GetResponseBody().GetResponse().GetBodyMutation().GetBody(); string(opened) != string(x.body) {
			return fmt.Errorf("response body: opened body differs from the original")
		}
	}
	return nil
}

// Run plays one stream for tenant n (mod Tenants) on client. ctx should come from
// [PolicyContext]. It fails when the server answers anything but CONTINUE with the expected
// mutations.
func (x *Exchange) Run(ctx context.Context, client extprocv3.ExternalProcessorClient, n int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := client.Process(ctx)
	if err != nil {
		return fmt.Errorf("open stream: %w", err)
	}
	var answers [Messages]*extprocv3.ProcessingResponse
	for i := range Messages {
		if err := st.Send(x.Message(i, n, answers[:i])); err != nil {
			return fmt.Errorf("send message %d: %w", i, err)
		}
		if answers[i], err = st.Recv(); err != nil {
			return fmt.Errorf("receive answer %d: %w", i, err)
		}
		if err := x.Check(i, answers[i]); err != nil {
			return err
		}
	}
	if err := st.CloseSend(); err != nil {
		return fmt.Errorf("close stream: %w", err)
	}
	return nil
}
