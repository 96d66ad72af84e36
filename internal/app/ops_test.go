package app

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	rkmsv1 "github.com/rkms/rkms/api/rkms/v1"
	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/internal/testing/env"
)

// addrAfter returns the address printed after label in rkms serve's start banner.
func addrAfter(t *testing.T, out, label string) string {
	t.Helper()
	i := strings.Index(out, label)
	if i < 0 {
		t.Fatalf("no %q in %s", label, out)
	}
	rest := strings.TrimLeft(out[i+len(label):], " ")
	return strings.TrimPrefix(rest[:strings.IndexAny(rest, " \n")], "http://")
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func headers(kv ...string) *extprocv3.HttpHeaders {
	m := &corev3.HeaderMap{}
	for i := 0; i < len(kv); i += 2 {
		m.Headers = append(m.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return &extprocv3.HttpHeaders{Headers: m}
}

// extprocExchange drives one ext_proc stream as Envoy would for POST /patients with a tagged
// field, the app echoing what it stored, and returns what the app received and the client got.
func extprocExchange(t *testing.T, addr, plaintext string) (atApp, atClient []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := extprocv3.NewExternalProcessorClient(dial(t, addr)).Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send := func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		t.Helper()
		if err := st.Send(m); err != nil {
			t.Fatal(err)
		}
		r, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r.GetImmediateResponse() != nil {
			t.Fatalf("refused: %v", r.GetImmediateResponse())
		}
		return r
	}
	send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: headers(
		":method", "POST", ":path", "/patients", "content-type", "application/json", "x-tenant-id", "t1", "x-request-id", "ops-1")}})
	r := send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{
		Body: []byte(`{"ssn":"` + plaintext + `"}`), EndOfStream: true}}})
	atApp = r.GetRequestBody().GetResponse().GetBodyMutation().GetBody()
	send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: headers(
		":status", "201", "content-type", "application/json")}})
	r = send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{
		Body: atApp, EndOfStream: true}}})
	atClient = r.GetResponseBody().GetResponse().GetBodyMutation().GetBody()
	_ = st.CloseSend()
	return atApp, atClient
}

// scrape reads /metrics without a token.
func scrape(t *testing.T, admin string) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("/metrics is not the text exposition format: %v", err)
	}
	return string(body), fams
}

// sum adds the values (histograms: sample counts) of name's series that carry labels; n is how
// many series matched.
func sum(fams map[string]*dto.MetricFamily, name string, labels ...string) (total float64, n int) {
	f := fams[name]
	if f == nil {
		return 0, 0
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
			}
			if !found {
				continue next
			}
		}
		n++
		switch {
		case m.GetCounter() != nil:
			total += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			total += m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return total, n
}

// TestMetricsAndKeyAPI runs rkms serve with a policy, drives one ext_proc stream, uses the HTTP
// and gRPC key APIs, then scrapes /metrics: every family is there with the values the flow
// implies, and nothing in it names a key id or carries key material.
func TestMetricsAndKeyAPI(t *testing.T) {
	const token = "ops-test-token-0123456789"
	t.Setenv("RKMS_ADMIN_TOKEN", token)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`data_dir: %[1]s/data
admin: {listen: 127.0.0.1:%[2]d, grpc_listen: 127.0.0.1:%[3]d, token_file: %[1]s/token}
extproc: {listen: 127.0.0.1:%[4]d}
store: {type: embedded, embedded: {path: %[1]s/keys.db}}
policies:
  - name: patients
    match: {path_prefix: /patients}
    key_id: "tenant-{header:x-tenant-id}"
    request: {encrypt: ["$.ssn"]}
    response: {decrypt: ["$.ssn"]}
`, dir, testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)))
	r := startServe(t, "--config", cfg)
	out := r.stdout.String()
	keyAddr, extAddr := addrAfter(t, out, "key API:"), addrAfter(t, out, "ext_proc:")

	// One ext_proc stream: the app gets a ciphertext, the client the plaintext back.
	const ssn = "123-45-6789"
	atApp, atClient := extprocExchange(t, extAddr, ssn)
	if strings.Contains(string(atApp), ssn) || !strings.Contains(string(atApp), `"rkms:`) {
		t.Fatalf("app received %s", atApp)
	}
	if string(atClient) != `{"ssn":"`+ssn+`"}` {
		t.Fatalf("client received %s", atClient)
	}

	// The same key through the HTTP and the gRPC key APIs.
	st, httpKey := call(t, "GET", "http://"+r.admin+"/key?id=tenant-t1", token)
	if st != http.StatusOK || httpKey.Version != 1 {
		t.Fatalf("GET /key: %d %+v", st, httpKey)
	}
	keys := rkmsv1.NewKeyServiceClient(dial(t, keyAddr))
	ctx := context.Background()
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	if _, err := keys.GetKey(ctx, &rkmsv1.GetKeyRequest{Id: "tenant-t1"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("GetKey without a token: %v", err)
	}
	gk, err := keys.GetKey(authed, &rkmsv1.GetKeyRequest{Id: "tenant-t1"})
	if err != nil || base64.StdEncoding.EncodeToString(gk.GetKey()) != httpKey.Key || gk.GetVersion() != 1 {
		t.Fatalf("GetKey: %v %v", gk, err)
	}
	if rk, err := keys.RotateKey(authed, &rkmsv1.RotateKeyRequest{Id: "tenant-t1"}); err != nil || rk.GetVersion() != 2 {
		t.Fatalf("RotateKey: %v %v", rk, err)
	}
	if _, err := keys.DeleteKey(authed, &rkmsv1.DeleteKeyRequest{Id: "tenant-t1"}); err != nil {
		t.Fatalf("DeleteKey: %v", err)
	}
	if _, err := keys.DeleteKey(authed, &rkmsv1.DeleteKeyRequest{Id: "tenant-t1"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("second DeleteKey: %v, want FailedPrecondition (deleted)", err)
	}
	if _, err := keys.ReadKey(authed, &rkmsv1.ReadKeyRequest{Id: "tenant-t1"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("ReadKey of a deleted id: %v", err)
	}
	if lk, err := keys.ListKeys(authed, &rkmsv1.ListKeysRequest{Prefix: "tenant-t"}); err != nil || !slices.Contains(lk.GetDeletedIds(), "tenant-t1") {
		t.Fatalf("ListKeys: %v %v", lk, err)
	}
	if _, err := keys.GetKey(authed, &rkmsv1.GetKeyRequest{Id: "bad id"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("GetKey of a bad id: %v", err)
	}

	body, fams := scrape(t, r.admin)
	for _, leak := range []string{"tenant-t1", httpKey.Key, ssn, token} {
		if strings.Contains(body, leak) {
			t.Fatalf("/metrics contains %q", leak)
		}
	}
	h, _ := envelope.Parse([]byte(strings.TrimSuffix(strings.TrimPrefix(string(atApp), `{"ssn":"`), `"}`)))
	if h.KeyID != "tenant-t1" {
		t.Fatalf("ciphertext header %+v", h)
	}

	type check struct {
		name   string
		labels []string
		ok     func(v float64) bool
		want   string
	}
	atLeast := func(n float64) func(float64) bool { return func(v float64) bool { return v >= n } }
	is := func(n float64) func(float64) bool { return func(v float64) bool { return v == n } }
	checks := []check{
		// KMS: a key created and rotated: two data keys generated, each wrapped in the other regions.
		{"rkms_kms_request_duration_seconds", []string{"op", "generate_data_key"}, is(2), "2 generations"},
		{"rkms_kms_request_duration_seconds", []string{"op", "encrypt"}, atLeast(4), ">= 4 wraps"},
		{"rkms_kms_request_duration_seconds", []string{"region", "local-3"}, atLeast(1), "every region called"},
		{"rkms_kms_errors_total", []string{"region", "local-1", "op", "decrypt", "class", "unavailable"}, is(0), "0"},
		{"rkms_kms_breaker_state", []string{"region", "local-2", "state", "closed"}, is(1), "closed"},
		{"rkms_kms_breaker_state", []string{"state", "open"}, is(0), "no open breaker"},
		{"rkms_kms_region_healthy", nil, is(3), "3 healthy regions"},
		{"rkms_kms_breaker_opens_total", nil, is(0), "0"},
		// Keyring cache and repairs.
		{"rkms_keyring_cache_hits_total", nil, atLeast(2), ">= 2 (decrypt, GET /key, GetKey)"},
		{"rkms_keyring_cache_misses_total", nil, atLeast(1), ">= 1"},
		{"rkms_keyring_cache_keys", nil, atLeast(0), "present"},
		{"rkms_keyring_keys_created_total", nil, is(1), "1"},
		{"rkms_keyring_repairs_pending", nil, is(0), "0"},
		{"rkms_keyring_repaired_copies_total", nil, is(0), "0"},
		// Store.
		{"rkms_store_request_duration_seconds", []string{"op", "get"}, atLeast(1), ">= 1"},
		{"rkms_store_request_duration_seconds", []string{"op", "create"}, is(1), "1"},
		{"rkms_store_request_duration_seconds", []string{"op", "update"}, atLeast(2), ">= 2 (rotate; delete writes a tombstone)"},
		{"rkms_store_request_duration_seconds", []string{"op", "list"}, atLeast(1), ">= 1"},
		{"rkms_store_errors_total", []string{"op", "get", "class", "not_found"}, atLeast(1), ">= 1 (the new key)"},
		{"rkms_store_errors_total", []string{"class", "unavailable"}, is(0), "0"},
		// ext_proc: one stream of four messages, one field each way.
		{"rkms_extproc_requests_total", []string{"policy", "patients", "phase", "request_headers", "outcome", "continue", "status", "0"}, is(1), "1"},
		{"rkms_extproc_requests_total", []string{"policy", "patients", "phase", "response_body", "outcome", "continue"}, is(1), "1"},
		{"rkms_extproc_requests_total", nil, is(4), "4 messages"},
		{"rkms_extproc_processing_seconds", []string{"phase", "request_body"}, is(1), "1"},
		{"rkms_extproc_fields_total", []string{"policy", "patients", "op", "encrypt"}, is(1), "1"},
		{"rkms_extproc_fields_total", []string{"policy", "patients", "op", "decrypt"}, is(1), "1"},
		// ext_proc limits: nothing refused. (Reservations given back are checked in extproc: the
		// last one is released just after Send, which may be after this client got its answer.)
		{"rkms_extproc_refused_total", []string{"reason", "memory"}, is(0), "0"},
		{"rkms_extproc_refused_total", nil, is(0), "0"},
		{"rkms_extproc_memory_budget_bytes", nil, atLeast(5 << 20), ">= one largest body"},
		{"rkms_extproc_memory_reserved_bytes", nil, atLeast(0), "present"},
		{"rkms_extproc_streams_in_flight", nil, atLeast(0), "present"},
		// Runtime.
		{"go_goroutines", nil, atLeast(1), ">= 1"},
	}
	for _, c := range checks {
		v, n := sum(fams, c.name, c.labels...)
		if n == 0 {
			t.Errorf("%s%v: no series", c.name, c.labels)
			continue
		}
		if !c.ok(v) {
			t.Errorf("%s%v = %v, want %s", c.name, c.labels, v, c.want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}
