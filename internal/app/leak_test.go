package app

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	rkmsv1 "github.com/rkms/rkms/api/rkms/v1"
	"github.com/rkms/rkms/internal/testing/env"
)

// leakRun records everything a full run shows to the outside besides successful key reads: the
// error bodies and messages of every API, and the keys it learnt (to look for afterwards).
type leakRun struct {
	t        *testing.T
	admin    string
	token    string
	ext      *grpc.ClientConn
	keyAPI   rkmsv1.KeyServiceClient
	errors   []string // every error body or message any API returned
	keys     map[string][]byte
	requests int
}

// adminCall does one admin HTTP call; a successful GET /key adds the key to what the run learnt.
func (l *leakRun) adminCall(method, path, token string, want int) {
	l.t.Helper()
	req, _ := http.NewRequest(method, "http://"+l.admin+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		l.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		l.t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, body)
	}
	if resp.StatusCode >= 400 {
		l.errors = append(l.errors, string(body))
		return
	}
	var kr struct {
		ID, Key string
		Version uint32
	}
	if json.Unmarshal(body, &kr) == nil && kr.Key != "" {
		k, err := base64.StdEncoding.DecodeString(kr.Key)
		if err != nil || len(k) != 32 {
			l.t.Fatalf("GET %s: key %q", path, kr.Key)
		}
		l.keys[fmt.Sprintf("%s v%d", kr.ID, kr.Version)] = k
	}
}

// grpcCall runs one key API call; a successful GetKey adds the key to what the run learnt.
func (l *leakRun) grpcCall(authed bool, want string, call func(ctx context.Context, c rkmsv1.KeyServiceClient) (proto, error)) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if authed {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+l.token)
	}
	resp, err := call(ctx, l.keyAPI)
	if got := status.Code(err).String(); got != want {
		l.t.Fatalf("key API call: %v, want %s", err, want)
	}
	if err != nil {
		l.errors = append(l.errors, status.Convert(err).Message())
		return
	}
	if g, ok := resp.(*rkmsv1.GetKeyResponse); ok {
		l.keys[fmt.Sprintf("%s v%d", g.GetId(), g.GetVersion())] = g.GetKey()
	}
}

type proto = any

// extExchange drives one ext_proc stream for POST /patients as Envoy would: request headers and
// body, then (unless refused) response headers and respBody (nil: what the app received, echoed).
// It returns what the app received, what the client received and the status of a refusal (0 if
// none); refusal bodies are recorded.
func (l *leakRun) extExchange(tenant, reqBody string, respBody []byte) (atApp, atClient []byte, refused int) {
	l.t.Helper()
	l.requests++
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := extprocv3.NewExternalProcessorClient(l.ext).Process(ctx)
	if err != nil {
		l.t.Fatal(err)
	}
	defer st.CloseSend()
	send := func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		l.t.Helper()
		if err := st.Send(m); err != nil {
			l.t.Fatal(err)
		}
		r, err := st.Recv()
		if err != nil {
			l.errors = append(l.errors, status.Convert(err).Message())
			l.t.Fatalf("ext_proc stream failed: %v", err)
		}
		return r
	}
	hs := []string{":method", "POST", ":path", "/patients", "content-type", "application/json",
		"x-request-id", fmt.Sprintf("leak-%d", l.requests)}
	if tenant != "" {
		hs = append(hs, "x-tenant-id", tenant)
	}
	r := send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: headers(hs...)}})
	if ir := r.GetImmediateResponse(); ir != nil {
		l.errors = append(l.errors, string(ir.GetBody()))
		return nil, nil, int(ir.GetStatus().GetCode())
	}
	r = send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{
		Body: []byte(reqBody), EndOfStream: true}}})
	if ir := r.GetImmediateResponse(); ir != nil {
		l.errors = append(l.errors, string(ir.GetBody()))
		return nil, nil, int(ir.GetStatus().GetCode())
	}
	atApp = []byte(reqBody)
	if m := r.GetRequestBody().GetResponse().GetBodyMutation(); m != nil {
		atApp = m.GetBody()
	}
	if respBody == nil {
		respBody = atApp
	}
	send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: headers(
		":status", "200", "content-type", "application/json")}})
	r = send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{
		Body: respBody, EndOfStream: true}}})
	if ir := r.GetImmediateResponse(); ir != nil {
		l.errors = append(l.errors, string(ir.GetBody()))
		return atApp, nil, int(ir.GetStatus().GetCode())
	}
	atClient = respBody
	if m := r.GetResponseBody().GetResponse().GetBodyMutation(); m != nil {
		atClient = m.GetBody()
	}
	return atApp, atClient, 0
}

// extViolation sends a request body before any headers (a broken ext_proc sequence) and records
// the stream's status message.
func (l *leakRun) extViolation(body string) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := extprocv3.NewExternalProcessorClient(l.ext).Process(ctx)
	if err != nil {
		l.t.Fatal(err)
	}
	if err := st.Send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{
		Body: []byte(body), EndOfStream: true}}}); err != nil {
		l.t.Fatal(err)
	}
	_, err = st.Recv()
	if status.Code(err).String() != "FailedPrecondition" {
		l.t.Fatalf("broken sequence: %v", err)
	}
	l.errors = append(l.errors, status.Convert(err).Message())
}

// awsServeConfig writes a configuration over three local-kms regions and dynalite, with debug
// logging (the most the process ever says).
func awsServeConfig(t *testing.T, policies string) (cfg string, kms []*testenv.KMS, db *testenv.Dynalite) {
	t.Helper()
	testenv.SetAWSEnv(t)
	kms = []*testenv.KMS{testenv.StartKMS(t, "us-east-1"), testenv.StartKMS(t, "us-west-2"), testenv.StartKMS(t, "eu-west-1")}
	db = testenv.StartDynalite(t)
	var regions strings.Builder
	for _, k := range kms {
		fmt.Fprintf(&regions, "    - {name: %s, key_id: %q, endpoint: %q}\n", k.Region, k.KeyARN, k.Endpoint)
	}
	dir := t.TempDir()
	cfg = writeConfig(t, dir, fmt.Sprintf(`data_dir: %[1]s/data
log: {level: debug, format: json}
admin: {listen: 127.0.0.1:%[2]d, grpc_listen: 127.0.0.1:%[3]d, token_file: %[1]s/token}
extproc: {listen: 127.0.0.1:%[4]d, key_timeout: 1500ms}
kms:
  provider: aws
  min_regions: 2
  timeout: 300ms
  breaker_threshold: 1
  regions:
%[5]s
store:
  type: dynamodb
  dynamodb: {table: rkms_keys, region: us-east-1, endpoint: %[6]q, create_table: true, timeout: 300ms}
%[7]s`, dir, testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), regions.String(), db.Endpoint, policies))
	return cfg, kms, db
}
