package extproc

import (
	"context"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/extproc/policy"
)

// responseOnlyEnv is the test server with two more policies on the same key id and field: "jwtp"
// (seals $.ssn in requests, opens it in responses) and "reads" (response_only: opens it).
func responseOnlyEnv(t *testing.T) *testEnv {
	return newTestEnvWith(t, Options{}, func(ps []policy.Config) []policy.Config {
		f := []policy.Field{{Path: "$.ssn"}}
		return append(ps,
			policy.Config{Name: "jwtp", KeyID: "tenant-{jwt:tenant}", Request: policy.Direction{Encrypt: f}, Response: policy.Direction{Decrypt: f}},
			policy.Config{Name: "reads", KeyID: "tenant-{jwt:tenant}", DecryptOnly: true, ResponseOnly: true, Response: policy.Direction{Decrypt: f}})
	})
}

// responseOnlyStream sends Envoy's messages of a response-only route (response headers first,
// with protocol_config and the JWT payload when tenant is set) and returns rkms's answers.
func responseOnlyStream(t *testing.T, e *testEnv, policyName, tenant string, pc *extprocv3.ProtocolConfiguration, contentType, body string) []*extprocv3.ProcessingResponse {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if policyName != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, PolicyMetadataKey, policyName)
	}
	stream, err := e.envoy.client.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hdrs := hdrs{{":status", "200"}}
	if contentType != "" {
		hdrs = append(hdrs, [2]string{"content-type", contentType})
	}
	first := &extprocv3.ProcessingRequest{ProtocolConfig: pc, Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: hdrs.proto()}}}
	if tenant != "" {
		payload, _ := structpb.NewStruct(map[string]any{"tenant": tenant})
		first.MetadataContext = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
			JWTNamespace: {Fields: map[string]*structpb.Value{JWTPayloadKey: structpb.NewStructValue(payload)}}}}
	}
	var out []*extprocv3.ProcessingResponse
	for _, m := range []*extprocv3.ProcessingRequest{first, {Request: &extprocv3.ProcessingRequest_ResponseBody{
		ResponseBody: &extprocv3.HttpBody{Body: []byte(body), EndOfStream: true}}}} {
		if err := stream.Send(m); err != nil {
			t.Fatal(err)
		}
		r, err := stream.Recv()
		if err != nil {
			return append(out, nil) // the stream was refused (gRPC error)
		}
		out = append(out, r)
		if r.GetImmediateResponse() != nil {
			break
		}
	}
	return out
}

// TestResponseOnlyStream: a stream that starts with the response headers of a route in
// ResponseOnlyMode is the response phase of a bodiless GET on the policy the route names: the
// key id from the verified JWT, the same checks and decryption; it is refused when the route
// names no policy or one that is not response_only; without a JWT it is Envoy's own reply
// (jwt_authn refused the request) and passes, unopened.
func TestResponseOnlyStream(t *testing.T) {
	e := responseOnlyEnv(t)
	sealCfg := envoyCfg{metadata: map[string]string{PolicyMetadataKey: "jwtp"}, jwt: map[string]any{"tenant": "t1"}}
	x := e.mustDoCfg(sealCfg, jsonReq("POST", "/jp", "", `{"ssn":"123-45-6789","name":"Ada"}`), 201)
	stored, ok := e.app.Record("jp", field(t, x.client.body, "id").(string))
	if !ok || !envelope.IsCiphertext([]byte(field(t, stored, "ssn").(string))) {
		t.Fatalf("stored %s", stored)
	}
	respOnly := &extprocv3.ProtocolConfiguration{RequestBodyMode: filterv3.ProcessingMode_NONE, ResponseBodyMode: filterv3.ProcessingMode_BUFFERED}
	normal := &extprocv3.ProtocolConfiguration{RequestBodyMode: filterv3.ProcessingMode_BUFFERED, ResponseBodyMode: filterv3.ProcessingMode_BUFFERED}
	tampered := strings.Replace(string(stored), `"ssn":"rkms:`, `"ssn":"rkms:x`, 1)
	const opened = `"ssn":"123-45-6789"`
	for _, tc := range []struct {
		name, policy, tenant string
		pc                   *extprocv3.ProtocolConfiguration
		contentType, body    string
		wantStatus           int    // an immediate response; 0: none
		wantBody             string // in the body answer ("" unchanged)
		wantGRPCError        bool
	}{
		{name: "opened", policy: "reads", tenant: "t1", pc: respOnly, contentType: "application/json", body: string(stored), wantBody: opened},
		{name: "other tenant", policy: "reads", tenant: "t2", pc: respOnly, contentType: "application/json", body: string(stored), wantStatus: 502},
		{name: "tampered", policy: "reads", tenant: "t1", pc: respOnly, contentType: "application/json", body: tampered, wantStatus: 502},
		{name: "not JSON passes (nothing to open)", policy: "reads", tenant: "t1", pc: respOnly, contentType: "text/plain", body: "hello"},
		{name: "JSON declared, other media type in body", policy: "reads", tenant: "t1", pc: respOnly, contentType: "application/json", body: "{bad", wantStatus: 502},
		{name: "no JWT: Envoy's own reply passes unopened", policy: "reads", pc: respOnly, contentType: "application/json", body: string(stored)},
		{name: "policy not response_only", policy: "jwtp", tenant: "t1", pc: respOnly, contentType: "application/json", body: string(stored), wantStatus: 500},
		{name: "unknown policy", policy: "nope", tenant: "t1", pc: respOnly, contentType: "application/json", body: string(stored), wantStatus: 500},
		{name: "no policy metadata", tenant: "t1", pc: respOnly, contentType: "application/json", body: string(stored), wantStatus: 500},
		// A local reply on a normal route (its protocol_config says BUFFERED for the request
		// body): passed as before.
		{name: "local reply on a normal route", policy: "jwtp", tenant: "t1", pc: normal, contentType: "application/json", body: `{"error":"x"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := responseOnlyStream(t, e, tc.policy, tc.tenant, tc.pc, tc.contentType, tc.body)
			last := rs[len(rs)-1]
			if tc.wantGRPCError != (last == nil) {
				t.Fatalf("answers %v", rs)
			}
			if tc.wantStatus != 0 {
				ir := last.GetImmediateResponse()
				if ir == nil || int(ir.GetStatus().GetCode()) != tc.wantStatus {
					t.Fatalf("answers %v, want an immediate response %d", rs, tc.wantStatus)
				}
				if strings.Contains(string(ir.GetBody()), "123-45-6789") {
					t.Errorf("refusal %s holds the plaintext", ir.GetBody())
				}
				return
			}
			if len(rs) != 2 || rs[0].GetResponseHeaders() == nil || last.GetResponseBody() == nil {
				t.Fatalf("answers %v, want response headers and body answered", rs)
			}
			if len(rs[0].GetDynamicMetadata().GetFields()) != 0 {
				t.Errorf("response headers answer carries metadata %v", rs[0].GetDynamicMetadata())
			}
			got := string(last.GetResponseBody().GetResponse().GetBodyMutation().GetBody())
			if tc.wantBody == "" && got != "" || !strings.Contains(got, tc.wantBody) {
				t.Errorf("body answer %q, want one with %q", got, tc.wantBody)
			}
		})
	}
}
