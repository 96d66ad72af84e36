package deploy

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

// The chart's Envoy bootstrap copies envoy/ingress.yaml into a template. These tests keep the copy
// from drifting and run the bypass conformance suite on the rendered chart.

// helmEnvoy renders the chart's Envoy bootstrap with the CI values and args.
func helmEnvoy(t testing.TB, args ...string) string {
	t.Helper()
	tt, ok := t.(*testing.T)
	if !ok {
		t.Fatal("helmEnvoy needs a *testing.T")
	}
	r := render(tt, append([]string{"-f", filepath.Join(chartDir(tt), "ci", "test-values.yaml")}, args...)...)
	cm := r.configMaps["rel-rkms-envoy"]
	if cm == nil {
		t.Fatal("no Envoy ConfigMap rendered")
	}
	return cm.Data["envoy.yaml"]
}

// TestHelmEnvoyBypass runs the chart's Envoy bootstrap, rendered for loopback ports, through the
// bypass conformance suite.
func TestHelmEnvoyBypass(t *testing.T) {
	testenv.Integration(t)
	render := func(t testing.TB, p envoytest.Ports, failureModeAllow bool) string {
		s := helmEnvoy(t, "--set", "service.http="+strconv.Itoa(p.Listener), "--set", "service.extproc="+strconv.Itoa(p.Rkms),
			"--set", "envoy.upstream.host=127.0.0.1", "--set", "envoy.upstream.port="+strconv.Itoa(p.App))
		s = envoytest.ReplaceOnce(t, s, "{address: 127.0.0.1, port_value: 9901}", fmt.Sprintf("{address: 127.0.0.1, port_value: %d}", p.Admin))
		s = envoytest.ReplaceOnce(t, s, "{address: 0.0.0.0, port_value:", "{address: 127.0.0.1, port_value:")
		s = withJWKS(t, s, p.JWKS)
		if failureModeAllow {
			s = envoytest.ReplaceOnce(t, s, "failure_mode_allow: false", "failure_mode_allow: true")
		}
		return s
	}
	envoytest.Run(t, envoytest.Suite{Render: render, TaggedPrefix: "/patients", Policy: "patients"})
}

// TestHelmEnvoyMatchesIngress: the chart's bootstrap has envoy/ingress.yaml's HTTP filters (token
// verification included: the CI values name ingress.yaml's issuer and audience), local replies,
// request id settings and routes (the template copies them; this catches a copy left behind).
func TestHelmEnvoyMatchesIngress(t *testing.T) {
	testenv.Integration(t) // helm from make tools
	hcm := func(t *testing.T, boot string) map[string]any {
		t.Helper()
		var b struct {
			StaticResources struct {
				Listeners []struct {
					FilterChains []struct {
						Filters []struct {
							TypedConfig map[string]any `json:"typed_config"`
						} `json:"filters"`
					} `json:"filter_chains"`
				} `json:"listeners"`
			} `json:"static_resources"`
		}
		if err := yaml.Unmarshal([]byte(boot), &b); err != nil {
			t.Fatal(err)
		}
		return b.StaticResources.Listeners[0].FilterChains[0].Filters[0].TypedConfig
	}
	chart, shipped := hcm(t, helmEnvoy(t)), hcm(t, readRepoFile(t, "envoy/ingress.yaml"))
	for _, key := range []string{"http_filters", "local_reply_config", "normalize_path", "merge_slashes", "path_with_escaped_slashes_action",
		"use_remote_address", "preserve_external_request_id", "generate_request_id",
		"request_headers_timeout", "request_timeout", "stream_idle_timeout"} {
		if !reflect.DeepEqual(chart[key], shipped[key]) {
			t.Errorf("chart's %s differs from envoy/ingress.yaml's:\n chart %v\n  want %v", key, chart[key], shipped[key])
		}
	}
	// The CI values' routes are ingress.yaml's: the health check, /patients, the catch-all, each
	// with its jwt_authn requirement, ext_proc and stamp check settings.
	routes := func(m map[string]any) any {
		return m["route_config"].(map[string]any)["virtual_hosts"].([]any)[0].(map[string]any)["routes"]
	}
	if !reflect.DeepEqual(routes(chart), routes(shipped)) {
		t.Errorf("chart's routes %v,\n want envoy/ingress.yaml's %v", routes(chart), routes(shipped))
	}
	// The limits outside the connection manager: the connection limit and the rkms cluster's
	// circuit breakers (envoy/README.md, "Resource limits").
	limits := func(t *testing.T, boot string) (overload, breakers any) {
		t.Helper()
		var b map[string]any
		if err := yaml.Unmarshal([]byte(boot), &b); err != nil {
			t.Fatal(err)
		}
		for _, c := range b["static_resources"].(map[string]any)["clusters"].([]any) {
			if c.(map[string]any)["name"] == "rkms" {
				breakers = c.(map[string]any)["circuit_breakers"]
			}
		}
		return b["overload_manager"], breakers
	}
	chartOM, chartCB := limits(t, helmEnvoy(t))
	shippedOM, shippedCB := limits(t, readRepoFile(t, "envoy/ingress.yaml"))
	if !reflect.DeepEqual(chartOM, shippedOM) || !reflect.DeepEqual(chartCB, shippedCB) {
		t.Errorf("chart's limits differ from envoy/ingress.yaml's:\n chart %v %v\n  want %v %v", chartOM, chartCB, shippedOM, shippedCB)
	}
}
