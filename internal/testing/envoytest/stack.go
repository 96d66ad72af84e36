package envoytest

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/rkms/rkms/internal/testing/env"
)

// Ports are the loopback ports a configuration under test must use, and the files it must read.
type Ports struct {
	Admin    int // Envoy's admin listener
	Listener int // Envoy's HTTP listener
	App      int // the application (ingress upstream)
	Rkms     int // rkms's ext_proc listener
	// JWKS is the path of the JSON Web Key Set that jwt_authn must verify tokens with (the
	// "# file:jwks" line of ingress.yaml): the public key of [TestIssuer].
	JWKS string
}

// Render returns the Envoy bootstrap under test, listening and connecting on p only (127.0.0.1),
// with ext_proc's failure_mode_allow set to failureModeAllow (shipped configurations say false;
// the suite also runs them misconfigured). It fails t if it cannot.
type Render func(t testing.TB, p Ports, failureModeAllow bool) string

// App is the application behind Envoy. It answers every request 200 with a small JSON body
// (a request with the query parameter "big" gets a 2 MiB one, above Envoy's 1 MiB buffer) and
// remembers what reached it.
type App struct {
	mu      sync.Mutex
	reqs    []string      // "METHOD PATH BODY"
	headers []http.Header // the headers of each
}

func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	a.reqs = append(a.reqs, r.Method+" "+r.URL.Path+" "+string(body))
	a.headers = append(a.headers, r.Header.Clone())
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Query().Has("big") {
		_, _ = io.WriteString(w, `{"pad":"`+strings.Repeat("x", 2<<20)+`"}`)
		return
	}
	_, _ = io.WriteString(w, `{"ok":true}`)
}

// Received returns every request that reached the app, as "METHOD PATH BODY".
func (a *App) Received() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.reqs...)
}

// LastHeader returns the headers of the last request that reached the app (nil if none).
func (a *App) LastHeader() http.Header {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.headers) == 0 {
		return nil
	}
	return a.headers[len(a.headers)-1]
}

// Stack is a real Envoy running a configuration under test, with a [FakeRkms] and an [App]
// behind it.
type Stack struct {
	Rkms  *FakeRkms
	App   *App
	Envoy *testenv.Envoy

	base     string
	client   *http.Client
	stopRkms func()
	stopApp  func()
}

// Start renders the configuration for fresh loopback ports and runs it, with a plaintext fake
// rkms. Everything stops at test cleanup.
func Start(t testing.TB, render Render, failureModeAllow bool) *Stack {
	t.Helper()
	return StartConfig(t, Config{Render: render, FailureModeAllow: failureModeAllow})
}

// Config describes a stack for [StartConfig].
type Config struct {
	Render           Render
	FailureModeAllow bool
	// RkmsTLS, when set, makes the fake rkms serve ext_proc over TLS with it: the configuration's
	// rkms cluster must then speak TLS (the compose example's does, with mutual TLS).
	RkmsTLS *tls.Config
	// ClientTLS, when set, makes Do speak HTTPS to Envoy's listener with it (a listener with a
	// DownstreamTlsContext, such as README.md's mutual TLS block).
	ClientTLS *tls.Config
}

// StartConfig renders c.Render for fresh loopback ports and a JWKS file of [TestIssuer], and
// runs it. Everything stops at test cleanup.
func StartConfig(t testing.TB, c Config) *Stack {
	t.Helper()
	s := &Stack{Rkms: &FakeRkms{}, App: &App{}, client: &http.Client{Transport: &http.Transport{TLSClientConfig: c.ClientTLS}}}
	render := c.Render
	var p Ports
	p.JWKS = JWKSFile(t)
	p.Rkms, s.stopRkms = serve(t, s.Rkms, c.RkmsTLS)
	app := httptest.NewServer(s.App)
	t.Cleanup(app.Close)
	s.stopApp = app.Close
	p.App = app.Listener.Addr().(*net.TCPAddr).Port
	p.Admin, p.Listener = testenv.FreePort(t), testenv.FreePort(t)
	s.Envoy = testenv.StartEnvoy(t, render(t, p, c.FailureModeAllow))
	scheme := "http"
	if c.ClientTLS != nil {
		scheme = "https"
	}
	s.base = fmt.Sprintf("%s://127.0.0.1:%d", scheme, p.Listener)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("envoy log:\n%s", s.Envoy.Output())
		}
	})
	return s
}

// URL returns the URL of path on Envoy's listener.
func (s *Stack) URL(path string) string { return s.base + path }

// StopRkms stops the fake rkms: new ext_proc streams fail to connect.
func (s *Stack) StopRkms() { s.stopRkms() }

// StopApp stops the application: Envoy's upstream connections fail.
func (s *Stack) StopApp() { s.stopApp() }

// Reply is what the client got.
type Reply struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends one request through Envoy. A body is sent as application/json; headers are name,
// value pairs. Unless headers name Authorization, the request carries a valid bearer token for
// [DefaultTestTenant]; an Authorization header with an empty value sends none.
func (s *Stack) Do(t testing.TB, method, path, body string, headers ...string) Reply {
	t.Helper()
	req := NewRequest(t, s.base, method, path, body, append([]string{"Authorization", "Bearer " + Token(t, DefaultTestTenant)}, headers...)...)
	if req.Header.Get("Authorization") == "" {
		req.Header.Del("Authorization")
	}
	return Send(t, s.client, req)
}

// NewRequest builds a request to base+path: a body is sent as application/json; headers are
// name, value pairs, set in order (a later one replaces an earlier one of the same name).
func NewRequest(t testing.TB, base, method, path, body string, headers ...string) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return req
}

// Send sends req with client and reads the whole reply; a transport error fails t.
func Send(t testing.TB, client *http.Client, req *http.Request) Reply {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.URL.Path, err)
	}
	return Reply{Status: resp.StatusCode, Header: resp.Header, Body: b}
}
