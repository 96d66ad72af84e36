package envoytest

import (
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	// The typed configs of the shipped and generated bootstraps, so that protojson resolves
	// their Any payloads from the registry.
	_ "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/compression/gzip/compressor/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/buffer/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/compressor/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
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
