package extproc

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"

	"github.com/rkms/rkms/envoy"
	"github.com/rkms/rkms/examples/app/recorder"
	"github.com/rkms/rkms/extproc/policy"
	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/keyring/localkms"
	"github.com/rkms/rkms/store/storetest"
)

// StackKeys adapts the stack's keyring to Keys. It is the production adapter that `rkms serve`
// wires in, internal/keysource, set by hooks_test.go: keysource imports extproc, so
// only the external test package can import it (package extproc importing it is a cycle). A
// test-local copy of the adapter here once mapped errors differently from production (500 where
// rkms answers 503) and the real-Envoy tests checked the copy instead of the product.
var StackKeys func(*keyring.Keyring) Keys

// stack is the real thing on loopback: a client -> real Envoy (envoy/ingress.yaml) -> this
// server (gRPC over TCP, real keyring on an in-memory store with a software KMS region, through
// the production adapter internal/keysource) -> the recorder app.
type stack struct {
	store   *storetest.Memory
	keyring *keyring.Keyring
	app     *recorder.App
	envoy   *testenv.Envoy
	base    string // http://127.0.0.1:PORT of Envoy's listener
	appURL  string
	client  *http.Client
	streams *streamLog
	logs    *testenv.LockedBuffer
	srv     *Server
}

// startStack runs a shipped configuration (envoy.Config(cfgName)); see startStackYAML.
// Requests to ingress.yaml's policy routes need a valid token (envoytest.Bearer).
func startStack(t testing.TB, cfgName string, opts Options) *stack {
	t.Helper()
	cfg, err := envoy.Config(cfgName)
	if err != nil {
		t.Fatal(err)
	}
	upstream := "app"
	if cfgName == "egress.yaml" {
		upstream = "external_api"
	}
	return startStackYAML(t, cfg, upstream, opts)
}

// startStackYAML runs Envoy on the bootstrap cfg, whose ports are marked like the shipped files'
// ("# port:admin", "# port:listener", "# port:rkms" and "# port:UPSTREAM" for the recorder app),
// and its JWKS file, if any, with "# file:jwks" (the key of envoytest.TestIssuer).
func startStackYAML(t testing.TB, cfg []byte, upstream string, opts Options) *stack {
	t.Helper()
	return startStackWith(t, cfg, opts, stackConfig{upstream: upstream})
}

// stackConfig is what startStackWith needs beyond the rkms server's Options.
type stackConfig struct {
	upstream string            // the "# port:NAME" of the recorder app's cluster
	files    map[string]string // "# file:NAME" lines to render besides jwks
	// clientTLS, when set, makes the client speak HTTPS to Envoy's listener with it (a listener
	// with a DownstreamTlsContext).
	clientTLS *tls.Config
	policies  []policy.Config // nil: ingressPolicies
	keyring   keyring.Options // the stack keyring's options (its defaults when zero)
	app       http.Handler    // the application; nil: the recorder app (s.app)
}

// ingressPolicies are testdata/policies.yaml as the stack serves them behind Envoy: the
// patients policy takes its tenant from the token Envoy verified (ingress.yaml), not from a
// header a client sets.
func ingressPolicies(t testing.TB) []policy.Config {
	t.Helper()
	ps := loadPolicies(t)
	for i := range ps {
		if ps[i].Name == "patients" {
			ps[i].KeyID = "tenant-{jwt:tenant}"
		}
	}
	return ps
}

// startStackWith runs Envoy on cfg in front of a fresh rkms server and recorder app.
func startStackWith(t testing.TB, cfg []byte, opts Options, sc stackConfig) *stack {
	t.Helper()
	s := &stack{store: storetest.NewMemory(), app: recorder.New(), streams: &streamLog{}, logs: &testenv.LockedBuffer{}}
	region, err := localkms.Open(t.TempDir(), "local-1", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.keyring, err = keyring.New(s.store, []keyring.Region{region}, sc.keyring)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.keyring.Close() })
	opts.Logger = slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if StackKeys == nil {
		t.Fatal("StackKeys is not set (hooks_test.go sets it to the production adapter)")
	}
	pols := sc.policies
	if pols == nil {
		pols = ingressPolicies(t)
	}
	srv, err := NewServer(pols, StackKeys(s.keyring), opts)
	if err != nil {
		t.Fatal(err)
	}
	s.srv = srv
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(append(srv.GRPCServerOptions(), grpc.StreamInterceptor(s.streams.intercept))...)
	srv.Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)

	var app http.Handler = s.app
	if sc.app != nil {
		app = sc.app
	}
	appSrv := httptest.NewServer(app)
	t.Cleanup(appSrv.Close)
	s.appURL = appSrv.URL

	listener := testenv.FreePort(t)
	rendered, err := envoy.Render(cfg, map[string]int{
		"admin": testenv.FreePort(t), "listener": listener,
		sc.upstream: appSrv.Listener.Addr().(*net.TCPAddr).Port, "rkms": lis.Addr().(*net.TCPAddr).Port,
	})
	if err != nil {
		t.Fatal(err)
	}
	files := maps.Clone(sc.files)
	if bytes.Contains(cfg, []byte("# file:jwks")) {
		if files == nil {
			files = map[string]string{}
		}
		files["jwks"] = envoytest.JWKSFile(t)
	}
	if rendered, err = envoy.RenderFiles(rendered, files); err != nil {
		t.Fatal(err)
	}
	s.envoy = testenv.StartEnvoy(t, string(rendered))
	scheme := "http"
	if sc.clientTLS != nil {
		scheme = "https"
	}
	s.base = fmt.Sprintf("%s://127.0.0.1:%d", scheme, listener)
	// DisableCompression: the client sends no accept-encoding of its own, so that tests see
	// the bytes and headers Envoy sends; the compression tests ask for gzip themselves.
	s.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, TLSClientConfig: sc.clientTLS, DisableCompression: true}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("rkms log:\n%s\nenvoy log:\n%s", s.logs.String(), s.envoy.Output())
		}
	})
	return s
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request through Envoy. headers are name, value pairs.
func (s *stack) do(t testing.TB, method, path, body string, headers ...string) reply {
	t.Helper()
	r := envoytest.Send(t, s.client, envoytest.NewRequest(t, s.base, method, path, body, headers...))
	return reply{status: r.Status, header: r.Header, body: r.Body}
}

// streamLog records, per ext_proc stream, the kinds of messages Envoy sent and rkms answered,
// so that the tests can compare the real Envoy with the harness's model.
type streamLog struct {
	mu      sync.Mutex
	streams []*streamRecord
}

type streamRecord struct {
	mu             sync.Mutex
	path           string
	recv, sent     []string
	events         []string // "recv:KIND" and "sent:KIND" in the order they happened
	protocolConfig bool
}

func (l *streamLog) intercept(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	r := &streamRecord{}
	l.mu.Lock()
	l.streams = append(l.streams, r)
	l.mu.Unlock()
	return h(srv, &recordingStream{ServerStream: ss, r: r})
}

// find returns the message kinds of the last stream for path.
func (l *streamLog) find(path string) (recv, sent []string, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.streams) - 1; i >= 0; i-- {
		r := l.streams[i]
		r.mu.Lock()
		p, rv, sv := r.path, append([]string(nil), r.recv...), append([]string(nil), r.sent...)
		r.mu.Unlock()
		if p == path {
			return rv, sv, true
		}
	}
	return nil, nil, false
}

// events returns what happened on the last stream for path, in order ("recv:KIND", "sent:KIND").
func (l *streamLog) events(path string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.streams) - 1; i >= 0; i-- {
		r := l.streams[i]
		r.mu.Lock()
		p, ev := r.path, append([]string(nil), r.events...)
		r.mu.Unlock()
		if p == path {
			return ev
		}
	}
	return nil
}

// last returns what happened on the last stream.
func (l *streamLog) last() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.streams) == 0 {
		return nil
	}
	r := l.streams[len(l.streams)-1]
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

func (l *streamLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.streams)
}

type recordingStream struct {
	grpc.ServerStream
	r *streamRecord
}

func (s *recordingStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if req, ok := m.(*extprocv3.ProcessingRequest); ok && err == nil {
		s.r.mu.Lock()
		defer s.r.mu.Unlock()
		kind := "?"
		switch x := req.GetRequest().(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			kind = "request_headers"
			if x.RequestHeaders.GetEndOfStream() {
				kind += "(eos)"
			}
			s.r.path = parseHeaders(x.RequestHeaders.GetHeaders()).first(":path")
		case *extprocv3.ProcessingRequest_RequestBody:
			kind = fmt.Sprintf("request_body(eos=%v)", x.RequestBody.GetEndOfStream())
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			kind = "response_headers"
			if x.ResponseHeaders.GetEndOfStream() {
				kind += "(eos)"
			}
		case *extprocv3.ProcessingRequest_ResponseBody:
			kind = fmt.Sprintf("response_body(eos=%v)", x.ResponseBody.GetEndOfStream())
		case *extprocv3.ProcessingRequest_RequestTrailers:
			kind = "request_trailers"
		case *extprocv3.ProcessingRequest_ResponseTrailers:
			kind = "response_trailers"
		}
		if req.GetProtocolConfig() != nil {
			s.r.protocolConfig = true
		}
		s.r.recv = append(s.r.recv, kind)
		s.r.events = append(s.r.events, "recv:"+kind)
	}
	return err
}

func (s *recordingStream) SendMsg(m any) error {
	if resp, ok := m.(*extprocv3.ProcessingResponse); ok {
		_, kind, _ := strings.Cut(fmt.Sprintf("%T", resp.GetResponse()), "ProcessingResponse_")
		s.r.mu.Lock()
		s.r.sent = append(s.r.sent, kind)
		s.r.events = append(s.r.events, "sent:"+kind)
		s.r.mu.Unlock()
	}
	return s.ServerStream.SendMsg(m)
}
