package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

// recordApp answers every request with the body it received ({"ok":true} when none) and
// remembers "METHOD PATH BODY" of each.
type recordApp struct {
	mu   sync.Mutex
	reqs []string
}

func (a *recordApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	a.reqs = append(a.reqs, r.Method+" "+r.URL.Path+" "+string(b))
	a.mu.Unlock()
	if len(b) == 0 {
		b = []byte(`{"ok":true}`)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func (a *recordApp) last() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.reqs) == 0 {
		return ""
	}
	return a.reqs[len(a.reqs)-1]
}

func (a *recordApp) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.reqs)
}

// TestEnvoyConfigEndToEnd runs what `rkms envoy-config` renders in the real Envoy, in front of a
// real rkms serve on the same configuration: a policy route's request is sealed before the app
// and opened in the response; the unprotected /healthz passes with no ext_proc message; a
// /healthz request with a body goes through rkms (HTTP/1.1 with content-length) or is refused
// (HTTP/2 without one), and a POST /healthz goes through rkms.
func TestEnvoyConfigEndToEnd(t *testing.T) {
	testenv.Integration(t)
	t.Setenv("RKMS_ADMIN_TOKEN", "envoy-config-token-0123456789")
	dir := t.TempDir()
	app := &recordApp{}
	listener := testenv.FreePort(t)
	cfg := writeConfig(t, dir, fmt.Sprintf(`data_dir: %[1]s/data
admin: {listen: 127.0.0.1:%[2]d, grpc_listen: "", token_file: %[1]s/token}
extproc: {listen: 127.0.0.1:%[3]d}
store: {type: memory}
policies:
  - name: patients
    match: {path_prefix: /patients}
    key_id: "tenant-{jwt:tenant}"
    request: {encrypt: ["$.ssn"]}
    response: {decrypt: ["$.ssn"]}
envoy:
  listener_port: %[4]d
  admin_port: %[5]d
  app_port: %[6]d
  jwt: {jwks_file: %[7]q}
  unprotected: [{path: /healthz}]
`, dir, testenv.FreePort(t), testenv.FreePort(t), listener, testenv.FreePort(t), serveApp(t, app), envoytest.JWKSFile(t)))
	r := startServe(t, "--config", cfg)
	var boot, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"envoy-config", "--config", cfg}, nil, &boot, &stderr); code != 0 {
		t.Fatalf("envoy-config: exit %d: %s", code, stderr.String())
	}
	e := testenv.StartEnvoy(t, boot.String())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("envoy:\n%s\nrkms:\n%s", e.Output(), r.stderr)
		}
	})

	messages := func() float64 {
		_, fams := scrape(t, r.admin)
		v, _ := sum(fams, "rkms_extproc_requests_total")
		return v
	}
	h1 := &http.Client{Timeout: 10 * time.Second}
	h2Transport := &http.Transport{Protocols: new(http.Protocols)}
	h2Transport.Protocols.SetUnencryptedHTTP2(true)
	h2 := &http.Client{Timeout: 10 * time.Second, Transport: h2Transport}
	base := fmt.Sprintf("http://127.0.0.1:%d", listener)
	send := func(c *http.Client, method, path string, body io.Reader, token bool) (int, string, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, body)
		if err != nil {
			t.Fatal(err)
		}
		if token {
			req.Header.Set("Authorization", "Bearer "+envoytest.Token(t, "acme"))
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Proto
	}

	const doc = `{"name":"Ann","ssn":"E2E-SSN-1"}`
	if st, body, _ := send(h1, "POST", "/patients/1", strings.NewReader(doc), true); st != 200 || body != doc {
		t.Fatalf("POST /patients/1: %d %s, want 200 and the document opened again", st, body)
	}
	if got := app.last(); strings.Contains(got, "E2E-SSN-1") || !strings.Contains(got, `"ssn":"rkms:`) {
		t.Fatalf("the app received %q: want the ssn sealed", got)
	}
	if st, body, _ := send(h1, "POST", "/patients/1", strings.NewReader(doc), false); st != 401 || strings.Contains(body, "E2E") {
		t.Errorf("POST /patients/1 without a token: %d %s, want 401 (the policy's key id reads {jwt:tenant})", st, body)
	}

	before, n := messages(), app.count()
	for _, c := range []*http.Client{h1, h2} {
		for _, method := range []string{"GET", "HEAD"} {
			st, _, proto := send(c, method, "/healthz", nil, false)
			if st != 200 {
				t.Errorf("%s /healthz over %s: %d, want 200", method, proto, st)
			}
		}
	}
	if got := messages(); got != before || app.count() != n+4 {
		t.Errorf("4 bodiless /healthz requests: %v ext_proc messages, %d reached the app; want 0 and 4", got-before, app.count()-n)
	}

	// A body makes /healthz a request like any other: through rkms over HTTP/1.1 (no policy
	// covers it: one message), refused over HTTP/2 when it has no content-length.
	before = messages()
	if st, _, _ := send(h1, "GET", "/healthz", strings.NewReader(`{"ssn":"x"}`), false); st != 200 || messages() != before+1 {
		t.Errorf("GET /healthz with a body over HTTP/1.1: %d, %v ext_proc messages; want 200 through rkms (1)", st, messages()-before)
	}
	n = app.count()
	unsized := io.MultiReader(strings.NewReader(`{"ssn":"H2-SSN"}`)) // unknown length: no content-length
	if st, body, proto := send(h2, "GET", "/healthz", unsized, false); st != 413 || proto != "HTTP/2.0" || app.count() != n {
		t.Errorf("GET /healthz with an unsized body over HTTP/2: %d %s (%s), app got %d; want 413 and nothing at the app", st, body, proto, app.count()-n)
	}
	before = messages()
	if st, _, _ := send(h1, "POST", "/healthz", strings.NewReader(`{}`), false); st != 200 || messages() == before {
		t.Errorf("POST /healthz: %d, %v ext_proc messages; want 200 through rkms", st, messages()-before)
	}
}
