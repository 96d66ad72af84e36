package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	rkmsv1 "github.com/rkms/rkms/api/rkms/v1"
	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/tlstest"
)

// startServeTLS is startServe for a configuration whose admin API may be https: it waits for the
// banner and returns the three addresses.
func startServeTLS(t *testing.T, cfg string) (r *running, admin, keyAPI, ext string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r = &running{stdout: &testenv.LockedBuffer{}, stderr: &testenv.LockedBuffer{}}
	done := make(chan int, 1)
	go func() { done <- Main(ctx, []string{"serve", "--config", cfg}, nil, r.stdout, r.stderr) }()
	stopped := false
	r.stop = func() int {
		if !stopped {
			stopped = true
			cancel()
			return <-done
		}
		return 0
	}
	t.Cleanup(func() { r.stop() })
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(r.stdout.String(), "ext_proc:") {
		select {
		case c := <-done:
			done <- c // for the cleanup's stop, which waits for it
			t.Fatalf("rkms serve exited with %d\nstdout: %s\nstderr: %s", c, r.stdout, r.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("rkms serve did not start\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	out := r.stdout.String()
	admin = strings.TrimPrefix(addrAfter(t, out, "admin API:"), "https://")
	return r, admin, addrAfter(t, out, "key API:"), addrAfter(t, out, "ext_proc:")
}

// pki is the certificates of a TLS test: rkms's server certificate and clients from its CA and
// from another.
type pki struct {
	ca, other         *tlstest.CA
	server            tlstest.Pair
	envoy, ops, alien tlstest.Pair
}

func newPKI(t *testing.T) *pki {
	p := &pki{ca: tlstest.NewCA(t, "rkms-ca"), other: tlstest.NewCA(t, "other-ca")}
	p.server = p.ca.Server(t, "rkms")
	p.envoy, p.ops = p.ca.Client(t, "envoy"), p.ca.Client(t, "ops")
	p.alien = p.other.Client(t, "alien")
	return p
}

func tlsBlock(p *pki, mutual bool) string {
	ca := ""
	if mutual {
		ca = ", client_ca_file: " + p.ca.File
	}
	return fmt.Sprintf("{cert_file: %s, key_file: %s%s}", p.server.CertFile, p.server.KeyFile, ca)
}

// client is how a test client connects: plaintext, or TLS with or without a certificate.
type client struct {
	name  string
	plain bool
	certs []tls.Certificate
}

func (c client) tls(p *pki) *tls.Config { return tlstest.ClientConfig(p.ca.Pool(), c.certs...) }

// adminGet does GET /key over the admin listener; it returns the status, or 0 and the error.
func (c client) adminGet(p *pki, addr, token, id string) (int, string, error) {
	tr := &http.Transport{TLSClientConfig: c.tls(p), ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	scheme := "https"
	if c.plain {
		scheme = "http"
	}
	req, _ := http.NewRequest("GET", scheme+"://"+addr+"/key?id="+id, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func (c client) dial(t *testing.T, p *pki, addr string) *grpc.ClientConn {
	t.Helper()
	creds := credentials.NewTLS(c.tls(p))
	if c.plain {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// sealOnce sends the request half of one ext_proc exchange and returns the body the app would get.
func sealOnce(conn *grpc.ClientConn, requestID, ssn string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := extprocv3.NewExternalProcessorClient(conn).Process(ctx)
	if err != nil {
		return nil, err
	}
	defer st.CloseSend()
	msgs := []*extprocv3.ProcessingRequest{
		{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: headers(":method", "POST", ":path", "/patients",
			"content-type", "application/json", "x-tenant-id", "tls", "x-request-id", requestID)}},
		{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: []byte(`{"ssn":"` + ssn + `"}`), EndOfStream: true}}},
	}
	var last *extprocv3.ProcessingResponse
	for _, m := range msgs {
		if err := st.Send(m); err != nil {
			return nil, err
		}
		if last, err = st.Recv(); err != nil {
			return nil, err
		}
	}
	return last.GetRequestBody().GetResponse().GetBodyMutation().GetBody(), nil
}

// TestServeTLS runs rkms serve with TLS on every listener, with and without client certificates
// required, and proves for the admin HTTP API, the gRPC key API and ext_proc: TLS works,
// plaintext is refused, and under mutual TLS a client without a certificate or with one from
// another CA is refused while the right certificate is accepted. The audit records carry the
// client certificate's subject.
func TestServeTLS(t *testing.T) {
	const token = "tls-test-token-0123456789"
	t.Setenv("RKMS_ADMIN_TOKEN", token)
	p := newPKI(t)
	for _, mutual := range []bool{true, false} {
		t.Run(fmt.Sprintf("mutual=%v", mutual), func(t *testing.T) {
			dir := t.TempDir()
			cfg := writeConfig(t, dir, fmt.Sprintf(`data_dir: %[1]s/data
admin: {listen: 127.0.0.1:%[2]d, grpc_listen: 127.0.0.1:%[3]d, token_file: %[1]s/token, tls: %[5]s}
extproc: {listen: 127.0.0.1:%[4]d, tls: %[5]s}
store: {type: memory}
policies:
  - name: patients
    match: {path_prefix: /patients}
    key_id: "tenant-{header:x-tenant-id}"
    request: {encrypt: ["$.ssn"]}
`, dir, testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t), tlsBlock(p, mutual)))
			r, admin, keyAddr, extAddr := startServeTLS(t, cfg)
			if !strings.Contains(r.stdout.String(), "admin API: https://") {
				t.Fatalf("banner: %s", r.stdout)
			}
			clients := []struct {
				client
				ok bool
			}{
				{client{name: "right certificate", certs: []tls.Certificate{p.ops.TLS}}, true},
				{client{name: "no certificate"}, !mutual},
				{client{name: "certificate from another CA", certs: []tls.Certificate{p.alien.TLS}}, !mutual},
				{client{name: "plaintext", plain: true}, false},
			}
			for _, c := range clients {
				t.Run(c.name, func(t *testing.T) {
					code, body, err := c.adminGet(p, admin, token, "tenant-tls")
					switch {
					case c.ok && code != http.StatusOK:
						t.Errorf("admin API: %d %v %s", code, err, body)
					case !c.ok && c.plain && code != http.StatusBadRequest:
						t.Errorf("admin API in plaintext: %d %v %s, want Go's 400 for HTTP to an HTTPS server", code, err, body)
					case !c.ok && !c.plain && err == nil:
						t.Errorf("admin API accepted the client: %d %s", code, body)
					}

					authed := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
					ctx, cancel := context.WithTimeout(authed, 5*time.Second)
					defer cancel()
					_, err = rkmsv1.NewKeyServiceClient(c.dial(t, p, keyAddr)).GetKey(ctx, &rkmsv1.GetKeyRequest{Id: "tenant-tls"})
					if c.ok != (err == nil) || (err != nil && status.Code(err) != codes.Unavailable) {
						t.Errorf("key API: %v (want accepted=%v, refusals Unavailable)", err, c.ok)
					}

					sealed, err := sealOnce(c.dial(t, p, extAddr), "req-"+strings.ReplaceAll(c.name, " ", "-"), "tls-ssn")
					if c.ok != (err == nil) || (err != nil && status.Code(err) != codes.Unavailable) {
						t.Errorf("ext_proc: %v (want accepted=%v, refusals Unavailable)", err, c.ok)
					}
					if err == nil && !strings.Contains(string(sealed), `"rkms:`) {
						t.Errorf("ext_proc did not encrypt: %s", sealed)
					}
				})
			}
			r.stop()
			logs := r.stderr.String()
			subject := `"subject":"CN=ops,O=rkms tests"`
			if mutual {
				for _, want := range []string{`"api":"http","op":"read","key_id":"tenant-tls"`, `"api":"grpc","op":"read","key_id":"tenant-tls"`} {
					if !strings.Contains(logs, want) {
						t.Errorf("no audit record %s", want)
					}
				}
				if strings.Count(logs, subject) < 2 {
					t.Errorf("audit records lack the client subject %s:\n%s", subject, logs)
				}
			} else if strings.Contains(logs, `"subject"`) {
				t.Errorf("a subject without mutual TLS:\n%s", logs)
			}
			if strings.Contains(logs, "tls-ssn") {
				t.Error("tagged plaintext in the logs")
			}
		})
	}
}
