package app

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"

	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/internal/config"
	"github.com/rkms/rkms/internal/keysource"
	"github.com/rkms/rkms/internal/metrics"
)

// TestBulkExtprocInterop: a record sealed by rkms seal --format ndjson opens through the
// ext_proc server (a response to a request whose body names the tenant), and a record that
// ext_proc sealed on its way to the application opens with rkms open --format ndjson. The
// server runs in-process over the same on-disk keyring, which the CLI opens when the server
// has let it go.
func TestBulkExtprocInterop(t *testing.T) {
	cfgPath, _ := bulkConfig(t)
	record := strings.TrimSpace(genRecords(1)[0])
	code, sealed, stderr := cli(t, record+"\n", "seal", "--config", cfgPath, "--policy", "bulk", "--format", "ndjson")
	if code != 0 {
		t.Fatalf("seal: %d %s", code, stderr)
	}
	tenant := jsonField(t, record, "tenant")

	var atApp []byte
	withExtproc(t, cfgPath, func(addr string) {
		// Bulk-sealed, opened by ext_proc: the response body is the stored record.
		_, atClient := extprocBodies(t, addr, `{"tenant":"`+tenant+`"}`, strings.TrimSpace(sealed))
		if string(atClient) != record {
			t.Fatalf("ext_proc opened the bulk-sealed record as %s, want %s", atClient, record)
		}
		// Sealed by ext_proc on the way to the application.
		atApp, _ = extprocBodies(t, addr, record, "")
		if strings.Count(string(atApp), `"rkms:`) != 4 {
			t.Fatalf("ext_proc did not seal the record: %s", atApp)
		}
	})
	code, opened, stderr := cli(t, string(atApp)+"\n", "open", "--config", cfgPath, "--policy", "bulk", "--format", "ndjson")
	if code != 0 || strings.TrimSpace(opened) != record {
		t.Fatalf("open of the ext_proc-sealed record: exit %d, %s %s", code, opened, stderr)
	}
}

// withExtproc runs an ext_proc server with cfgPath's policies over its keyring while fn runs.
func withExtproc(t *testing.T, cfgPath string, fn func(addr string)) {
	t.Helper()
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ks, err := openKeys(ctx, cfg, cliLogger(&strings.Builder{}), metrics.New())
	if err != nil {
		t.Fatal(err)
	}
	defer ks.close()
	set, err := cfg.PolicySet()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := extproc.NewServerFromSet(set, keysource.Keyring{K: ks.kr}, extproc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(srv.GRPCServerOptions()...)
	srv.Register(g)
	go g.Serve(lis)
	defer g.Stop()
	fn(lis.Addr().String())
}

// extprocBodies drives one stream as Envoy would for POST /customers with reqBody; when
// respBody is not empty the application answers it. It returns the request body as the
// application got it and the response body as the client got it (nil when unchanged).
func extprocBodies(t *testing.T, addr, reqBody, respBody string) (atApp, atClient []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := extprocv3.NewExternalProcessorClient(dial(t, addr)).Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.CloseSend()
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
		":method", "POST", ":path", "/customers", "content-type", "application/json", "x-request-id", "bulk-1")}})
	r := send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{
		Body: []byte(reqBody), EndOfStream: true}}})
	atApp = r.GetRequestBody().GetResponse().GetBodyMutation().GetBody()
	if respBody == "" {
		return atApp, nil
	}
	send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: headers(
		":status", "200", "content-type", "application/json")}})
	r = send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{
		Body: []byte(respBody), EndOfStream: true}}})
	return atApp, r.GetResponseBody().GetResponse().GetBodyMutation().GetBody()
}
