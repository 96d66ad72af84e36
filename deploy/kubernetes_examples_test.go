package deploy

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/compression/gzip/compressor/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/buffer/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/compressor/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/rkms/rkms/envoy"
	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/internal/config"
	"github.com/rkms/rkms/internal/testing/env"
)

// exampleDocs reads the YAML documents of examples/kubernetes/REL, each as a generic object.
func exampleDocs(t *testing.T, rel string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for i, doc := range splitYAML([]byte(readRepoFile(t, filepath.Join("examples", "kubernetes", rel)))) {
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			t.Fatalf("%s document %d: %v", rel, i, err)
		}
		if obj != nil {
			out = append(out, obj)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no documents", rel)
	}
	return out
}

// builtin decodes the documents of Kubernetes' own kinds strictly into their k8s.io/api types
// and reports whether doc was one.
func builtin(t *testing.T, doc map[string]any) bool {
	t.Helper()
	if doc["apiVersion"] != "networking.k8s.io/v1" || doc["kind"] != "NetworkPolicy" {
		return false
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := strict(b, &networkingv1.NetworkPolicy{}); err != nil {
		t.Errorf("NetworkPolicy does not decode strictly: %v", err)
	}
	return true
}

// find returns the documents of kind.
func find(docs []map[string]any, kind string) []map[string]any {
	var out []map[string]any
	for _, d := range docs {
		if d["kind"] == kind {
			out = append(out, d)
		}
	}
	return out
}

// at follows a path of map keys and list indexes ("spec.extProc.0.messageTimeout").
func at(v any, path string) any {
	for _, p := range strings.Split(path, ".") {
		switch c := v.(type) {
		case map[string]any:
			v = c[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i >= len(c) {
				return nil
			}
			v = c[i]
		default:
			return nil
		}
	}
	return v
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

var (
	envoyGatewayFiles = []string{"envoy-gateway/gateway.yaml", "envoy-gateway/extproc.yaml", "envoy-gateway/security.yaml"}
	istioFiles        = []string{"istio/envoyfilter.yaml", "istio/mesh.yaml"}
)

// TestEnvoyGatewayExampleSchemas: every manifest of examples/kubernetes/envoy-gateway matches
// the CRDs of the Envoy Gateway release it names (strictly: unknown fields fail), and the
// ext_proc settings are envoy/ingress.yaml's.
func TestEnvoyGatewayExampleSchemas(t *testing.T) {
	crds := loadCRDs(t, envoyGatewayModule)
	var all []map[string]any
	for _, f := range envoyGatewayFiles {
		for _, doc := range exampleDocs(t, f) {
			all = append(all, doc)
			if builtin(t, doc) {
				continue
			}
			if err := crds.validate(doc); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
	}
	kinds := map[string]int{}
	for _, d := range all {
		kinds[d["kind"].(string)]++
	}
	for _, k := range []string{"GatewayClass", "EnvoyProxy", "Gateway", "HTTPRoute", "ClientTrafficPolicy", "BackendTrafficPolicy", "EnvoyExtensionPolicy", "BackendTLSPolicy", "SecurityPolicy", "NetworkPolicy"} {
		if kinds[k] != 1 {
			t.Errorf("%d %s manifests, want 1", kinds[k], k)
		}
	}

	eep := find(all, "EnvoyExtensionPolicy")[0]
	for path, want := range map[string]string{
		"spec.targetRefs.0.kind":                            `"Gateway"`,
		"spec.extProc.0.backendRefs":                        `[{"group":"","kind":"Service","name":"rkms","port":50051}]`,
		"spec.extProc.0.processingMode.request.body":        `"Buffered"`,
		"spec.extProc.0.processingMode.response.body":       `"Buffered"`,
		"spec.extProc.0.processingMode.allowModeOverride":   `true`,
		"spec.extProc.0.processingMode.request.attributes":  `["connection.uri_san_peer_certificate","connection.dns_san_peer_certificate","source.address"]`,
		"spec.extProc.0.messageTimeout":                     `"2s"`,
		"spec.extProc.0.failOpen":                           `false`,
		"spec.extProc.0.statusOnError":                      `503`,
		"spec.extProc.0.metadata.accessibleNamespaces":      jsonString([]string{extproc.JWTNamespace}),
		"spec.extProc.0.metadata.writableNamespaces":        `["rkms"]`,
		"spec.extProc.0.backendSettings.circuitBreaker":     `{"maxConnections":16,"maxParallelRequests":1024,"maxPendingRequests":256}`,
		"spec.extProc.0.processingMode.request.unknownPath": `null`,
	} {
		if got := jsonString(at(eep, path)); got != want {
			t.Errorf("EnvoyExtensionPolicy %s = %s, want %s", path, got, want)
		}
	}
	// Envoy Gateway stores the verified JWT payload under the provider's name
	// (payload_in_metadata): it must be the key rkms reads.
	sp := find(all, "SecurityPolicy")[0]
	if got := at(sp, "spec.jwt.providers.0.name"); got != extproc.JWTPayloadKey {
		t.Errorf("JWT provider name %v: rkms reads the payload under %q", got, extproc.JWTPayloadKey)
	}
	if got := jsonString(at(sp, "spec.jwt.providers.0.claimToHeaders")); got != `[{"claim":"tenant","header":"x-tenant-id"}]` {
		t.Errorf("claimToHeaders %s", got)
	}
	ctp := find(all, "ClientTrafficPolicy")[0]
	if got := jsonString(at(ctp, "spec.headers.earlyRequestHeaders.remove")); got != `["x-tenant-id"]` {
		t.Errorf("client x-tenant-id not removed early: %s", got)
	}
}

// TestIstioExampleSchemas: the Istio manifests match the CRDs of the istio.io/api release named
// above, strictly.
func TestIstioExampleSchemas(t *testing.T) {
	crds := loadCRDs(t, istioModule)
	for _, f := range istioFiles {
		for _, doc := range exampleDocs(t, f) {
			if err := crds.validate(doc); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
	}
}

// TestExampleSchemasRefuseMistakes proves the schema checks above can fail: each case changes
// one field of a valid manifest, and the validator must refuse it.
func TestExampleSchemasRefuseMistakes(t *testing.T) {
	for _, tc := range []struct {
		file, kind string
		path       string // parent of the field, "" for the top level
		from, to   string // rename the key from -> to; to == "" sets from's value to value
		value      any
	}{
		{"envoy-gateway/extproc.yaml", "EnvoyExtensionPolicy", "spec.extProc.0", "messageTimeout", "messageTimout", nil},
		{"envoy-gateway/extproc.yaml", "EnvoyExtensionPolicy", "spec.extProc.0.processingMode.request", "body", "bdy", nil},
		{"envoy-gateway/extproc.yaml", "EnvoyExtensionPolicy", "spec.extProc.0.processingMode.request", "body", "", "Buffer"},
		{"envoy-gateway/extproc.yaml", "EnvoyExtensionPolicy", "spec.extProc.0", "statusOnError", "", 299},
		{"envoy-gateway/extproc.yaml", "EnvoyExtensionPolicy", "spec.extProc.0", "messageTimeout", "", "2 seconds"},
		{"envoy-gateway/extproc.yaml", "BackendTLSPolicy", "spec.validation", "hostname", "hostName", nil},
		{"envoy-gateway/security.yaml", "SecurityPolicy", "spec.jwt.providers.0", "claimToHeaders", "claimsToHeaders", nil},
		{"envoy-gateway/gateway.yaml", "ClientTrafficPolicy", "spec.headers", "earlyRequestHeaders", "earlyRequestHeader", nil},
		{"envoy-gateway/gateway.yaml", "HTTPRoute", "spec.rules.0", "backendRefs", "backendRef", nil},
		{"envoy-gateway/gateway.yaml", "Gateway", "metadata", "namespace", "namespce", nil},
		{"envoy-gateway/gateway.yaml", "Gateway", "", "spec", "sepc", nil},
		{"istio/envoyfilter.yaml", "EnvoyFilter", "spec.configPatches.0.patch", "operation", "opertion", nil},
		{"istio/envoyfilter.yaml", "EnvoyFilter", "spec.configPatches.0", "applyTo", "", "HTTP_FILTERS"},
		{"istio/envoyfilter.yaml", "EnvoyFilter", "spec.workloadSelector", "labels", "label", nil},
		{"istio/mesh.yaml", "DestinationRule", "spec.trafficPolicy.connectionPool.tcp", "maxConnections", "maxConnection", nil},
		{"istio/mesh.yaml", "AuthorizationPolicy", "spec", "action", "", "PERMIT"},
	} {
		name := fmt.Sprintf("%s %s.%s->%s%v", tc.kind, tc.path, tc.from, tc.to, tc.value)
		t.Run(name, func(t *testing.T) {
			m := envoyGatewayModule
			if strings.HasPrefix(tc.file, "istio/") {
				m = istioModule
			}
			crds := loadCRDs(t, m)
			docs := find(exampleDocs(t, tc.file), tc.kind)
			if len(docs) != 1 {
				t.Fatalf("%d %s in %s", len(docs), tc.kind, tc.file)
			}
			doc := docs[0]
			if err := crds.validate(doc); err != nil {
				t.Fatalf("the unchanged manifest fails: %v", err)
			}
			parent := any(doc)
			if tc.path != "" {
				parent = at(doc, tc.path)
			}
			obj, ok := parent.(map[string]any)
			if !ok || obj[tc.from] == nil {
				t.Fatalf("%s has no %s", tc.path, tc.from)
			}
			if tc.to != "" {
				obj[tc.to] = obj[tc.from]
				delete(obj, tc.from)
			} else {
				obj[tc.from] = tc.value
			}
			err := crds.validate(doc)
			if err == nil {
				t.Fatal("the changed manifest passes")
			}
			t.Logf("refused: %.300s", err)
		})
	}
}

// envoyFilterPatches returns the HTTP filters that examples/kubernetes/istio/envoyfilter.yaml
// inserts, decoded as a control plane would (protojson: unknown fields fail) and validated
// (protoc-gen-validate rules, and every Any inside).
func envoyFilterPatches(t *testing.T, docs []map[string]any) []*hcmv3.HttpFilter {
	t.Helper()
	efs := find(docs, "EnvoyFilter")
	if len(efs) != 1 {
		t.Fatalf("%d EnvoyFilters", len(efs))
	}
	patches, _ := at(efs[0], "spec.configPatches").([]any)
	var out []*hcmv3.HttpFilter
	for i, p := range patches {
		if at(p, "applyTo") != "HTTP_FILTER" || at(p, "patch.operation") != "INSERT_BEFORE" {
			t.Fatalf("patch %d: %v %v, want HTTP_FILTER INSERT_BEFORE", i, at(p, "applyTo"), at(p, "patch.operation"))
		}
		if got := jsonString(at(p, "match")); got != `{"context":"SIDECAR_INBOUND","listener":{"filterChain":{"filter":{"name":"envoy.filters.network.http_connection_manager","subFilter":{"name":"envoy.filters.http.router"}}},"portNumber":8000}}` {
			t.Errorf("patch %d matches %s", i, got)
		}
		f, err := decodeHTTPFilter(jsonString(at(p, "patch.value")))
		if err != nil {
			t.Fatalf("patch %d: %v", i, err)
		}
		out = append(out, f)
	}
	return out
}

// decodeHTTPFilter decodes one HttpFilter from JSON and validates it with everything it holds.
func decodeHTTPFilter(js string) (*hcmv3.HttpFilter, error) {
	var f hcmv3.HttpFilter
	if err := protojson.Unmarshal([]byte(js), &f); err != nil {
		return nil, fmt.Errorf("protojson: %w", err)
	}
	if err := f.ValidateAll(); err != nil {
		return nil, err
	}
	return &f, validateAnys(f.ProtoReflect())
}

// validateAnys unpacks every Any inside m and validates it (ValidateAll does not open them).
func validateAnys(m protoreflect.Message) error {
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			return fmt.Errorf("unpack %s: %w", a.GetTypeUrl(), err)
		}
		if v, ok := inner.(interface{ ValidateAll() error }); ok {
			if err := v.ValidateAll(); err != nil {
				return fmt.Errorf("%s: %w", a.GetTypeUrl(), err)
			}
		}
		return validateAnys(inner.ProtoReflect())
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len() && err == nil; i++ {
				err = validateAnys(v.List().Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				err = validateAnys(mv.Message())
				return err == nil
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			err = validateAnys(v.Message())
		}
		return err == nil
	})
	return err
}

// ingressFilters returns envoy/ingress.yaml's HTTP filters, by type URL.
func ingressFilters(t *testing.T) map[string]proto.Message {
	t.Helper()
	cfg, err := envoy.Config("ingress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &b); err != nil {
		t.Fatalf("ingress.yaml: %v", err)
	}
	var hcm hcmv3.HttpConnectionManager
	if err := b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	out := map[string]proto.Message{}
	for _, f := range hcm.GetHttpFilters() {
		m, err := f.GetTypedConfig().UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		out[f.GetTypedConfig().GetTypeUrl()] = m
	}
	return out
}

// TestIstioEnvoyFilterIsIngress: the filters the EnvoyFilter inserts are envoy/ingress.yaml's,
// in its order, with the same settings (ext_proc's only difference is the cluster it calls;
// jwt_authn's are the JWKS source and the per-route requirement, which Istio's inbound routes
// cannot name), and the payload key is the one rkms reads.
func TestIstioEnvoyFilterIsIngress(t *testing.T) {
	filters := envoyFilterPatches(t, exampleDocs(t, "istio/envoyfilter.yaml"))
	ingress := ingressFilters(t)
	var urls []string
	for _, f := range filters {
		url := f.GetTypedConfig().GetTypeUrl()
		urls = append(urls, strings.TrimPrefix(url, "type.googleapis.com/envoy.extensions.filters.http."))
		got, err := f.GetTypedConfig().UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		want, ok := ingress[url]
		if !ok {
			t.Errorf("%s is not in envoy/ingress.yaml", url)
			continue
		}
		switch g := got.(type) {
		case *extprocv3.ExternalProcessor:
			w := proto.Clone(want).(*extprocv3.ExternalProcessor)
			if c := g.GetGrpcService().GetEnvoyGrpc().GetClusterName(); c != "outbound|50051||rkms.demo.svc.cluster.local" {
				t.Errorf("ext_proc calls %q, want Istio's outbound cluster of the rkms Service", c)
			}
			g = proto.Clone(g).(*extprocv3.ExternalProcessor)
			g.GrpcService, w.GrpcService = nil, nil
			got, want = g, w
		case *jwtv3.JwtAuthentication:
			p := g.GetProviders()["tenants"]
			if p.GetPayloadInMetadata() != extproc.JWTPayloadKey {
				t.Errorf("jwt_authn payload_in_metadata %q: rkms reads %q", p.GetPayloadInMetadata(), extproc.JWTPayloadKey)
			}
			wp := want.(*jwtv3.JwtAuthentication).GetProviders()["tenants"]
			p, wp = proto.Clone(p).(*jwtv3.JwtProvider), proto.Clone(wp).(*jwtv3.JwtProvider)
			p.JwksSourceSpecifier, wp.JwksSourceSpecifier = nil, nil
			got, want = p, wp
		}
		if !proto.Equal(got, want) {
			t.Errorf("%s differs from envoy/ingress.yaml's:\n got %v\nwant %v", url, got, want)
		}
	}
	if want := []string{"header_mutation.v3.HeaderMutation", "jwt_authn.v3.JwtAuthentication", "buffer.v3.Buffer", "ext_proc.v3.ExternalProcessor", "rbac.v3.RBAC"}; !slices.Equal(urls, want) {
		t.Errorf("inserted filters %v, want %v (envoy/ingress.yaml's order)", urls, want)
	}
}

// TestIstioEnvoyFilterConfigRefusesMistakes: the CRD admits anything inside patch.value
// (x-kubernetes-preserve-unknown-fields), so a misspelled Envoy field is caught by the proto
// decoding above, not by the schema.
func TestIstioEnvoyFilterConfigRefusesMistakes(t *testing.T) {
	docs := exampleDocs(t, "istio/envoyfilter.yaml")
	envoyFilterPatches(t, docs) // the unchanged filters pass
	patches := at(docs[0], "spec.configPatches").([]any)
	for _, tc := range []struct {
		patch          int // 2 buffer, 3 ext_proc
		path, from, to string
	}{
		{3, "patch.value.typed_config", "message_timeout", "message_timout"},
		{3, "patch.value.typed_config.processing_mode", "request_body_mode", "request_body"},
		{2, "patch.value.typed_config", "max_request_bytes", "max_request_byte"},
	} {
		t.Run(tc.from+"->"+tc.to, func(t *testing.T) {
			var p map[string]any
			if err := json.Unmarshal([]byte(jsonString(patches[tc.patch])), &p); err != nil {
				t.Fatal(err)
			}
			obj := at(p, tc.path).(map[string]any)
			obj[tc.to] = obj[tc.from]
			delete(obj, tc.from)
			if _, err := decodeHTTPFilter(jsonString(at(p, "patch.value"))); err == nil {
				t.Fatal("the changed filter decodes")
			} else {
				t.Logf("refused: %v", err)
			}
		})
	}
}

// TestIstioEnvoyFilterEnvoyValidates: the inserted filters, in a listener as Istio builds it
// (they, then the router) with a cluster of the name ext_proc calls, pass `envoy --mode
// validate` of the pinned Envoy.
func TestIstioEnvoyFilterEnvoyValidates(t *testing.T) {
	testenv.Integration(t)
	var httpFilters []any
	for _, p := range at(exampleDocs(t, "istio/envoyfilter.yaml")[0], "spec.configPatches").([]any) {
		httpFilters = append(httpFilters, at(p, "patch.value"))
	}
	httpFilters = append(httpFilters, map[string]any{"name": "envoy.filters.http.router", "typed_config": map[string]any{
		"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
	cluster := func(name string, port int, h2 bool) map[string]any {
		c := map[string]any{
			"name": name, "type": "STATIC", "connect_timeout": "1s",
			"load_assignment": map[string]any{"cluster_name": name, "endpoints": []any{map[string]any{"lb_endpoints": []any{
				map[string]any{"endpoint": map[string]any{"address": map[string]any{"socket_address": map[string]any{"address": "127.0.0.1", "port_value": port}}}}}}}},
		}
		if h2 {
			c["typed_extension_protocol_options"] = map[string]any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": map[string]any{
				"@type":                "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
				"explicit_http_config": map[string]any{"http2_protocol_options": map[string]any{}}}}
		}
		return c
	}
	boot := map[string]any{
		"static_resources": map[string]any{
			"listeners": []any{map[string]any{
				"name":    "virtualInbound",
				"address": map[string]any{"socket_address": map[string]any{"address": "127.0.0.1", "port_value": 15006}},
				"filter_chains": []any{map[string]any{"filters": []any{map[string]any{
					"name": "envoy.filters.network.http_connection_manager",
					"typed_config": map[string]any{
						"@type":       "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
						"stat_prefix": "inbound_0.0.0.0_8000",
						"route_config": map[string]any{"name": "inbound|8000||", "virtual_hosts": []any{map[string]any{
							"name": "inbound|http|8000", "domains": []any{"*"},
							"routes": []any{map[string]any{"match": map[string]any{"prefix": "/"}, "route": map[string]any{"cluster": "inbound|8000||"}}},
						}}},
						"http_filters": httpFilters,
					},
				}}}},
			}},
			"clusters": []any{cluster("inbound|8000||", 8000, false), cluster("outbound|50051||rkms.demo.svc.cluster.local", 50051, true)},
		},
	}
	b, err := yaml.Marshal(boot)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := testenv.Validate(t, string(b)); err != nil {
		t.Fatalf("envoy --mode validate: %v\n%s\n%s", err, out, b)
	}
}

// exampleChart renders deploy/helm/rkms as the examples install it (release "rkms", namespace
// "demo") with the CI values and examples/kubernetes/VALUES.
func exampleChart(t *testing.T, values string) *rendered {
	t.Helper()
	return renderAs(t, "rkms", "demo", "-f", filepath.Join(chartDir(t), "ci", "test-values.yaml"),
		"-f", filepath.Join(testenv.RepoRoot(t), "examples", "kubernetes", values))
}

// extprocPort returns the Service's ext_proc port (name and number).
func extprocPort(t *testing.T, r *rendered) (string, int32) {
	t.Helper()
	for _, p := range r.service.Spec.Ports {
		if p.TargetPort.String() == "extproc" {
			return p.Name, p.Port
		}
	}
	t.Fatalf("Service %s has no ext_proc port: %v", r.service.Name, r.service.Spec.Ports)
	return "", 0
}

// extprocPeers returns the NetworkPolicy's peers for the ext_proc port, as JSON.
func extprocPeers(t *testing.T, r *rendered) string {
	t.Helper()
	for _, in := range r.netpol.Spec.Ingress {
		if len(in.Ports) == 1 && in.Ports[0].Port.String() == "extproc" {
			return jsonString(in.From)
		}
	}
	t.Fatalf("no NetworkPolicy rule for ext_proc")
	return ""
}

// peers returns generic NetworkPolicy peers as extprocPeers does (through the typed form).
func peers(t *testing.T, v any) string {
	t.Helper()
	var p []networkingv1.NetworkPolicyPeer
	if err := json.Unmarshal([]byte(jsonString(v)), &p); err != nil {
		t.Fatal(err)
	}
	return jsonString(p)
}

// TestEnvoyGatewayExampleChart: the chart with envoy-gateway/rkms-values.yaml makes what the
// Envoy Gateway manifests name: the Service and port the EnvoyExtensionPolicy and the
// BackendTLSPolicy call, the client certificate the EnvoyProxy presents, a server certificate
// valid for the BackendTLSPolicy's hostname under the CA it names, ext_proc admitted from
// Envoy Gateway's proxies (the same peers the app's NetworkPolicy admits), and a configuration
// rkms accepts.
func TestEnvoyGatewayExampleChart(t *testing.T) {
	testenv.Integration(t)
	r := exampleChart(t, "envoy-gateway/rkms-values.yaml")
	var docs []map[string]any
	for _, f := range envoyGatewayFiles {
		docs = append(docs, exampleDocs(t, f)...)
	}
	eep, btp, ep := find(docs, "EnvoyExtensionPolicy")[0], find(docs, "BackendTLSPolicy")[0], find(docs, "EnvoyProxy")[0]

	name, port := extprocPort(t, r)
	if r.service.Name != at(eep, "spec.extProc.0.backendRefs.0.name") || float64(port) != at(eep, "spec.extProc.0.backendRefs.0.port") {
		t.Errorf("EnvoyExtensionPolicy calls %v:%v, the chart's Service is %s:%d", at(eep, "spec.extProc.0.backendRefs.0.name"), at(eep, "spec.extProc.0.backendRefs.0.port"), r.service.Name, port)
	}
	if r.service.Name != at(btp, "spec.targetRefs.0.name") || name != at(btp, "spec.targetRefs.0.sectionName") {
		t.Errorf("BackendTLSPolicy targets %v/%v, the ext_proc port is %s/%s", at(btp, "spec.targetRefs.0.name"), at(btp, "spec.targetRefs.0.sectionName"), r.service.Name, name)
	}
	client := r.secrets[fmt.Sprint(at(ep, "spec.backendTLS.clientCertificateRef.name"))]
	caSecret := r.secrets[fmt.Sprint(at(btp, "spec.validation.caCertificateRefs.0.name"))]
	if client == nil || caSecret == nil {
		t.Fatalf("the chart has no Secret %v or %v: %v", at(ep, "spec.backendTLS.clientCertificateRef.name"), at(btp, "spec.validation.caCertificateRefs.0.name"), slices.Collect(maps.Keys(r.secrets)))
	}
	keyPair(t, client) // a kubernetes.io/tls Secret with a usable key pair
	server, _ := keyPair(t, r.secrets["rkms-extproc-tls"])
	_, pool := keyPair(t, caSecret)
	leaf, err := x509.ParseCertificate(server.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: fmt.Sprint(at(btp, "spec.validation.hostname")), Roots: pool}); err != nil {
		t.Errorf("rkms's certificate fails the BackendTLSPolicy's check: %v", err)
	}

	if got, want := extprocPeers(t, r), peers(t, at(find(docs, "NetworkPolicy")[0], "spec.ingress.0.from")); got != want {
		t.Errorf("rkms admits ext_proc from %s; the app admits %s: both must be Envoy Gateway's proxies", got, want)
	}

	dir := t.TempDir()
	for name, b := range r.secrets["rkms-extproc-tls"].Data {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Parse([]byte(strings.ReplaceAll(r.configMaps["rkms"].Data["rkms.yaml"], "/etc/rkms/extproc-tls/", dir+"/")))
	if err != nil {
		t.Fatalf("rendered rkms.yaml: %v", err)
	}
	if cfg.ExtProc.TLS.ClientCAFile == "" || cfg.ExtProc.Insecure || !cfg.ExtProc.TrustRequestID {
		t.Errorf("ext_proc: tls %+v, insecure %v, trust_request_id %v: want mutual TLS and Envoy Gateway's request ids trusted", cfg.ExtProc.TLS, cfg.ExtProc.Insecure, cfg.ExtProc.TrustRequestID)
	}
}

// TestIstioExampleChart: the chart with istio/rkms-values.yaml serves ext_proc on the port the
// EnvoyFilter's cluster names (a grpc- port, so Istio speaks HTTP/2 to it), its pods carry the
// label mesh.yaml's policies select, ext_proc is admitted from the EnvoyFilter's workloads only,
// and rkms accepts the configuration (no TLS of its own: Istio's).
func TestIstioExampleChart(t *testing.T) {
	testenv.Integration(t)
	r := exampleChart(t, "istio/rkms-values.yaml")
	var docs []map[string]any
	for _, f := range istioFiles {
		docs = append(docs, exampleDocs(t, f)...)
	}
	name, port := extprocPort(t, r)
	if want := fmt.Sprintf("outbound|%d||%s.demo.svc.cluster.local", port, r.service.Name); !strings.Contains(jsonString(find(docs, "EnvoyFilter")[0]), want) {
		t.Errorf("the EnvoyFilter does not call %s", want)
	}
	if !strings.HasPrefix(name, "grpc-") {
		t.Errorf("ext_proc port %q: Istio infers HTTP/2 only from a grpc- name (or appProtocol)", name)
	}
	for _, kind := range []string{"PeerAuthentication", "AuthorizationPolicy"} {
		for k, v := range at(find(docs, kind)[0], "spec.selector.matchLabels").(map[string]any) {
			if r.deployment.Spec.Template.Labels[k] != v {
				t.Errorf("%s selects %s=%v; the rkms pods have %q", kind, k, v, r.deployment.Spec.Template.Labels[k])
			}
		}
	}
	if host := at(find(docs, "DestinationRule")[0], "spec.host"); host != r.service.Name+".demo.svc.cluster.local" {
		t.Errorf("DestinationRule host %v", host)
	}
	if got, want := extprocPeers(t, r), peers(t, []any{map[string]any{"podSelector": map[string]any{"matchLabels": at(find(docs, "EnvoyFilter")[0], "spec.workloadSelector.labels")}}}); got != want {
		t.Errorf("rkms admits ext_proc from %s, want the EnvoyFilter's workloads %s", got, want)
	}
	if r.secrets["rkms-extproc-tls"] != nil {
		t.Error("the chart generated ext_proc certificates although Istio provides mutual TLS")
	}
	cfg, err := config.Parse([]byte(r.configMaps["rkms"].Data["rkms.yaml"]))
	if err != nil {
		t.Fatalf("rendered rkms.yaml: %v", err)
	}
	if !cfg.ExtProc.Insecure || cfg.ExtProc.TLS.CertFile != "" {
		t.Errorf("ext_proc insecure %v tls %+v: want Istio's mutual TLS only", cfg.ExtProc.Insecure, cfg.ExtProc.TLS)
	}
}
