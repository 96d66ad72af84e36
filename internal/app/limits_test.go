package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	rkmsv1 "github.com/rkms/rkms/api/rkms/v1"
	"github.com/rkms/rkms/internal/testing/env"
)

// TestServeLimits: every limit of rkms serve refuses with a clear status and message: admin
// header size (431) and body size (413), key id length (400 / InvalidArgument / 400), key API
// message size (ResourceExhausted), ext_proc body size and fields per body (413), and concurrent
// ext_proc streams (ResourceExhausted).
func TestServeLimits(t *testing.T) {
	const token = "limits-test-token-0123456789"
	t.Setenv("RKMS_ADMIN_TOKEN", token)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`data_dir: %[1]s/data
admin: {listen: 127.0.0.1:%[2]d, grpc_listen: 127.0.0.1:%[3]d, token_file: %[1]s/token}
extproc: {listen: 127.0.0.1:%[4]d, max_body_bytes: 4096, max_fields: 5, max_concurrent_streams: 2,
  max_streams_per_client: 2, max_streams_per_tenant: 2}
store: {type: memory}
policies:
  - name: patients
    match: {path_prefix: /patients}
    key_id: "tenant-{header:x-tenant-id}"
    request: {encrypt: ["$.ssn", {path: "$.cards[*]", label: card}]}
`, dir, testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)))
	r := startServe(t, "--config", cfg)
	out := r.stdout.String()
	keyAddr, extAddr := addrAfter(t, out, "key API:"), addrAfter(t, out, "ext_proc:")

	t.Run("admin", func(t *testing.T) {
		tests := []struct {
			name    string
			header  int // bytes of an extra header
			body    int
			id      string
			want    int
			message string
		}{
			{"within limits", 1 << 10, 0, "tenant-a", http.StatusOK, ""},
			{"headers just under 16 KiB", 15 << 10, 0, "tenant-a", http.StatusOK, ""},
			{"headers just over 16 KiB", 16<<10 + 100, 0, "tenant-a", http.StatusRequestHeaderFieldsTooLarge, ""},
			{"headers over 16 KiB", 24 << 10, 0, "tenant-a", http.StatusRequestHeaderFieldsTooLarge, ""},
			{"body over 64 KiB", 0, 100 << 10, "tenant-a", http.StatusRequestEntityTooLarge, "request body too large"},
			{"chunked body over 64 KiB", 0, -(100 << 10), "tenant-a", http.StatusRequestEntityTooLarge, "request body too large"},
			{"chunked body under 64 KiB", 0, -(1 << 10), "tenant-a", http.StatusOK, ""},
			{"key id of 256 bytes", 0, 0, strings.Repeat("k", 256), http.StatusOK, ""},
			{"key id of 257 bytes", 0, 0, strings.Repeat("k", 257), http.StatusBadRequest, "invalid key id"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var body io.Reader = strings.NewReader(strings.Repeat("b", max(tt.body, 0)))
				if tt.body < 0 { // no Content-Length: a chunked body
					body = io.MultiReader(strings.NewReader(strings.Repeat("b", -tt.body)))
				}
				req, _ := http.NewRequest("GET", "http://"+r.admin+"/key?id="+tt.id, body)
				req.Header.Set("Authorization", "Bearer "+token)
				if tt.header > 0 {
					req.Header.Set("X-Padding", strings.Repeat("h", tt.header))
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != tt.want || !strings.Contains(string(b), tt.message) {
					t.Fatalf("%d %s, want %d %q", resp.StatusCode, b, tt.want, tt.message)
				}
			})
		}
	})

	t.Run("key API", func(t *testing.T) {
		keys := rkmsv1.NewKeyServiceClient(dial(t, keyAddr))
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
		tests := []struct {
			id   string
			want codes.Code
		}{
			{strings.Repeat("k", 256), codes.OK},
			{strings.Repeat("k", 257), codes.InvalidArgument},
			{strings.Repeat("k", 100<<10), codes.ResourceExhausted}, // over the 64 KiB message limit
		}
		for _, tt := range tests {
			_, err := keys.GetKey(ctx, &rkmsv1.GetKeyRequest{Id: tt.id})
			if status.Code(err) != tt.want {
				t.Errorf("GetKey of a %d-byte id: %v, want %v", len(tt.id), err, tt.want)
			}
		}
	})

	t.Run("ext_proc", func(t *testing.T) {
		cards := func(n int) string {
			return `{"cards":[` + strings.TrimSuffix(strings.Repeat(`"4111",`, n), ",") + `]}`
		}
		tests := []struct {
			name, tenant, body string
			want               int
			message            string
		}{
			{"fields at max_fields", "a", cards(5), 0, ""},
			{"fields over max_fields", "a", cards(6), http.StatusRequestEntityTooLarge, "request body has more than 5 selected fields"},
			{"body over max_body_bytes", "a", `{"ssn":"` + strings.Repeat("x", 5000) + `"}`, http.StatusRequestEntityTooLarge, "request body too large"},
			{"computed key id over 256 bytes", strings.Repeat("t", 250), `{"ssn":"1"}`, http.StatusBadRequest, "key id"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, msg := extRequest(t, extAddr, tt.tenant, tt.body)
				if got != tt.want || !strings.Contains(msg, tt.message) {
					t.Fatalf("refusal %d %q, want %d %q", got, msg, tt.want, tt.message)
				}
			})
		}
	})

	t.Run("concurrent ext_proc streams", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		open := func() (extprocv3.ExternalProcessor_ProcessClient, error) {
			st, err := extprocv3.NewExternalProcessorClient(dial(t, extAddr)).Process(ctx)
			if err != nil {
				return nil, err
			}
			if err := st.Send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
				RequestHeaders: headers(":method", "POST", ":path", "/patients", "content-type", "application/json", "x-tenant-id", "s")}}); err != nil && !errors.Is(err, io.EOF) {
				return nil, err // io.EOF: refused by the server, the status comes from Recv
			}
			_, err = st.Recv()
			return st, err
		}
		// Streams of the subtests above end on the server asynchronously after their clients
		// hang up, so a slot may still be taken for a moment: retry until it frees, bounded.
		for range 2 {
			deadline := time.Now().Add(5 * time.Second)
			for {
				_, err := open()
				if err == nil {
					break
				}
				if status.Code(err) != codes.ResourceExhausted || time.Now().After(deadline) {
					t.Fatalf("stream within the limit: %v", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		_, err := open()
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "too many concurrent ext_proc streams (limit 2)") {
			t.Fatalf("third stream: %v", err)
		}
	})
}

// extRequest sends the request half of one ext_proc exchange and returns the status and error
// message of a refusal (0 and "" when the request passes).
func extRequest(t *testing.T, addr, tenant, body string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := extprocv3.NewExternalProcessorClient(dial(t, addr)).Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.CloseSend()
	for _, m := range []*extprocv3.ProcessingRequest{
		{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: headers(":method", "POST", ":path", "/patients",
			"content-type", "application/json", "x-tenant-id", tenant)}},
		{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: []byte(body), EndOfStream: true}}},
	} {
		if err := st.Send(m); err != nil {
			t.Fatal(err)
		}
		r, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if ir := r.GetImmediateResponse(); ir != nil {
			return int(ir.GetStatus().GetCode()), string(ir.GetBody())
		}
	}
	return 0, ""
}
