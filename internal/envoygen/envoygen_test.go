package envoygen

import (
	"flag"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	bufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/buffer/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/google/go-cmp/cmp"

	"github.com/rkms/rkms/envoy"
	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/internal/config"
	testenv "github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

var update = flag.Bool("update", false, "rewrite the golden files of the tests")

// shippedPolicies is the configuration envoy/ingress.yaml's routes are generated from.
const shippedPolicies = "../../envoy/ingress-policies.yaml"

// mixed exercises every kind of route: unprotected path and prefix, a policy with methods, a
// case-sensitive one, one without {jwt:...}, a decrypt-only one, a response-only one, a name-only
// one, a streaming one.
const mixed = `extproc: {listen: 127.0.0.1:50051}
policies:
  - name: patients
    match: {path_prefix: /patients, methods: [post, PUT, GET]}
    key_id: "tenant-{jwt:tenant}"
    request: {encrypt: ["$.ssn"]}
    response: {decrypt: ["$.ssn"]}
  - name: Files
    match: {path_prefix: /Files/}
    case_sensitive: true
    key_id: files
    request: {encrypt: ["$.secret"]}
  - name: reports
    match: {path_prefix: /reports}
    key_id: "r-{header:x-org}"
    trusted_headers: [x-org]
    decrypt_only: true
    response: {decrypt: ["$.ssn"]}
  - name: reads
    match: {path_prefix: /reads, methods: [GET, head, OPTIONS]}
    key_id: "tenant-{jwt:tenant}"
    decrypt_only: true
    response_only: true
    response: {decrypt: ["$.ssn"]}
  - name: by-name
    key_id: n
    request: {encrypt: ["$.x"]}
  - name: imports
    match: {path_prefix: /imports}
    key_id: "tenant-{jwt:tenant}"
    request: {stream: true, encrypt: ["$.ssn"]}
envoy:
  listener_port: 18000
  admin_port: 18001
  app_port: 18002
  rkms_port: 18003
  jwt: {issuer: "https://idp.example.org", audiences: [a1, a2], jwks_file: /run/jwks.json}
  unprotected: [{path: /healthz}, {prefix: /static/, methods: [GET]}]
`

func load(t *testing.T, yamlText string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yamlText))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func loadFile(t *testing.T, path string) *config.Config {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func render(t *testing.T, cfg *config.Config) []byte {
	t.Helper()
	out, err := Ingress(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// parse decodes a bootstrap the way a control plane would and validates it and every Any
// inside it (envoytest.ParseBootstrap).
func parse(t *testing.T, cfg []byte) *bootstrapv3.Bootstrap {
	t.Helper()
	return envoytest.ParseBootstrap(t, cfg)
}

// routeTable returns the routes of a bootstrap's first virtual host.
func routeTable(t *testing.T, b *bootstrapv3.Bootstrap) []*routev3.Route {
	t.Helper()
	hcm, err := connectionManager(mustJSONBootstrap(t, b))
	if err != nil {
		t.Fatal(err)
	}
	envoytest.CheckNoReroute(t, hcm)
	return hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()
}

func mustJSONBootstrap(t *testing.T, b *bootstrapv3.Bootstrap) []byte {
	t.Helper()
	js, err := protojson.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// TestGeneratedValidates: go-control-plane parses and validates what the generator renders (every
// typed config included), for the shipped policies, a mix of every route kind, and the defaults.
func TestGeneratedValidates(t *testing.T) {
	for name, cfg := range map[string]*config.Config{
		"shipped":  loadFile(t, shippedPolicies),
		"mixed":    load(t, mixed),
		"defaults": config.Default(),
	} {
		t.Run(name, func(t *testing.T) {
			b := parse(t, render(t, cfg))
			rs := routeTable(t, b)
			if last := rs[len(rs)-1].GetMatch(); last.GetPrefix() != "/" || len(last.GetHeaders()) != 0 {
				t.Errorf("last route %v, want the catch-all /", last)
			}
		})
	}
}

// TestEnvoyValidates: the real Envoy accepts what the generator renders (envoy --mode validate).
func TestEnvoyValidates(t *testing.T) {
	testenv.Integration(t)
	for name, cfg := range map[string]*config.Config{"shipped": loadFile(t, shippedPolicies), "mixed": load(t, mixed)} {
		t.Run(name, func(t *testing.T) {
			cfg.Envoy.JWT.JWKSFile = writeJWKS(t)
			if out, err := testenv.Validate(t, string(render(t, cfg))); err != nil {
				t.Fatalf("envoy --mode validate: %v\n%s", err, out)
			}
		})
	}
}

// writeJWKS writes a JSON Web Key Set Envoy accepts (validate mode reads the file).
func writeJWKS(t *testing.T) string {
	t.Helper()
	p := t.TempDir() + "/jwks.json"
	const jwks = `{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256","kid":"k",` +
		`"x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}]}`
	if err := os.WriteFile(p, []byte(jwks), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestShippedRoutesAreGenerated is the drift test: envoy/ingress.yaml's route table is exactly what
// the generator renders for envoy/ingress-policies.yaml, and the rest of the bootstrap is
// ingress.yaml's.
func TestShippedRoutesAreGenerated(t *testing.T) {
	shipped, err := envoy.Config("ingress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want, got := parse(t, shipped), parse(t, render(t, loadFile(t, shippedPolicies)))
	if d := cmp.Diff(routeTable(t, want), routeTable(t, got), protocmp.Transform()); d != "" {
		t.Errorf("envoy/ingress.yaml's routes differ from `rkms envoy-config --config envoy/ingress-policies.yaml` (-shipped +generated):\n%s", d)
	}
	if d := cmp.Diff(withoutRoutes(t, want), withoutRoutes(t, got), protocmp.Transform()); d != "" {
		t.Errorf("the generated bootstrap differs from envoy/ingress.yaml beyond the routes (-shipped +generated):\n%s", d)
	}
}

// withoutRoutes returns b with an empty route table.
func withoutRoutes(t *testing.T, b *bootstrapv3.Bootstrap) *bootstrapv3.Bootstrap {
	t.Helper()
	b = proto.CloneOf(b)
	f := b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0]
	var hcm hcmv3.HttpConnectionManager
	if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		t.Fatal(err)
	}
	hcm.GetRouteConfig().GetVirtualHosts()[0].Routes = nil
	a, err := anypb.New(&hcm)
	if err != nil {
		t.Fatal(err)
	}
	f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
	return b
}

// TestRoutesGolden: the route table of the mixed configuration, rendered; the kinds and order of
// routes are described in the package documentation (go test -run TestRoutesGolden -update).
func TestRoutesGolden(t *testing.T) {
	out := render(t, load(t, mixed))
	i := strings.Index(string(out), "                      routes:\n")
	j := strings.Index(string(out), "                http_filters:\n")
	if i < 0 || j < i {
		t.Fatalf("no routes block in:\n%s", out)
	}
	got := string(out[i:j])
	const golden = "testdata/mixed-routes.golden.yaml"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("routes differ from %s (go test -run TestRoutesGolden -update to accept):\n%s", golden, got)
	}
}

// TestRouteKinds checks the mixed configuration's route table: unprotected routes first, bodiless
// GET/HEAD only; each policy route names its policy with its settings; a policy with methods is
// followed by a route that names none; the name-only policy gets no route; the catch-all last.
func TestRouteKinds(t *testing.T) {
	cfg := load(t, mixed)
	b := parse(t, render(t, cfg))
	rs := routeTable(t, b)
	type row struct {
		match, policy, jwt string
		headers            []string
		buffer             string // "", "disabled", "limit N"
		extproc            string // "disabled", "named", "default"
		timeout            string
	}
	var got []row
	for _, r := range rs {
		m := r.GetMatch()
		w := row{match: m.GetPath() + m.GetPrefix(), timeout: r.GetRoute().GetTimeout().AsDuration().String()}
		if m.GetPath() != "" {
			w.match = "=" + w.match
		}
		if m.GetCaseSensitive() != nil && !m.GetCaseSensitive().GetValue() {
			w.match += " (any case)"
		}
		for _, h := range m.GetHeaders() {
			if h.GetStringMatch() != nil {
				w.headers = append(w.headers, h.GetName()+"~"+h.GetStringMatch().GetSafeRegex().GetRegex())
			} else {
				w.headers = append(w.headers, "!"+h.GetName())
			}
		}
		tp := r.GetTypedPerFilterConfig()
		var jwt jwtv3.PerRouteConfig
		jwtOff, _ := envoytest.PerRoute(t, tp[filterJWT], &jwt)
		w.jwt = jwt.GetRequirementName()
		if jwt.GetDisabled() {
			w.jwt = "disabled (per-route)"
		}
		if jwtOff {
			w.jwt = "disabled"
		}
		name, off := routePolicy(t, r)
		var ep extprocv3.ExtProcPerRoute
		epOff, _ := envoytest.PerRoute(t, tp[filterExtProc], &ep)
		switch {
		case off:
			w.extproc = "disabled"
			if epOff {
				// Left out of the chain: the stamp check must be too (an empty RBACPerRoute
				// would do, but the generator leaves it out the same way).
				w.extproc = "not in chain"
				if rbOff, _ := envoytest.PerRoute(t, tp[filterRBAC], &rbacv3.RBACPerRoute{}); !rbOff {
					t.Errorf("%s: ext_proc is left out of the chain but the stamp check is not", w.match)
				}
			}
		case name != "" && proto.Equal(ep.GetOverrides().GetProcessingMode(), extproc.ResponseOnlyMode()):
			w.extproc, w.policy = "response-only", name
			var hm headermutationv3.HeaderMutationPerRoute
			if err := tp[filterHeaders].UnmarshalTo(&hm); err != nil {
				t.Fatalf("%s: header_mutation: %v", w.match, err)
			}
			if rm := hm.GetMutations().GetRequestMutations(); len(rm) != 2 || rm[0].GetRemove() != "accept-encoding" || rm[1].GetRemove() != "x-tenant-id" {
				t.Errorf("%s: request mutations %v, want accept-encoding and x-tenant-id removed", w.match, rm)
			}
			var rb rbacv3.RBACPerRoute
			if err := tp[filterRBAC].UnmarshalTo(&rb); err != nil || rb.GetRbac() != nil {
				t.Errorf("%s: rbac %v, %v: want the stamp check off (no rbac)", w.match, &rb, err)
			}
		case name != "":
			w.extproc, w.policy = "named", name
		default:
			w.extproc = "default"
		}
		if a := tp[filterBuffer]; a != nil {
			var br bufferv3.BufferPerRoute
			if err := a.UnmarshalTo(&br); err != nil {
				t.Fatal(err)
			}
			w.buffer = "limit " + strconv.Itoa(int(br.GetBuffer().GetMaxRequestBytes().GetValue()))
			if br.GetDisabled() {
				w.buffer = "disabled"
			}
		}
		got = append(got, w)
	}
	bodiless := []string{":method~GET|HEAD", "!content-length", "!transfer-encoding"}
	want := []row{
		{"=/healthz", "", "disabled (per-route)", bodiless, "limit 1", "not in chain", "15s"},
		// A prefix is guarded against path parameters (";"), an exact path needs no guard.
		{"/static/", "", "disabled (per-route)", []string{":method~GET", "!content-length", "!transfer-encoding", ":path~[^%:;]*"}, "limit 1", "not in chain", "15s"},
		{"/patients (any case)", "patients", "tenant", []string{":method~POST|PUT|GET"}, "", "named", "15s"},
		{"/patients (any case)", "", "tenant_if_present", nil, "", "default", "15s"},
		{"/Files/", "Files", "tenant_if_present", nil, "", "named", "15s"},
		{"/reports (any case)", "reports", "tenant_if_present", nil, "", "named", "15s"},
		{"/reads (any case)", "reads", "tenant", []string{":method~GET|HEAD", "!content-length", "!transfer-encoding", ":path~[^%:;]*"}, "limit 1", "response-only", "15s"},
		{"/reads (any case)", "reads", "tenant", []string{":method~GET|HEAD|OPTIONS"}, "", "named", "15s"},
		{"/reads (any case)", "", "tenant_if_present", nil, "", "default", "15s"},
		{"/imports (any case)", "imports", "tenant", nil, "disabled", "named", "25s"},
		{"/", "", "tenant_if_present", nil, "", "default", "15s"},
	}
	if d := cmp.Diff(want, got, cmp.AllowUnexported(row{})); d != "" {
		t.Errorf("route table (-want +got):\n%s", d)
	}
}

// TestOverridesRenderRouteConfig: every field of extproc.RouteConfig reaches the route. A field
// added to RouteConfig fails this test until the generator renders it.
func TestOverridesRenderRouteConfig(t *testing.T) {
	var fields []string
	for f := range reflect.TypeFor[extproc.RouteConfig]().Fields() {
		fields = append(fields, f.Name)
	}
	if rendered := []string{"Filter", "Metadata", "Mode", "RequestAttributes", "ResponseAttributes", "Buffered", "ResponseOnly"}; !slices.Equal(fields, rendered) {
		t.Fatalf("extproc.RouteConfig has fields %v; the generator renders %v: render the new ones (routes.go)", fields, rendered)
	}
	rc := extproc.RouteConfig{
		Metadata:           [][2]string{{"x-rkms-policy", "p"}, {"x-rkms-body", "stream"}},
		Mode:               &extprocv3.ProcessingMode{RequestBodyMode: extprocv3.ProcessingMode_NONE, ResponseHeaderMode: extprocv3.ProcessingMode_SKIP},
		RequestAttributes:  []string{"source.address"},
		ResponseAttributes: []string{"response.code"},
	}
	o := overrides(rc)
	if len(o.GetGrpcInitialMetadata()) != 2 || o.GetGrpcInitialMetadata()[1].GetValue() != "stream" ||
		!proto.Equal(o.GetProcessingMode(), rc.Mode) || !slices.Equal(o.GetRequestAttributes(), rc.RequestAttributes) ||
		!slices.Equal(o.GetResponseAttributes(), rc.ResponseAttributes) {
		t.Errorf("overrides %v do not render %+v", o, rc)
	}
}

// TestRenderedSettings: ports, the JWKS file and the token provider come from the envoy section;
// rkms_port 0 takes extproc.listen's port; comments are gone but the render markers stay.
func TestRenderedSettings(t *testing.T) {
	out := string(render(t, load(t, mixed)))
	for _, want := range []string{"port_value: 18000} # port:listener", "port_value: 18001} # port:admin",
		"port_value: 18002} # port:app", "port_value: 18003} # port:rkms", `filename: "/run/jwks.json" # file:jwks`,
		"issuer: https://idp.example.org", "- a1\n", "- a2\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "issuer.example.com") || strings.Contains(out, "# Health checks") {
		t.Errorf("placeholder issuer or a comment of ingress.yaml left in the output")
	}
	cfg := load(t, "extproc: {listen: \"127.0.0.1:50999\"}\n")
	if out := string(render(t, cfg)); !strings.Contains(out, "port_value: 50999} # port:rkms") {
		t.Errorf("rkms_port 0 does not follow extproc.listen")
	}
}
