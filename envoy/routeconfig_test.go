package envoy

import (
	"bytes"
	"os"
	"slices"
	"testing"

	bufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/buffer/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"

	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/extproc/policy"
)

// streamingPolicies are the policies ingress.yaml's streaming routes name, as envoy/README.md
// ("Streaming routes") configures them; the demo (examples/demo/rkms.yaml) has none.
const streamingPolicies = `
policies:
  - name: imports
    key_id: "tenant-{jwt:tenant}"
    request: {stream: true, encrypt: ["$.ssn"]}
  - name: exports
    key_id: "tenant-{jwt:tenant}"
    decrypt_only: true
    response: {stream: true, decrypt: ["$.ssn"]}
`

// shippedPolicies compiles the demo's policies (the configuration `make demo` runs ingress.yaml
// with) and the streaming ones.
func shippedPolicies(t *testing.T) map[string]*policy.Policy {
	t.Helper()
	demo, err := os.ReadFile("../examples/demo/rkms.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfgs []policy.Config
	for _, doc := range [][]byte{demo, []byte(streamingPolicies)} {
		var d struct {
			Policies []policy.Config `yaml:"policies"`
		}
		dec := yaml.NewDecoder(bytes.NewReader(doc))
		dec.KnownFields(true)
		if err := dec.Decode(&d); err != nil {
			t.Fatal(err)
		}
		cfgs = append(cfgs, d.Policies...)
	}
	set, err := policy.Compile(cfgs)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*policy.Policy{}
	for _, p := range set.Policies() {
		out[p.Name()] = p
	}
	return out
}

// TestShippedRouteConfig: every route of ingress.yaml that names a policy has exactly the
// ext_proc settings extproc.RouteConfigFor gives that policy (the filter that serves it, the
// gRPC metadata, the processing mode, the buffer), so the shipped file and the generator
// (`rkms envoy-config`) say the same thing.
func TestShippedRouteConfig(t *testing.T) {
	cfg, err := Config("ingress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b := parse(t, cfg)
	hcm := unpack(t, b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig(), &hcmv3.HttpConnectionManager{})
	pols := shippedPolicies(t)
	seen := 0
	for _, r := range hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes() {
		name := routePolicy(t, r)
		if name == "" {
			continue
		}
		seen++
		p := pols[name]
		if p == nil {
			t.Fatalf("route %s names policy %q, which the shipped configurations do not define", r.GetMatch().GetPrefix(), name)
		}
		want := extproc.RouteConfigFor(p)
		pr := perRoute(t, r)
		filter := extproc.MainFilterName
		if _, ok := r.GetTypedPerFilterConfig()[extproc.PipelinedFilterName]; ok {
			filter = extproc.PipelinedFilterName
			if !perRouteMain(t, r).GetDisabled() {
				t.Errorf("route %s: the pipelined filter serves it but the main one is not disabled", name)
			}
		}
		var md [][2]string
		for _, h := range pr.GetOverrides().GetGrpcInitialMetadata() {
			md = append(md, [2]string{h.GetKey(), h.GetValue()})
		}
		buffered := true
		if a := r.GetTypedPerFilterConfig()["envoy.filters.http.buffer"]; a != nil {
			buffered = !unpack(t, a, &bufferv3.BufferPerRoute{}).GetDisabled()
		}
		switch {
		case filter != want.Filter:
			t.Errorf("route %s: served by %s, RouteConfigFor says %s", name, filter, want.Filter)
		case !slices.Equal(md, want.Metadata):
			t.Errorf("route %s: grpc_initial_metadata %v, RouteConfigFor says %v", name, md, want.Metadata)
		case !proto.Equal(pr.GetOverrides().GetProcessingMode(), want.Mode):
			t.Errorf("route %s: processing_mode %v, RouteConfigFor says %v", name, pr.GetOverrides().GetProcessingMode(), want.Mode)
		case buffered != want.Buffered:
			t.Errorf("route %s: buffered %v, RouteConfigFor says %v", name, buffered, want.Buffered)
		case pr.GetOverrides().GetRequestAttributes() != nil || pr.GetOverrides().GetResponseAttributes() != nil:
			t.Errorf("route %s: per-route attributes (Envoy 1.40 ignores them)", name)
		}
	}
	if seen != 3 {
		t.Errorf("%d routes name a policy, want 3 (patients, imports, exports)", seen)
	}
}
