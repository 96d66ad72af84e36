package load

import (
	"encoding/json"
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	filterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/extproc/policy"
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
			KeyID: "tenant-{jwt:tenant}", Response: policy.Direction{Decrypt: fields}, DecryptOnly: true},
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

// PerRouteExtProc renders rc as the typed_per_filter_config entries of its route: the ext_proc
// filter's ExtProcPerRoute overrides (processing mode, gRPC initial metadata, attributes) and,
// for a route whose body is not buffered, the buffer filter disabled. (The lead switches this to
// the envoy-config generator's renderer once it lands.)
func PerRouteExtProc(rc extproc.RouteConfig) (map[string]any, error) {
	ov := &filterv3.ExtProcOverrides{ProcessingMode: rc.Mode,
		RequestAttributes: rc.RequestAttributes, ResponseAttributes: rc.ResponseAttributes}
	for _, kv := range rc.Metadata {
		ov.GrpcInitialMetadata = append(ov.GrpcInitialMetadata, &corev3.HeaderValue{Key: kv[0], Value: kv[1]})
	}
	per := &filterv3.ExtProcPerRoute{Override: &filterv3.ExtProcPerRoute_Overrides{Overrides: ov}}
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(per)
	if err != nil {
		return nil, fmt.Errorf("render ext_proc per-route config: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	m["@type"] = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute"
	out := map[string]any{"envoy.filters.http.ext_proc": m}
	if !rc.Buffered {
		out["envoy.filters.http.buffer"] = map[string]any{
			"@type":    "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute",
			"disabled": true}
	}
	return out, nil
}

// withRoutes replaces the routes of ingress.yaml's virtual host by the rig's: /healthz and the
// catch-all as shipped, and before the catch-all one route per route kind that requires a token.
// With perRoute (the rkms configuration) each kind's route gets its policy's settings
// ([PerRouteExtProc]); without it (the no-op configuration) none: the filter's default 4-phase
// BUFFERED mode, no mode override.
func withRoutes(cfg []byte, perRoute bool) ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(cfg, &doc); err != nil {
		return nil, fmt.Errorf("parse envoy config: %w", err)
	}
	hosts, err := dig(doc, "static_resources", "listeners", 0, "filter_chains", 0, "filters", 0, "typed_config", "route_config", "virtual_hosts")
	if err != nil {
		return nil, err
	}
	host := hosts.([]any)[0].(map[string]any)
	var health, catchAll any
	for _, r := range host["routes"].([]any) {
		match, _ := r.(map[string]any)["match"].(map[string]any)
		switch {
		case match["path"] == HealthPath:
			health = r
		case match["prefix"] == "/":
			catchAll = r
		}
	}
	if health == nil || catchAll == nil {
		return nil, fmt.Errorf("envoy config: ingress.yaml has no %s or catch-all route", HealthPath)
	}
	rcs, err := RouteConfigs()
	if err != nil {
		return nil, err
	}
	routes := []any{health}
	for _, k := range []struct{ path, policy string }{{WritePath, WritePolicy}, {ReadPath, ReadPolicy}} {
		per := map[string]any{}
		if perRoute {
			if per, err = PerRouteExtProc(rcs[k.policy]); err != nil {
				return nil, err
			}
		}
		per["envoy.filters.http.jwt_authn"] = map[string]any{
			"@type":            "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig",
			"requirement_name": "tenant"}
		routes = append(routes, map[string]any{
			"match":                   map[string]any{"prefix": k.path},
			"route":                   map[string]any{"cluster": "app", "timeout": "15s"},
			"typed_per_filter_config": per})
	}
	host["routes"] = append(routes, catchAll)
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
