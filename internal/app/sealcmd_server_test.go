package app

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/envoy"
	testenv "github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

// TestSealServerMode runs rkms serve on an embedded store (what `make run` does), then: seal
// without --server fails at once naming the server's admin URL; with --server (the token read
// from the configuration's token file, as rkms serve wrote it) a document and a value round
// trip; a wrong token is refused without output; after a rotation new seals use version 2 and
// both versions open, and once the server has stopped the keyring opens both without it.
func TestSealServerMode(t *testing.T) {
	t.Setenv("RKMS_ADMIN_TOKEN", "")
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fmt.Sprintf(`data_dir: %[1]s/data
admin: {listen: 127.0.0.1:%[2]d, grpc_listen: "", token_file: %[1]s/data/admin.token}
extproc: {listen: 127.0.0.1:%[3]d}
store: {type: embedded, embedded: {path: %[1]s/data/keys.db}}
%[4]s`, dir, testenv.FreePort(t), testenv.FreePort(t), sealPolicies))
	r := startServe(t, "--config", cfg)
	server := "http://" + r.admin
	const doc = `{"ssn":"SERVER-MODE-1","contact":{"email":"a@example.com"}}`
	patients := []string{"--config", cfg, "--policy", "patients", "--claim", "tenant=acme"}

	code, stdout, stderr := cli(t, doc, append([]string{"seal"}, patients...)...)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "locked") || !strings.Contains(stderr, "--server "+server) {
		t.Fatalf("seal with the store held by rkms serve: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	withServer := append([]string{"--server", server}, patients...)
	code, sealed1, stderr := cli(t, doc, append([]string{"seal"}, withServer...)...)
	if code != 0 || strings.Count(sealed1, `"rkms:`) != 2 {
		t.Fatalf("seal --server: exit %d, %s %s", code, sealed1, stderr)
	}
	if code, opened, stderr := cli(t, sealed1, append([]string{"open"}, withServer...)...); code != 0 || opened != doc {
		t.Fatalf("open --server: exit %d, %s %s", code, opened, stderr)
	}
	code, ct, stderr := cli(t, "v1\n", "seal", "--server", server, "--config", cfg, "--value", "--key-id", "tenant-acme")
	if code != 0 {
		t.Fatalf("seal --value --server: %d %s", code, stderr)
	}
	if code, v, stderr := cli(t, ct, "open", "--server", server, "--config", cfg, "--value"); code != 0 || v != "v1\n" {
		t.Fatalf("open --value --server: %d %q %s", code, v, stderr)
	}

	bad := filepath.Join(dir, "bad.token")
	if err := os.WriteFile(bad, []byte("not-the-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = cli(t, sealed1, append([]string{"open", "--token-file", bad}, withServer...)...)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "401") || strings.Contains(stderr, "SERVER-MODE-1") {
		t.Fatalf("open --server with a wrong token: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	token, err := os.ReadFile(filepath.Join(dir, "data", "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	if st, k := call(t, "POST", server+"/key/rotate?id=tenant-acme", strings.TrimSpace(string(token))); st != http.StatusOK || k.Version != 2 {
		t.Fatalf("rotate: %d %+v", st, k)
	}
	code, sealed2, stderr := cli(t, doc, append([]string{"seal"}, withServer...)...)
	if code != 0 {
		t.Fatalf("seal --server after rotation: %d %s", code, stderr)
	}
	if _, out, _ := cli(t, sealed2, "inspect"); !strings.Contains(out, "tenant-acme  2") {
		t.Fatalf("sealed after rotation, not under version 2:\n%s", out)
	}
	if code, opened, stderr := cli(t, sealed2, append([]string{"open"}, withServer...)...); code != 0 || opened != doc {
		t.Fatalf("open --server, version 2: exit %d, %s %s", code, opened, stderr)
	}
	// Version 1 through the admin API needs a server that serves older versions; one that
	// answers the current version instead is refused, never used.
	code, opened, stderr := cli(t, sealed1, append([]string{"open"}, withServer...)...)
	if (code != 0 || opened != doc) && !(code == 1 && strings.Contains(stderr, "does not serve older versions")) {
		t.Fatalf("open --server, version 1: exit %d, %s %s", code, opened, stderr)
	}

	if code := r.stop(); code != 0 {
		t.Fatalf("rkms serve: exit %d: %s", code, r.stderr)
	}
	for i, sealed := range []string{sealed1, sealed2} {
		if code, opened, stderr := cli(t, sealed, append([]string{"open"}, patients...)...); code != 0 || opened != doc {
			t.Fatalf("open version %d from the keyring: exit %d, %s %s", i+1, code, opened, stderr)
		}
	}
}

// storeApp is the application behind Envoy: it answers a POST with the body it received and
// a GET with the body the test stored (a record the CLI sealed).
type storeApp struct {
	mu       sync.Mutex
	received []byte
	stored   []byte
}

func (a *storeApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	if r.Method == http.MethodGet {
		b = a.stored
	} else {
		a.received = b
	}
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// TestSealThroughEnvoy is interoperability with the real path: real Envoy (envoy/ingress.yaml,
// jwt_authn) in front of rkms serve. A record that rkms seal sealed is decrypted by Envoy for
// its tenant and refused (502) to another; a record that Envoy sealed on its way to the app
// opens with rkms open. Keys come from that rkms serve (--server; its store is in memory).
func TestSealThroughEnvoy(t *testing.T) {
	testenv.Integration(t)
	t.Setenv("RKMS_ADMIN_TOKEN", "seal-envoy-token-0123456789")
	dir := t.TempDir()
	extPort := testenv.FreePort(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`data_dir: %[1]s/data
admin: {listen: 127.0.0.1:%[2]d, grpc_listen: "", token_file: %[1]s/token}
extproc: {listen: 127.0.0.1:%[3]d}
store: {type: memory}
%[4]s`, dir, testenv.FreePort(t), extPort, sealPolicies))
	r := startServe(t, "--config", cfg)
	server := "http://" + r.admin

	app := &storeApp{}
	appPort := serveApp(t, app)
	listener := testenv.FreePort(t)
	testenv.StartEnvoy(t, ingressYAML(t, listener, appPort, extPort))
	send := func(method, tenant, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d/patients/1", listener), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
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
	const doc = `{"name":"Ann","ssn":"ENVOY-SSN-1","contact":{"email":"ann@example.com"},"cards":[{"number":"4111"}]}`
	cliArgs := []string{"--server", server, "--config", cfg, "--policy", "patients", "--claim", "tenant=acme"}

	// The CLI seals a record; the app serves it; Envoy decrypts it for the tenant's client.
	code, sealed, stderr := cli(t, doc, append([]string{"seal"}, cliArgs...)...)
	if code != 0 || strings.Contains(sealed, "ENVOY-SSN-1") {
		t.Fatalf("seal: exit %d, %s %s", code, sealed, stderr)
	}
	app.mu.Lock()
	app.stored = []byte(sealed)
	app.mu.Unlock()
	if st, body := send("GET", "acme", ""); st != http.StatusOK || body != doc {
		t.Fatalf("GET through Envoy of the record rkms seal sealed: %d %s\nrkms: %s", st, body, r.stderr)
	}
	if st, body := send("GET", "evil", ""); st != http.StatusBadGateway || strings.Contains(body, "ENVOY-SSN-1") {
		t.Fatalf("GET through Envoy by another tenant: %d %s, want 502", st, body)
	}

	// Envoy seals a client's record on its way to the app; the CLI opens what the app stored.
	if st, body := send("POST", "acme", doc); st != http.StatusOK || body != doc {
		t.Fatalf("POST through Envoy: %d %s", st, body)
	}
	app.mu.Lock()
	atApp := string(app.received)
	app.mu.Unlock()
	if strings.Contains(atApp, "ENVOY-SSN-1") || strings.Count(atApp, `"rkms:`) != 3 {
		t.Fatalf("the app received %s", atApp)
	}
	if code, opened, stderr := cli(t, atApp, append([]string{"open"}, cliArgs...)...); code != 0 || opened != doc {
		t.Fatalf("open of what Envoy sealed: exit %d, %s %s", code, opened, stderr)
	}
	if code, out, _ := cli(t, atApp, "inspect", "--config", cfg, "--policy", "patients"); code != 0 ||
		!strings.Contains(out, "$.contact.email    tenant-acme  1        randomized  email") {
		t.Fatalf("inspect of what Envoy sealed: exit %d\n%s", code, out)
	}
}

// serveApp serves h on a loopback port until the test ends and returns the port.
func serveApp(t *testing.T, h http.Handler) int {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Close() })
	return lis.Addr().(*net.TCPAddr).Port
}

// ingressYAML renders envoy/ingress.yaml for an Envoy listening on listener (its admin on a free
// port), with the app on app, rkms's ext_proc on rkms and the test issuer's JWKS.
func ingressYAML(t *testing.T, listener, app, rkms int) string {
	t.Helper()
	base, err := envoy.Config("ingress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := envoy.Render(base, map[string]int{"admin": testenv.FreePort(t), "listener": listener, "app": app, "rkms": rkms})
	if err == nil {
		rendered, err = envoy.RenderFiles(rendered, map[string]string{"jwks": envoytest.JWKSFile(t)})
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(rendered)
}

// TestSealCountsSeals: a bulk seal counts its seals toward keyring.rotation.max_seals as rkms
// serve's own do, with --server (POST /key/seals reserves them in the server's store) and
// without (the configured keyring): every version seals at most max_seals values, the stored
// count of each version covers the ciphertexts made under it, and the run moves to the next
// version when one is used up. Before, a bulk run did not count its seals at all.
func TestSealCountsSeals(t *testing.T) {
	t.Setenv("RKMS_ADMIN_TOKEN", "")
	const maxSeals, records = 2000, 2600 // two seals per record: 5,200 seals, 3 versions
	var in strings.Builder
	for i := range records {
		fmt.Fprintf(&in, `{"ssn":"COUNT-%d","contact":{"email":"p%d@example.com"}}`+"\n", i, i)
	}
	for _, withServer := range []bool{true, false} {
		t.Run(fmt.Sprintf("server=%v", withServer), func(t *testing.T) {
			dir := t.TempDir()
			cfg := writeConfig(t, dir, fmt.Sprintf(`data_dir: %[1]s/data
admin: {listen: 127.0.0.1:%[2]d, grpc_listen: "", token_file: %[1]s/data/admin.token}
extproc: {listen: 127.0.0.1:%[3]d}
store: {type: embedded, embedded: {path: %[1]s/data/keys.db}}
keyring: {rotation: {max_seals: %[5]d}}
%[4]s`, dir, testenv.FreePort(t), testenv.FreePort(t), sealPolicies, maxSeals))
			args := []string{"seal", "--config", cfg, "--policy", "patients", "--claim", "tenant=acme", "--format", "ndjson", "-j", "4"}
			var r *running
			if withServer {
				r = startServe(t, "--config", cfg)
				args = append(args, "--server", "http://"+r.admin)
			}
			code, out, stderr := cli(t, in.String(), args...)
			if code != 0 {
				t.Fatalf("seal: exit %d: %s", code, stderr)
			}
			made := map[uint32]int{}
			for line := range strings.Lines(out) {
				for _, part := range strings.Split(line, `"`) {
					if envelope.IsCiphertext([]byte(part)) {
						h, err := envelope.Parse([]byte(part))
						if err != nil {
							t.Fatal(err)
						}
						made[h.KeyVersion]++
					}
				}
			}
			if total := made[1] + made[2] + made[3] + made[4]; total != 2*records {
				t.Fatalf("%d ciphertexts by version %v, want %d", total, made, 2*records)
			}
			if !withServer {
				r = startServe(t, "--config", cfg)
			}
			token, err := os.ReadFile(filepath.Join(dir, "data", "admin.token"))
			if err != nil {
				t.Fatal(err)
			}
			md := metadataOf(t, "http://"+r.admin+"/key/metadata?id=tenant-acme", strings.TrimSpace(string(token)))
			stored := map[uint32]uint64{}
			for _, v := range md.Versions {
				stored[v.Version] = v.Seals
				if v.Seals > maxSeals {
					t.Errorf("version %d counts %d seals, above max_seals %d", v.Version, v.Seals, maxSeals)
				}
			}
			for v, n := range made {
				if uint64(n) > stored[v] {
					t.Errorf("version %d: %d ciphertexts, but the store counts %d seals", v, n, stored[v])
				}
			}
			if made[1] > maxSeals || len(made) < 3 {
				t.Errorf("ciphertexts by version %v: want at most %d per version, so at least 3 versions", made, maxSeals)
			}
			t.Logf("ciphertexts by version %v; stored seal counts %v", made, stored)
		})
	}
}

// metadataOf reads GET /key/metadata.
func metadataOf(t *testing.T, url, token string) (md struct {
	Versions []struct {
		Version uint32 `json:"version"`
		Seals   uint64 `json:"seals"`
	} `json:"versions"`
}) {
	t.Helper()
	if code := getJSON(t, url, token, &md); code != http.StatusOK {
		t.Fatalf("GET %s: %d", url, code)
	}
	return md
}
