package load

import (
	"fmt"

	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"sigs.k8s.io/yaml"

	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/extproc/policy"
	"github.com/rkms/rkms/internal/config"
	"github.com/rkms/rkms/internal/envoygen"
)

// Route kinds measured through Envoy: each has its own route and, in the rkms configuration, its
// own policy whose per-route Envoy settings come from extproc.RouteConfigFor.
const (
	// WritePath takes the encrypt-only POST: a 1 KiB record, 3 fields sealed in the request, the
	// app's answer (the sealed record) not decrypted.
	WritePath   = "/write"
	WritePolicy = "write"
	// ReadPath takes the decrypt-only GET: a stored record with the 3 fields sealed, opened in
	// the response.
	ReadPath   = "/read"
	ReadPolicy = "read"
	// HealthPath is the unprotected route of envoy/ingress.yaml: ext_proc, the stamp check,
	// jwt_authn and the buffer off.
	HealthPath = "/healthz"
)

// routePolicies are the policies of the two route kinds.
func routePolicies() []policy.Config {
	fields := []policy.Field{{Path: "$.ssn"}, {Path: "$.contact.email"}, {Path: "$.cards[*].number"}}
	return []policy.Config{
		{Name: WritePolicy, Match: policy.Match{PathPrefix: WritePath, Methods: []string{"POST"}},
			KeyID: "tenant-{jwt:tenant}", Request: policy.Direction{Encrypt: fields}},
		{Name: ReadPolicy, Match: policy.Match{PathPrefix: ReadPath, Methods: []string{"GET"}},
			KeyID: "tenant-{jwt:tenant}", Response: policy.Direction{Decrypt: fields}, DecryptOnly: true,
			// Bodiless GETs in 2 messages (response headers, response body): extproc.RouteConfig.ResponseOnly.
			ResponseOnly: true},
	}
}

// RouteConfigs returns the Envoy settings of the route kinds' policies (extproc.RouteConfigFor),
// by policy name.
func RouteConfigs() (map[string]extproc.RouteConfig, error) {
	set, err := policy.Compile(Policies())
	if err != nil {
		return nil, fmt.Errorf("load policies: %w", err)
	}
	out := map[string]extproc.RouteConfig{}
	for _, p := range set.Policies() {
		out[p.Name()] = extproc.RouteConfigFor(p)
	}
	return out, nil
}

// generated renders the rig's Envoy configuration with the envoy-config generator
// (internal/envoygen, what `rkms envoy-config` prints) from the rig's rkms configuration: the
// policies of [Policies], /healthz unprotected, on the given ports. So the rkms configuration
// measures exactly what an operator would ship: each policy route with its
// extproc.RouteConfigFor settings, the unprotected route with 0 messages, rkms's catch-all.
func generated(admin, listener, app, extproc int, jwks string) ([]byte, error) {
	cfg := config.Default()
	cfg.Policies = Policies()
	cfg.Envoy.ListenerPort, cfg.Envoy.AdminPort, cfg.Envoy.AppPort = listener, admin, app
	cfg.Envoy.RkmsPort = extproc
	cfg.Envoy.JWT.JWKSFile = jwks
	cfg.Envoy.Unprotected = []config.UnprotectedRoute{{Path: HealthPath}}
	return envoygen.Ingress(cfg, "")
}

// withoutOverrides removes every route's ext_proc overrides (policy routes), keeping the
// routes where ext_proc is disabled: the no-op configuration then gets the filter's default
// 4-phase BUFFERED mode on every route that reaches ext_proc, and no policy metadata.
func withoutOverrides(cfg []byte) ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(cfg, &doc); err != nil {
		return nil, fmt.Errorf("parse envoy config: %w", err)
	}
	hosts, err := dig(doc, "static_resources", "listeners", 0, "filter_chains", 0, "filters", 0, "typed_config", "route_config", "virtual_hosts")
	if err != nil {
		return nil, err
	}
	for _, h := range hosts.([]any) {
		for _, r := range h.(map[string]any)["routes"].([]any) {
			pf, _ := r.(map[string]any)["typed_per_filter_config"].(map[string]any)
			if ep, ok := pf["envoy.filters.http.ext_proc"].(map[string]any); ok && ep["disabled"] != true {
				delete(pf, "envoy.filters.http.ext_proc")
			}
		}
	}
	return yaml.Marshal(doc)
}

// describeMode is a one-line summary of a processing mode for the report.
func describeMode(m *filterv3.ProcessingMode) string {
	if m == nil {
		return "the filter's default"
	}
	return fmt.Sprintf("req headers %s body %s, resp headers %s body %s", m.GetRequestHeaderMode(), m.GetRequestBodyMode(),
		m.GetResponseHeaderMode(), m.GetResponseBodyMode())
}
