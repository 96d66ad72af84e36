package envoytest

import (
	"maps"
	"slices"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	// The typed configs of the shipped and generated bootstraps, so that protojson resolves
	// their Any payloads from the registry.
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/compression/gzip/compressor/v3"
	bufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/buffer/v3"
	compressorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/compressor/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"
)

// ParseBootstrap decodes an Envoy bootstrap (YAML) the way a control plane would, validates it
// with go-control-plane (ValidateAll) and every Any payload inside it (ValidateAll does not
// open them), and returns it. It fails t when anything does not parse or validate, or when the
// bootstrap holds no typed config at all.
func ParseBootstrap(t testing.TB, cfg []byte) *bootstrapv3.Bootstrap {
	t.Helper()
	js, err := yaml.YAMLToJSON(cfg)
	if err != nil {
		t.Fatalf("yaml: %v", err)
	}
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &b); err != nil {
		t.Fatalf("protojson: %v", err)
	}
	if err := b.ValidateAll(); err != nil {
		t.Fatalf("validate bootstrap: %v", err)
	}
	if n := validateAnys(t, b.ProtoReflect()); n == 0 {
		t.Fatal("no typed config found")
	}
	return &b
}

type validator interface{ ValidateAll() error }

// validateAnys walks m, unpacks every Any, validates it and walks it too. It returns how many
// Any payloads it checked.
func validateAnys(t testing.TB, m protoreflect.Message) int {
	t.Helper()
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			t.Fatalf("unpack %s (type not registered?): %v", a.GetTypeUrl(), err)
		}
		v, ok := inner.(validator)
		if !ok {
			t.Fatalf("%s has no ValidateAll", a.GetTypeUrl())
		}
		if err := v.ValidateAll(); err != nil {
			t.Fatalf("validate %s: %v", a.GetTypeUrl(), err)
		}
		return 1 + validateAnys(t, inner.ProtoReflect())
	}
	n := 0
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				n += validateAnys(t, v.List().Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				n += validateAnys(t, mv.Message())
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			n += validateAnys(t, v.Message())
		}
		return true
	})
	return n
}

// PerRoute reads a route's typed_per_filter_config entry for one filter, which is either the
// filter's own per-route message or an envoy.config.route.v3.FilterConfig around it. It
// reports whether the entry leaves the filter out of the route's chain (FilterConfig
// disabled: true) and otherwise unpacks the filter's message into m (false, m untouched, when
// a is nil or a FilterConfig without config).
func PerRoute(t testing.TB, a *anypb.Any, m proto.Message) (off, set bool) {
	t.Helper()
	if a == nil {
		return false, false
	}
	if a.MessageIs(&routev3.FilterConfig{}) {
		var fc routev3.FilterConfig
		if err := a.UnmarshalTo(&fc); err != nil {
			t.Fatalf("FilterConfig: %v", err)
		}
		if fc.GetDisabled() {
			return true, false
		}
		if a = fc.GetConfig(); a == nil {
			return false, false
		}
	}
	if err := a.UnmarshalTo(m); err != nil {
		t.Fatalf("per-route config: %v", err)
	}
	return false, true
}

// CheckNoReroute fails t when a route leaves a filter out of its chain (FilterConfig disabled)
// while a filter that stays in that chain could clear the route cache: Envoy builds a
// request's filter chain once, after matching its route, so a request moved to another route
// by such a filter would meet that route without the filters the first route left out (the
// stamp check, ext_proc). The filters allowed to stay are those that never clear it: the
// compressor, header_mutation, buffer, router, and jwt_authn without clear_route_cache.
func CheckNoReroute(t testing.TB, hcm *hcmv3.HttpConnectionManager) {
	t.Helper()
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			left := map[string]bool{}
			for name, a := range r.GetTypedPerFilterConfig() {
				var fc routev3.FilterConfig
				if a.MessageIs(&fc) && a.UnmarshalTo(&fc) == nil && fc.GetDisabled() {
					left[name] = true
				}
			}
			if len(left) == 0 {
				continue
			}
			where := r.GetMatch().GetPath() + r.GetMatch().GetPrefix()
			for _, f := range hcm.GetHttpFilters() {
				if left[f.GetName()] {
					continue
				}
				if f.GetDisabled() {
					if _, on := r.GetTypedPerFilterConfig()[f.GetName()]; !on {
						continue // off in the listener, not enabled by the route
					}
				}
				if !keepsRoute(t, f.GetTypedConfig()) {
					t.Errorf("route %s leaves %v out of its filter chain, but filter %s (%s) stays and may clear the route cache",
						where, slices.Sorted(maps.Keys(left)), f.GetName(), f.GetTypedConfig().GetTypeUrl())
				}
			}
		}
	}
}

// keepsRoute reports whether an HTTP filter's config can never clear the route cache.
func keepsRoute(t testing.TB, a *anypb.Any) bool {
	t.Helper()
	switch {
	case a.MessageIs(&compressorv3.Compressor{}), a.MessageIs(&headermutationv3.HeaderMutation{}),
		a.MessageIs(&bufferv3.Buffer{}), a.MessageIs(&routerv3.Router{}):
		return true
	case a.MessageIs(&jwtv3.JwtAuthentication{}):
		var j jwtv3.JwtAuthentication
		if err := a.UnmarshalTo(&j); err != nil {
			t.Fatalf("jwt_authn: %v", err)
		}
		for _, p := range j.GetProviders() {
			if p.GetClearRouteCache() {
				return false
			}
		}
		return true
	}
	return false
}
