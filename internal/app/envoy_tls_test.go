package app

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
	"github.com/rkms/rkms/internal/testing/tlstest"
)

// mtlsSnippet returns the transport_socket block that envoy/README.md ships for the rkms cluster,
// with its placeholder paths and name replaced.
func mtlsSnippet(t *testing.T, client tlstest.Pair, caFile, serverName string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "envoy", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- envoy-rkms-mtls")
	if !ok {
		t.Fatal("envoy/README.md lost its mTLS snippet marker")
	}
	_, rest, _ = strings.Cut(rest, "```yaml\n")
	block, _, ok := strings.Cut(rest, "```")
	if !ok || !strings.HasPrefix(block, "      transport_socket:") {
		t.Fatalf("envoy/README.md mTLS snippet not found or not a cluster transport_socket: %q", block)
	}
	return strings.NewReplacer(
		"/etc/envoy/tls/rkms-client.pem", client.CertFile,
		"/etc/envoy/tls/rkms-client-key.pem", client.KeyFile,
		"/etc/envoy/tls/rkms-ca.pem", caFile,
		"rkms.internal", serverName,
	).Replace(block)
}

// echoApp answers every request with its JSON body and remembers what it received.
type echoApp struct {
	mu   sync.Mutex
	seen [][]byte
}

func (a *echoApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	a.seen = append(a.seen, b)
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// TestEnvoyExtProcMutualTLS runs the real Envoy with ingress.yaml and the envoy/README.md mTLS
// block on its rkms cluster, against rkms serve requiring client certificates: with the right
// client certificate the field is encrypted for the app and decrypted for the client, and the
// key's creation is audited with Envoy's certificate subject and the request id; with a
// certificate from another CA every request fails closed with 503.
func TestEnvoyExtProcMutualTLS(t *testing.T) {
	testenv.Integration(t)
	t.Setenv("RKMS_ADMIN_TOKEN", "envoy-tls-token-0123456789")
	p := newPKI(t)
	dir := t.TempDir()
	extPort := testenv.FreePort(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`data_dir: %[1]s/data
admin: {listen: 127.0.0.1:%[2]d, grpc_listen: "", token_file: %[1]s/token}
extproc: {listen: 127.0.0.1:%[3]d, tls: %[4]s}
store: {type: memory}
policies:
  - name: patients
    key_id: "tenant-{jwt:tenant}"
    request: {encrypt: ["$.ssn"]}
    response: {decrypt: ["$.ssn"]}
`, dir, testenv.FreePort(t), extPort, tlsBlock(p, true)))
	r, _, _, _ := startServeTLS(t, cfg)

	app := &echoApp{}
	appPort := serveApp(t, app)

	startEnvoy := func(client tlstest.Pair) string {
		listener := testenv.FreePort(t)
		rendered := ingressYAML(t, listener, appPort, extPort)
		const anchor = "    - name: rkms\n      type: STATIC\n"
		if !strings.Contains(rendered, anchor) {
			t.Fatal("ingress.yaml: rkms cluster not found")
		}
		withTLS := strings.Replace(rendered, anchor, anchor+mtlsSnippet(t, client, p.ca.File, "localhost"), 1)
		testenv.StartEnvoy(t, withTLS)
		return fmt.Sprintf("http://127.0.0.1:%d", listener)
	}
	post := func(base, tenant, ssn string) (int, string) {
		req, _ := http.NewRequest("POST", base+"/patients", strings.NewReader(`{"ssn":"`+ssn+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+envoytest.Token(t, tenant))
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	good := startEnvoy(p.envoy)
	code, body := post(good, "acme", "111-22-3333")
	if code != http.StatusOK || body != `{"ssn":"111-22-3333"}` {
		t.Fatalf("through Envoy over mTLS: %d %s\nrkms: %s", code, body, r.stderr)
	}
	app.mu.Lock()
	seen := string(app.seen[len(app.seen)-1])
	app.mu.Unlock()
	if strings.Contains(seen, "111-22-3333") || !strings.Contains(seen, `"rkms:`) {
		t.Fatalf("the app received %s", seen)
	}

	bad := startEnvoy(p.alien)
	before := len(app.seen)
	if code, body := post(bad, "acme", "444-55-6666"); code != http.StatusServiceUnavailable {
		t.Fatalf("Envoy with another CA's client certificate: %d %s, want 503", code, body)
	}
	app.mu.Lock()
	if len(app.seen) != before {
		t.Error("the app received a request that rkms never processed")
	}
	app.mu.Unlock()

	r.stop()
	var created map[string]any
	for _, line := range strings.Split(r.stderr.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["logger"] == "audit" && rec["op"] == "create" {
			created = rec
		}
	}
	if created == nil || created["api"] != "extproc" || created["key_id"] != "tenant-acme" || created["result"] != "ok" ||
		created["subject"] != "CN=envoy,O=rkms tests" || created["request_id"] == nil || created["request_id"] == "" {
		t.Fatalf("audit record of the key's creation: %v\n%s", created, r.stderr)
	}
}
