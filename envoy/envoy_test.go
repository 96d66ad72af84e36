package envoy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	gzipv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/compression/gzip/compressor/v3"
	compressorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/compressor/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/rkms/rkms/extproc"
	testenv "github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

// parse decodes a bootstrap the way a control plane would and validates it and every Any
// inside it (envoytest.ParseBootstrap).
func parse(t *testing.T, cfg []byte) *bootstrapv3.Bootstrap {
	t.Helper()
	return envoytest.ParseBootstrap(t, cfg)
}

func unpack[T proto.Message](t *testing.T, a *anypb.Any, m T) T {
	t.Helper()
	if err := a.UnmarshalTo(m); err != nil {
		t.Fatalf("unpack %s: %v", a.GetTypeUrl(), err)
	}
	return m
}

// TestShippedConfigs checks the settings rkms relies on, in every shipped configuration.
func TestShippedConfigs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy string // the policy a route names
		// routes without the stamp check may only be health checks (exact path, GET/HEAD)
		healthOnly bool
		// jwt: bearer tokens verified before ext_proc, x-tenant-id removed (ingress: the
		// client is a user; egress: the client is the app itself, on loopback)
		jwt bool
	}{
		{"ingress.yaml", "patients", true, true},
		{"egress.yaml", "partner", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Config(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			b := parse(t, cfg)
			if a := b.GetAdmin().GetAddress().GetSocketAddress().GetAddress(); a != "127.0.0.1" {
				t.Errorf("admin on %q, want 127.0.0.1", a)
			}
			lis := b.GetStaticResources().GetListeners()
			if len(lis) != 1 {
				t.Fatalf("%d listeners, want 1", len(lis))
			}
			if got := lis[0].GetPerConnectionBufferLimitBytes().GetValue(); got != 1<<20 {
				t.Errorf("listener buffer limit %d, want 1 MiB", got)
			}
			hcm := unpack(t, lis[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig(), &hcmv3.HttpConnectionManager{})
			if !hcm.GetNormalizePath().GetValue() || !hcm.GetMergeSlashes() {
				t.Error("path normalization is off: policy prefixes could be dodged")
			}
			filters := hcm.GetHttpFilters()
			want := []string{"envoy.filters.http.buffer", "envoy.filters.http.ext_proc", "envoy.filters.http.rbac", "envoy.filters.http.router"}
			if tc.jwt {
				want = append([]string{"envoy.filters.http.header_mutation", "envoy.filters.http.jwt_authn"}, want...)
			}
			// The compressor before ext_proc: it encodes after it (envoy/README.md, "Compression").
			want = append([]string{"envoy.filters.http.compressor"}, want...)
			var names []string
			for _, f := range filters {
				names = append(names, f.GetName())
			}
			if !slices.Equal(names, want) {
				t.Fatalf("http filters %v, want %v", names, want)
			}
			ep := unpack(t, filterNamed(t, filters, extproc.MainFilterName).GetTypedConfig(), &extprocfilterv3.ExternalProcessor{})
			checkExtProc(t, ep)
			checkCompressor(t, unpack(t, filters[0].GetTypedConfig(), &compressorv3.Compressor{}))
			checkStampCheck(t, ep, unpack(t, filterNamed(t, filters, "envoy.filters.http.rbac").GetTypedConfig(), &rbacfilterv3.RBAC{}))
			checkRoutes(t, hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes(), tc.healthOnly)
			envoytest.CheckNoReroute(t, hcm)
			checkLocalReplies(t, hcm.GetLocalReplyConfig())
			checkRequestIDs(t, hcm)
			checkPeerAttributes(t, ep)
			checkLimits(t, b, hcm, ep)
			if tc.jwt {
				checkVerifiedTenants(t, filters, ep, hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes())
			}
			if c := ep.GetGrpcService().GetEnvoyGrpc().GetClusterName(); c != "rkms" {
				t.Errorf("ext_proc cluster %q, want rkms", c)
			}
			var named, disabled bool
			for _, r := range hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes() {
				named = named || routePolicy(t, r) == tc.policy
				disabled = disabled || routeDisabled(t, r)
			}
			if !named || !disabled {
				t.Errorf("routes: policy %q named %v, a route with ext_proc disabled %v", tc.policy, named, disabled)
			}
			for _, c := range b.GetStaticResources().GetClusters() {
				if c.GetName() == "rkms" && c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"] == nil {
					t.Error("rkms cluster does not speak HTTP/2")
				}
			}
		})
	}
}

func checkExtProc(t *testing.T, ep *extprocfilterv3.ExternalProcessor) {
	t.Helper()
	if ep.GetFailureModeAllow() {
		t.Error("failure_mode_allow is true: requests would pass unencrypted when rkms fails")
	}
	if !ep.GetAllowModeOverride() {
		t.Error("allow_mode_override is false")
	}
	if d := ep.GetMessageTimeout().AsDuration(); d < time.Second || d > 5*time.Second {
		t.Errorf("message_timeout %v: want 1..5 s (above rkms's 1.5 s key timeout)", d)
	}
	pm := ep.GetProcessingMode()
	want := &extprocfilterv3.ProcessingMode{
		RequestHeaderMode: extprocfilterv3.ProcessingMode_SEND, ResponseHeaderMode: extprocfilterv3.ProcessingMode_SEND,
		RequestBodyMode: extprocfilterv3.ProcessingMode_BUFFERED, ResponseBodyMode: extprocfilterv3.ProcessingMode_BUFFERED,
		RequestTrailerMode: extprocfilterv3.ProcessingMode_SKIP, ResponseTrailerMode: extprocfilterv3.ProcessingMode_SKIP,
	}
	if !proto.Equal(pm, want) {
		t.Errorf("processing_mode %v, want %v", pm, want)
	}
	if ep.GetObservabilityMode() || ep.GetSendBodyWithoutWaitingForHeaderResponse() {
		t.Error("observability mode or send_body_without_waiting_for_header_response would disable enforcement or mode_override")
	}
}

// checkCompressor: responses only (a compressed request would reach rkms as compressed bytes
// for nothing), gzip, JSON content types.
func checkCompressor(t *testing.T, c *compressorv3.Compressor) {
	t.Helper()
	if c.GetRequestDirectionConfig() != nil {
		t.Error("the compressor compresses requests")
	}
	if c.GetResponseDirectionConfig().GetRemoveAcceptEncodingHeader() {
		t.Error("remove_accept_encoding_header: the app would lose accept-encoding on every route")
	}
	if got := c.GetCompressorLibrary().GetTypedConfig().GetTypeUrl(); got != "type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip" {
		t.Errorf("compressor library %s, want gzip", got)
	}
	unpack(t, c.GetCompressorLibrary().GetTypedConfig(), &gzipv3.Gzip{})
	common := c.GetResponseDirectionConfig().GetCommonConfig()
	if len(common.GetContentType()) > 0 {
		t.Error("content_type is deprecated (Envoy 1.40 warns): use content_type_matcher")
	}
	var prefixes []string
	for _, m := range common.GetContentTypeMatcher() {
		prefixes = append(prefixes, m.GetPrefix())
	}
	for _, want := range []string{"application/json", "application/x-ndjson"} {
		if !slices.Contains(prefixes, want) {
			t.Errorf("compressed content type prefixes %v lack %s", prefixes, want)
		}
	}
	// Small replies (refusals) are not worth compressing: under a flood they cost the good
	// clients' latency (RELIABILITY.md, abuse runs).
	if got := common.GetMinContentLength().GetValue(); got < 1024 {
		t.Errorf("min_content_length %d, want at least 1024", got)
	}
}

// TestPipelinedFilterConfig checks envoytest.PipelinedFilter, the pipelined ext_proc filter that
// rkms supports and the shipped configurations do not include (README.md, "Fewest round
// trips"), added to ingress.yaml as the tests that use it add it.
func TestPipelinedFilterConfig(t *testing.T) {
	cfg, err := Config("ingress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b := parse(t, []byte(envoytest.WithPipelinedFilter(t, string(cfg))))
	hcm := unpack(t, b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig(), &hcmv3.HttpConnectionManager{})
	filters := hcm.GetHttpFilters()
	main := unpack(t, filterNamed(t, filters, extproc.MainFilterName).GetTypedConfig(), &extprocfilterv3.ExternalProcessor{})
	checkPipelined(t, main, filterNamed(t, filters, extproc.PipelinedFilterName))
	i := slices.IndexFunc(filters, func(f *hcmv3.HttpFilter) bool { return f.GetName() == extproc.PipelinedFilterName })
	if filters[i-1].GetName() != extproc.MainFilterName || filters[i+1].GetName() != "envoy.filters.http.rbac" {
		t.Error("the pipelined filter must sit between the main ext_proc filter and the stamp check")
	}
}

// checkPipelined: the pipelined ext_proc filter is off unless a route enables it, fails closed
// like the main one, sends the body without waiting, keeps content-length (rkms sets it in the
// headers answer), and gets the same metadata and attributes as the main filter.
func checkPipelined(t *testing.T, main *extprocfilterv3.ExternalProcessor, f *hcmv3.HttpFilter) {
	t.Helper()
	if !f.GetDisabled() {
		t.Error("the pipelined ext_proc filter is on by default: routes must enable it")
	}
	ep := unpack(t, f.GetTypedConfig(), &extprocfilterv3.ExternalProcessor{})
	switch {
	case ep.GetFailureModeAllow():
		t.Error("pipelined: failure_mode_allow is true")
	case !ep.GetSendBodyWithoutWaitingForHeaderResponse() || !ep.GetAllowContentLengthHeader():
		t.Error("pipelined: want send_body_without_waiting_for_header_response and allow_content_length_header")
	case ep.GetProcessingMode().GetRequestBodyMode() != extprocfilterv3.ProcessingMode_STREAMED:
		t.Error("pipelined: request_body_mode must be STREAMED (Envoy pipelines only that mode)")
	case !proto.Equal(ep.GetMetadataOptions(), main.GetMetadataOptions()) || !slices.Equal(ep.GetRequestAttributes(), main.GetRequestAttributes()):
		t.Error("pipelined: metadata_options and request_attributes must be the main filter's")
	case !proto.Equal(ep.GetGrpcService(), main.GetGrpcService()) || !proto.Equal(ep.GetMessageTimeout(), main.GetMessageTimeout()) || !proto.Equal(ep.GetStatusOnError(), main.GetStatusOnError()):
		t.Error("pipelined: grpc_service, message_timeout and status_on_error must be the main filter's")
	}
}

// perRoute returns the ExtProcPerRoute of the ext_proc filter that serves r: the pipelined
// filter's when the route enables it, else the main filter's (nil when r sets none).
func perRoute(t *testing.T, r *routev3.Route) *extprocfilterv3.ExtProcPerRoute {
	t.Helper()
	if a := r.GetTypedPerFilterConfig()[extproc.PipelinedFilterName]; a != nil {
		fc := unpack(t, a, &routev3.FilterConfig{})
		if !fc.GetDisabled() {
			return unpack(t, fc.GetConfig(), &extprocfilterv3.ExtProcPerRoute{})
		}
	}
	return perRouteMain(t, r)
}

// perRouteMain returns the main ext_proc filter's ExtProcPerRoute of r (nil when r sets none;
// one with disabled set when the route leaves the filter out of its chain).
func perRouteMain(t *testing.T, r *routev3.Route) *extprocfilterv3.ExtProcPerRoute {
	t.Helper()
	pr := &extprocfilterv3.ExtProcPerRoute{}
	off, set := envoytest.PerRoute(t, r.GetTypedPerFilterConfig()["envoy.filters.http.ext_proc"], pr)
	switch {
	case off:
		return &extprocfilterv3.ExtProcPerRoute{Override: &extprocfilterv3.ExtProcPerRoute_Disabled{Disabled: true}}
	case !set:
		return nil
	}
	return pr
}

func routePolicy(t *testing.T, r *routev3.Route) string {
	for _, md := range perRoute(t, r).GetOverrides().GetGrpcInitialMetadata() {
		if md.GetKey() == "x-rkms-policy" {
			return md.GetValue()
		}
	}
	return ""
}

func routeDisabled(t *testing.T, r *routev3.Route) bool { return perRoute(t, r).GetDisabled() }

// TestEnvoyValidates runs the real Envoy's validation on every shipped and rendered config, and
// checks that the validation does catch a broken one. The shipped files read their JWKS from
// /etc/envoy/jwks.json, which this machine does not have: "shipped" renders only that path.
func TestEnvoyValidates(t *testing.T) {
	testenv.Integration(t)
	ports := map[string]int{"admin": 19901, "listener": 20000, "rkms": 20051}
	jwks := map[string]string{"jwks": envoytest.JWKSFile(t)}
	for _, name := range Names() {
		cfg, err := Config(name)
		if err != nil {
			t.Fatal(err)
		}
		rendered, err := Render(cfg, ports)
		if err != nil {
			t.Fatal(err)
		}
		if name == "ingress.yaml" {
			if cfg, err = RenderFiles(cfg, jwks); err == nil {
				rendered, err = RenderFiles(rendered, jwks)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		for variant, c := range map[string][]byte{"shipped": cfg, "rendered": rendered} {
			t.Run(name+"/"+variant, func(t *testing.T) {
				if out, err := testenv.Validate(t, string(c)); err != nil {
					t.Fatalf("envoy --mode validate: %v\n%s", err, out)
				}
			})
		}
	}
	t.Run("broken config is refused", func(t *testing.T) {
		cfg, _ := Config("ingress.yaml")
		cfg, _ = RenderFiles(cfg, jwks)
		broken := strings.Replace(string(cfg), "failure_mode_allow: false", "failure_mode_allow: nope", 1)
		if out, err := testenv.Validate(t, broken); err == nil {
			t.Fatalf("envoy accepted a broken config:\n%s", out)
		}
	})
	// Without a usable JWKS, Envoy does not start (rather than start and refuse every token).
	t.Run("missing jwks is refused", func(t *testing.T) {
		cfg, _ := Config("ingress.yaml")
		cfg, _ = RenderFiles(cfg, map[string]string{"jwks": "/nonexistent/rkms-test/jwks.json"})
		if out, err := testenv.Validate(t, string(cfg)); err == nil || !strings.Contains(out, "Invalid path: /nonexistent/rkms-test/jwks.json") {
			t.Fatalf("envoy --mode validate without the JWKS file: %v\n%s", err, out)
		}
	})
	t.Run("invalid jwks is refused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "jwks.json")
		if err := os.WriteFile(path, []byte(`{"keys": [`), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, _ := Config("ingress.yaml")
		cfg, _ = RenderFiles(cfg, map[string]string{"jwks": path})
		if out, err := testenv.Validate(t, string(cfg)); err == nil || !strings.Contains(out, "invalid local jwks") {
			t.Fatalf("envoy --mode validate with a broken JWKS: %v\n%s", err, out)
		}
	})
}

func TestRender(t *testing.T) {
	cfg, err := Config("ingress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		ports   map[string]int
		want    []string // substrings of the output
		wantErr string
	}{
		{name: "all ports", ports: map[string]int{"admin": 1, "listener": 2, "app": 3, "rkms": 4},
			want: []string{"port_value: 1} # port:admin", "port_value: 2} # port:listener", "port_value: 3} # port:app", "port_value: 4} # port:rkms"}},
		{name: "defaults kept", ports: map[string]int{"app": 18080},
			want: []string{"port_value: 9901} # port:admin", "port_value: 18080} # port:app"}},
		{name: "unknown name", ports: map[string]int{"nope": 1}, wantErr: "port:nope"},
		{name: "out of range", ports: map[string]int{"app": 70000}, wantErr: "out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Render(cfg, tc.ports)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q", w)
				}
			}
			parse(t, out)
		})
	}
	if _, err := Render([]byte("x: 1 # port:app\n"), map[string]int{"app": 1}); err == nil {
		t.Error("a marked line without port_value was accepted")
	}
}

func TestRenderFiles(t *testing.T) {
	cfg, err := Config("ingress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		files   map[string]string
		want    string // a substring of the output
		wantErr string
	}{
		{name: "jwks", files: map[string]string{"jwks": "/tmp/x/jwks.json"}, want: `filename: "/tmp/x/jwks.json" # file:jwks`},
		{name: "quoted", files: map[string]string{"jwks": `/tmp/a b/"q".json`}, want: `filename: "/tmp/a b/\"q\".json" # file:jwks`},
		{name: "default kept", files: map[string]string{}, want: "filename: /etc/envoy/jwks.json # file:jwks"},
		{name: "unknown name", files: map[string]string{"nope": "/x"}, wantErr: "file:nope"},
		{name: "relative path", files: map[string]string{"jwks": "jwks.json"}, wantErr: "not an absolute path"},
		{name: "newline", files: map[string]string{"jwks": "/a\nb"}, wantErr: "not an absolute path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := RenderFiles(cfg, tc.files)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output lacks %q", tc.want)
			}
			parse(t, out)
		})
	}
	// Flow style, as in README.md's blocks, and a line the marker names without a filename.
	out, err := RenderFiles([]byte("a: {filename: /etc/x.pem} # file:cert\nb: {filename: \"/etc/y z.pem\"} # file:key\n"),
		map[string]string{"cert": "/tmp/c.pem", "key": "/tmp/k.pem"})
	if err != nil || string(out) != "a: {filename: \"/tmp/c.pem\"} # file:cert\nb: {filename: \"/tmp/k.pem\"} # file:key\n" {
		t.Errorf("flow style: %q %v", out, err)
	}
	if _, err := RenderFiles([]byte("x: 1 # file:cert\n"), map[string]string{"cert": "/x"}); err == nil {
		t.Error("a marked line without filename was accepted")
	}
}
