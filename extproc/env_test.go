package extproc

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc/peer"

	"github.com/rkms/rkms/examples/app/recorder"
	"github.com/rkms/rkms/extproc/policy"
)

// loadPolicies decodes testdata/policies.yaml the way the config loader does.
func loadPolicies(t testing.TB) []policy.Config {
	t.Helper()
	b, err := os.ReadFile("testdata/policies.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Policies []policy.Config `yaml:"policies"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc.Policies
}

// testEnv is a server with fake keys behind a fake Envoy, in front of a recorder app.
type testEnv struct {
	t     testing.TB
	keys  *fakeKeys
	app   *recorder.App
	srv   *Server
	envoy *fakeEnvoy
}

func newTestEnv(t testing.TB, opts Options) *testEnv {
	t.Helper()
	return newTestEnvWith(t, opts, nil)
}

// newTestEnvWith is newTestEnv with testdata/policies.yaml changed by edit first.
func newTestEnvWith(t testing.TB, opts Options, edit func(ps []policy.Config) []policy.Config) *testEnv {
	t.Helper()
	e := &testEnv{t: t, keys: newFakeKeys(), app: recorder.New()}
	ps := loadPolicies(t)
	if edit != nil {
		ps = edit(ps)
	}
	srv, err := NewServer(ps, e.keys, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	e.envoy = startServer(t, srv)
	return e
}

// recorderApp adapts the recorder to the harness's upstream function.
func recorderApp(a *recorder.App) func(*httpReq) httpResp {
	return func(r *httpReq) httpResp {
		req := httptest.NewRequest(r.method, r.path, bytes.NewReader(r.body))
		for _, kv := range r.headers {
			if !strings.HasPrefix(kv[0], ":") {
				req.Header.Add(kv[0], kv[1])
			}
		}
		rec := httptest.NewRecorder()
		a.ServeHTTP(rec, req)
		resp := httpResp{status: rec.Code, body: rec.Body.Bytes()}
		for k, vs := range rec.Header() {
			for _, v := range vs {
				resp.headers = append(resp.headers, [2]string{strings.ToLower(k), v})
			}
		}
		return resp
	}
}

func jsonReq(method, path, tenant, body string) httpReq {
	r := httpReq{method: method, path: path}
	if tenant != "" {
		r.headers = append(r.headers, [2]string{"x-tenant-id", tenant})
	}
	if body != "" {
		r.headers = append(r.headers, [2]string{"content-type", "application/json"})
		r.body = []byte(body)
	}
	return r
}

func (e *testEnv) do(cfg envoyCfg, r httpReq) exchange {
	e.t.Helper()
	return e.envoy.do(cfg, r, recorderApp(e.app))
}

// mustDo runs r and fails unless the client gets want.
func (e *testEnv) mustDo(r httpReq, want int) exchange {
	e.t.Helper()
	return e.mustDoCfg(envoyCfg{}, r, want)
}

// mustDoCfg is mustDo through an Envoy configured by cfg.
func (e *testEnv) mustDoCfg(cfg envoyCfg, r httpReq, want int) exchange {
	e.t.Helper()
	x := e.do(cfg, r)
	if x.client.status != want {
		e.t.Fatalf("%s %s: status %d, want %d (body %s)", r.method, r.path, x.client.status, want, x.client.body)
	}
	return x
}

// noPlaintextReached fails if any body the app received contains one of secrets.
func (e *testEnv) noPlaintextReached(secrets ...string) {
	e.t.Helper()
	for _, rcv := range e.app.Received() {
		for _, s := range secrets {
			if bytes.Contains(rcv.Body, []byte(s)) {
				e.t.Errorf("app received plaintext %q in %s %s: %s", s, rcv.Method, rcv.Path, rcv.Body)
			}
		}
	}
}

// field decodes a JSON document and returns the value at a dotted path (numbers index arrays).
func field(t testing.TB, doc []byte, path string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, doc)
	}
	for _, p := range strings.Split(path, ".") {
		switch c := v.(type) {
		case map[string]any:
			v = c[p]
		case []any:
			i := 0
			for _, ch := range p {
				i = i*10 + int(ch-'0')
			}
			if i >= len(c) {
				return nil
			}
			v = c[i]
		default:
			return nil
		}
	}
	return v
}

// errorMessage returns the "error" member of an rkms error reply.
func errorMessage(t testing.TB, x exchange) string {
	t.Helper()
	if ct, _ := x.client.headers.get("content-type"); ct != "application/json" {
		t.Errorf("error reply content-type %q, want application/json", ct)
	}
	var b struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(x.client.body, &b); err != nil || b.Error == "" {
		t.Errorf("error reply body %q is not {\"error\": ...}", x.client.body)
	}
	return b.Error
}

// pol returns the server's compiled policy called name.
func (e *testEnv) pol(name string) *policy.Policy {
	e.t.Helper()
	for _, p := range e.srv.policies.Policies() {
		if p.Name() == name {
			return p
		}
	}
	e.t.Fatalf("no policy %q", name)
	return nil
}

// loopbackPeer is ctx as seen by a server whose client connected over loopback (as the Envoy
// sidecar does): the route's policy metadata is trusted from it.
func loopbackPeer(ctx context.Context) context.Context {
	return peer.NewContext(ctx, &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}})
}
