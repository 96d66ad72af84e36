package envoy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3filter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

// probeStack is the real Envoy on ingress.yaml (edited) with a probe as rkms and a recording
// app behind it.
type probeStack struct {
	probe *probe
	base  string
	envoy *testenv.Envoy

	mu      sync.Mutex
	appReqs []appReq
	// appAnswer, when set, writes the app's reply.
	appAnswer func(w http.ResponseWriter, r *http.Request)
}

type appReq struct {
	method, path string
	header       http.Header
	body         string
	chunked      bool
}

// withProbeRoute adds a route /probe (a token required) with typed_per_filter_config
// perFilter (lines indented for it) before the catch-all.
func withProbeRoute(t testing.TB, cfg, perFilter string) string {
	const catchAll = "                        - match: {prefix: /}\n"
	route := `                        - match: {prefix: /probe}
                          route: {cluster: app, timeout: 15s}
                          typed_per_filter_config:
                            envoy.filters.http.jwt_authn:
                              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig
                              requirement_name: tenant
` + perFilter
	return envoytest.ReplaceOnce(t, cfg, catchAll, route+catchAll)
}

func startProbeStack(t *testing.T, p *probe, edit func(cfg string) string) *probeStack {
	t.Helper()
	s := &probeStack{probe: p}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.appReqs = append(s.appReqs, appReq{r.Method, r.URL.Path, r.Header.Clone(), string(b), len(r.TransferEncoding) > 0})
		answer := s.appAnswer
		s.mu.Unlock()
		if answer != nil {
			answer(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(app.Close)
	cfg, err := Config("ingress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	listener := testenv.FreePort(t)
	out, err := Render(cfg, map[string]int{"admin": testenv.FreePort(t), "listener": listener,
		"app": app.Listener.Addr().(*net.TCPAddr).Port, "rkms": startProbe(t, p)})
	if err == nil {
		out, err = RenderFiles(out, map[string]string{"jwks": envoytest.JWKSFile(t)})
	}
	if err != nil {
		t.Fatal(err)
	}
	s.envoy = testenv.StartEnvoy(t, edit(string(out)))
	s.base = fmt.Sprintf("http://127.0.0.1:%d", listener)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("envoy log:\n%s", s.envoy.Output())
		}
	})
	return s
}

func (s *probeStack) do(t testing.TB, method, path, body string, headers ...string) envoytest.Reply {
	t.Helper()
	req := envoytest.NewRequest(t, s.base, method, path, body, append([]string{"Authorization", "Bearer " + envoytest.Token(t, "t1")}, headers...)...)
	return envoytest.Send(t, &http.Client{Transport: &http.Transport{DisableCompression: true}}, req)
}

func (s *probeStack) lastApp() (appReq, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.appReqs) == 0 {
		return appReq{}, false
	}
	return s.appReqs[len(s.appReqs)-1], true
}

// TestEnvoyModes records what Envoy 1.40 does with the processing modes that could save rkms
// round trips (envoy/README.md, "Fewest round trips"), with a probe in rkms's place. Each
// subtest is an experiment whose outcome decided extproc.RouteConfigFor; if Envoy changes, it
// fails and says which decision to revisit.
func TestEnvoyModes(t *testing.T) {
	testenv.Integration(t)
	t.Run("request headers skipped: the stamp check runs before the body reaches rkms", func(t *testing.T) {
		// request_header_mode SKIP + BUFFERED body: Envoy continues the headers at once, so the
		// rbac stamp check (and the router) see them before rkms has seen anything. The body-only
		// encrypt route (one message) is impossible with the stamp check.
		p := &probe{answer: stampLast}
		s := startProbeStack(t, p, func(cfg string) string {
			return withProbeRoute(t, cfg, `                            envoy.filters.http.ext_proc:
                              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute
                              overrides:
                                processing_mode: {request_header_mode: SKIP, request_body_mode: BUFFERED, response_header_mode: SKIP, response_body_mode: NONE}
`)
		})
		r := s.do(t, "POST", "/probe", `{"ssn":"1"}`)
		if r.Status != 403 || p.count() != 0 {
			t.Errorf("status %d, %d ext_proc streams; want 403 from the stamp check before any message", r.Status, p.count())
		}
		if a, ok := s.lastApp(); ok {
			t.Errorf("the app got %+v", a)
		}
	})
	t.Run("response headers skipped: they reach the client before rkms answers the body", func(t *testing.T) {
		// response_header_mode SKIP + BUFFERED body: the client gets the status and headers
		// (content-length removed) first, so a refusal at the body can only cut the reply short;
		// and the response attributes cannot carry the content type rkms checks: maps come as
		// "CelMap value", an index expression not at all, and per-route attributes are ignored.
		p := &probe{answer: func(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
			if req.GetResponseBody() != nil {
				return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
					Status: &typev3.HttpStatus{Code: 502}, Body: []byte(`{"error":"refused"}`)}}}
			}
			return stampLast(req)
		}}
		s := startProbeStack(t, p, func(cfg string) string {
			cfg = envoytest.ReplaceOnce(t, cfg, "                        - source.address\n                      processing_mode:\n                        request_header_mode: SEND\n                        response_header_mode: SEND\n                        request_body_mode: BUFFERED",
				"                        - source.address\n                      response_attributes: [response.code, response.headers, \"response.headers['content-type']\"]\n                      processing_mode:\n                        request_header_mode: SEND\n                        response_header_mode: SEND\n                        request_body_mode: BUFFERED")
			return withProbeRoute(t, cfg, `                            envoy.filters.http.ext_proc:
                              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute
                              overrides:
                                processing_mode: {request_header_mode: SEND, request_body_mode: BUFFERED, response_header_mode: SKIP, response_body_mode: BUFFERED}
                                response_attributes: [request.path]
`)
		})
		req := envoytest.NewRequest(t, s.base, "GET", "/probe/1", "", "Authorization", "Bearer "+envoytest.Token(t, "t1"))
		resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || err == nil || resp.ContentLength != -1 {
			t.Errorf("refused at the response body: status %d, content-length %d, body %q, read error %v; want 200 without content-length, cut short",
				resp.StatusCode, resp.ContentLength, body, err)
		}
		if got := kinds(p.last()); !slices.Equal(got, []string{"request_headers", "response_body"}) {
			t.Fatalf("messages %v", got)
		}
		attrs := p.last()[1].GetAttributes()["envoy.filters.http.ext_proc"].GetFields()
		if attrs["response.code"].GetNumberValue() != 200 || attrs["response.headers"].GetStringValue() != "CelMap value" {
			t.Errorf("response attributes %v: want response.code 200 and response.headers as the string CelMap value", attrs)
		}
		if _, ok := attrs["response.headers['content-type']"]; ok {
			t.Errorf("response attributes %v: an index expression is now sent: rkms could learn the content type", attrs)
		}
		if _, ok := attrs["request.path"]; ok {
			t.Errorf("response attributes %v: per-route response_attributes are now honoured", attrs)
		}
	})
	t.Run("pipelined: the body follows the headers without waiting for their answer", func(t *testing.T) {
		// A probe that answers the request headers only once it has the body would wait for
		// message_timeout (2 s) if Envoy waited for that answer. Its headers answer carries the
		// stamp and the new content-length, which Envoy keeps (allow_content_length_header).
		newBody := []byte(`{"ssn":"SEALED-SEALED-SEALED"}`)
		p := &probe{answerFn: func(_ extprocv3.ExternalProcessor_ProcessServer, req *extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, bool) {
			switch req.GetRequest().(type) {
			case *extprocv3.ProcessingRequest_RequestHeaders:
				if !req.GetProtocolConfig().GetSendBodyWithoutWaitingForHeaderResponse() || req.GetRequestHeaders().GetEndOfStream() {
					return nil, false
				}
				return nil, true // held
			case *extprocv3.ProcessingRequest_RequestBody:
				h := emptyAnswer(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{}})
				h.DynamicMetadata = envoytest.Stamp("patients")
				h.GetRequestHeaders().Response = &extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{{
					Header: &corev3.HeaderValue{Key: "content-length", RawValue: []byte(fmt.Sprint(len(newBody)))}, Append: wrapperspb.Bool(false)}}}}
				b := &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{
					Response: &extprocv3.CommonResponse{BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: newBody}}}}}}
				return []*extprocv3.ProcessingResponse{h, b}, true
			}
			return nil, false
		}}
		s := startProbeStack(t, p, func(cfg string) string {
			return withProbeRoute(t, envoytest.WithPipelinedFilter(t, cfg), `                            envoy.filters.http.ext_proc:
                              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute
                              disabled: true
                            rkms.ext_proc.pipelined:
                              "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig
                              config:
                                "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute
                                overrides:
                                  grpc_initial_metadata: [{key: x-rkms-policy, value: patients}]
`)
		})
		start := time.Now()
		r := s.do(t, "POST", "/probe", `{"ssn":"123-45-6789"}`)
		took := time.Since(start)
		a, _ := s.lastApp()
		if r.Status != 200 || took > time.Second {
			t.Fatalf("status %d after %v: Envoy waited for the headers answer", r.Status, took)
		}
		if a.body != string(newBody) || a.chunked || a.header.Get("Content-Length") != "" && a.header.Get("Content-Length") != fmt.Sprint(len(newBody)) {
			t.Errorf("app got %q chunked=%v content-length %q; want the new body with its length", a.body, a.chunked, a.header.Get("Content-Length"))
		}
		if got := kinds(p.last()); !slices.Equal(got, []string{"request_headers", "request_body", "response_headers", "response_body"}) {
			t.Errorf("messages %v", got)
		}
	})
}

// TestEnvoyModesResponseOnly records what Envoy 1.40 sends when a route skips the request
// headers and sends only the response (extproc.RouteConfig.ResponseOnly, the 2-message
// decrypt-only GET): the response headers and body only; the verified JWT payload in every
// message's metadata_context (rkms's {jwt:CLAIM} key ids work); no attributes (no request
// message, so no request_attributes: no source.address, no peer SANs); protocol_config on the
// first message with the route's body modes, request NONE and response BUFFERED, which is how
// rkms tells this route from a local reply on a normal one; jwt_authn's own 401 reply to a
// forged token still runs through ext_proc (without the JWT payload); and the client's
// accept-encoding reaches the app unless the route removes it (the generator's route does).
func TestEnvoyModesResponseOnly(t *testing.T) {
	testenv.Integration(t)
	p := &probe{}
	s := startProbeStack(t, p, func(cfg string) string {
		return withProbeRoute(t, cfg, `                            envoy.filters.http.rbac:
                              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
                            envoy.filters.http.buffer:
                              "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute
                              buffer: {max_request_bytes: 1}
                            envoy.filters.http.ext_proc:
                              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute
                              overrides:
                                grpc_initial_metadata: [{key: x-rkms-policy, value: patients}]
                                processing_mode: {request_header_mode: SKIP, request_body_mode: NONE, response_header_mode: SEND, response_body_mode: BUFFERED, request_trailer_mode: SKIP, response_trailer_mode: SKIP}
`)
	})
	r := s.do(t, "GET", "/probe/1", "", "Accept-Encoding", "gzip, br")
	ms := p.last()
	if r.Status != 200 || !slices.Equal(kinds(ms), []string{"response_headers", "response_body"}) {
		t.Fatalf("status %d, messages %v; want 200 after response headers and body only", r.Status, kinds(ms))
	}
	for i, m := range ms {
		jwt := m.GetMetadataContext().GetFilterMetadata()["envoy.filters.http.jwt_authn"].GetFields()["jwt_payload"].GetStructValue()
		if jwt.GetFields()["tenant"].GetStringValue() != "t1" {
			t.Errorf("message %d: metadata_context %v, want the verified JWT payload", i, m.GetMetadataContext())
		}
		if len(m.GetAttributes()) != 0 {
			t.Errorf("message %d: attributes %v: request attributes now arrive without a request message", i, m.GetAttributes())
		}
	}
	pc := ms[0].GetProtocolConfig()
	if pc.GetRequestBodyMode() != extprocv3filter.ProcessingMode_NONE || pc.GetResponseBodyMode() != extprocv3filter.ProcessingMode_BUFFERED {
		t.Errorf("protocol_config %v, want request body NONE and response body BUFFERED", pc)
	}
	if a, _ := s.lastApp(); a.header.Get("Accept-Encoding") != "gzip, br" {
		t.Errorf("app got accept-encoding %q: Envoy now drops it on this route by itself", a.header.Get("Accept-Encoding"))
	}
	n := p.count()
	req := envoytest.NewRequest(t, s.base, "GET", "/probe/2", "", "Authorization", "Bearer forged.token.x")
	r = envoytest.Send(t, &http.Client{}, req)
	if r.Status != 401 || p.count() != n+1 || !slices.Equal(kinds(p.last()), []string{"response_headers", "response_body"}) {
		t.Errorf("forged token: status %d, streams %d -> %d, messages %v; want jwt_authn's 401 through ext_proc's response path", r.Status, n, p.count(), kinds(p.last()))
	}
	if md := p.last()[0].GetMetadataContext().GetFilterMetadata()["envoy.filters.http.jwt_authn"]; md != nil {
		t.Errorf("forged token: jwt_authn metadata %v", md)
	}
}
