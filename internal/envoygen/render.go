package envoygen

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	// The typed configs of envoy/ingress.yaml, so that it parses (protojson resolves Any types
	// from the registry).
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/compression/gzip/compressor/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/compressor/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/rkms/rkms/envoy"
	"github.com/rkms/rkms/internal/config"
)

// ErrTemplate wraps a failure to find in envoy/ingress.yaml what the generator edits: a bug of
// this package after a change of that file, never the user's.
var ErrTemplate = errors.New("envoy/ingress.yaml does not have the expected shape")

// Ingress renders the ingress bootstrap for cfg (a configuration from config.Load or Parse,
// checked) into YAML: envoy/ingress.yaml on cfg.Envoy's ports, JWKS file and token provider,
// with the route table generated from cfg's policies and cfg.Envoy.Unprotected. header, when
// not empty, is written as a comment at the top.
func Ingress(cfg *config.Config, header string) ([]byte, error) {
	rkmsPort := cfg.Envoy.RkmsPort
	if rkmsPort == 0 {
		_, port, err := net.SplitHostPort(cfg.ExtProc.Listen)
		if err != nil {
			return nil, fmt.Errorf("extproc.listen %q: %w", cfg.ExtProc.Listen, err)
		}
		if rkmsPort, err = strconv.Atoi(port); err != nil || rkmsPort <= 0 {
			return nil, fmt.Errorf("extproc.listen %q: no port for Envoy to reach rkms on (set envoy.rkms_port)", cfg.ExtProc.Listen)
		}
	}
	tpl, err := envoy.Config("ingress.yaml")
	if err != nil {
		return nil, err
	}
	tpl, err = envoy.Render(tpl, map[string]int{"listener": cfg.Envoy.ListenerPort, "admin": cfg.Envoy.AdminPort,
		"app": cfg.Envoy.AppPort, "rkms": rkmsPort})
	if err == nil {
		tpl, err = envoy.RenderFiles(tpl, map[string]string{"jwks": cfg.Envoy.JWT.JWKSFile})
	}
	if err != nil {
		return nil, err
	}
	rs, err := routes(cfg)
	if err != nil {
		return nil, err
	}
	if err := checkTemplate(tpl, rs); err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(tpl, &doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTemplate, err)
	}
	stripComments(&doc)
	if err := setRoutes(&doc, rs); err != nil {
		return nil, err
	}
	if err := setProvider(&doc, cfg.Envoy.JWT); err != nil {
		return nil, err
	}
	doc.HeadComment = header
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("encode bootstrap: %w", err)
	}
	return b.Bytes(), nil
}

// checkTemplate parses the bootstrap as Envoy's API and checks that it has every HTTP filter
// that routes rs configure and every jwt_authn requirement they name (Envoy's validate mode
// checks neither).
func checkTemplate(tpl []byte, rs []*routev3.Route) error {
	hcm, err := connectionManager(tpl)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	var requirements map[string]*jwtv3.JwtRequirement
	for _, f := range hcm.GetHttpFilters() {
		seen[f.GetName()] = true
		if f.GetName() == filterJWT {
			var ja jwtv3.JwtAuthentication
			if err := f.GetTypedConfig().UnmarshalTo(&ja); err != nil {
				return fmt.Errorf("%w: jwt_authn filter: %v", ErrTemplate, err)
			}
			requirements = ja.GetRequirementMap()
		}
	}
	for _, r := range rs {
		for name, a := range r.GetTypedPerFilterConfig() {
			if !seen[name] {
				return fmt.Errorf("%w: no HTTP filter %q, which route %v configures", ErrTemplate, name, r.GetMatch())
			}
			var jwt jwtv3.PerRouteConfig
			if name == filterJWT && a.UnmarshalTo(&jwt) == nil && jwt.GetRequirementName() != "" && requirements[jwt.GetRequirementName()] == nil {
				return fmt.Errorf("%w: jwt_authn has no requirement %q", ErrTemplate, jwt.GetRequirementName())
			}
		}
	}
	return nil
}

// connectionManager parses a bootstrap and returns its first listener's HTTP connection manager.
func connectionManager(boot []byte) (*hcmv3.HttpConnectionManager, error) {
	js, err := sigsyaml.YAMLToJSON(boot)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTemplate, err)
	}
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTemplate, err)
	}
	var hcm hcmv3.HttpConnectionManager
	l := b.GetStaticResources().GetListeners()
	if len(l) == 0 || len(l[0].GetFilterChains()) == 0 || len(l[0].GetFilterChains()[0].GetFilters()) == 0 {
		return nil, fmt.Errorf("%w: no listener filter", ErrTemplate)
	}
	if err := l[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTemplate, err)
	}
	return &hcm, nil
}

// markerRE matches the comments envoy.Render and envoy.RenderFiles find their lines by.
var markerRE = regexp.MustCompile(`^#\s*(port|file):[a-z_]+$`)

// stripComments removes every comment but the port and file markers.
func stripComments(n *yaml.Node) {
	n.HeadComment, n.FootComment = "", ""
	if !markerRE.MatchString(n.LineComment) {
		n.LineComment = ""
	}
	for _, c := range n.Content {
		stripComments(c)
	}
}

// hcmNode returns the typed_config of the first listener's connection manager.
func hcmNode(doc *yaml.Node) (*yaml.Node, error) {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	for _, step := range []any{"static_resources", "listeners", 0, "filter_chains", 0, "filters", 0, "typed_config"} {
		n = child(n, step)
		if n == nil {
			return nil, fmt.Errorf("%w: no static_resources.listeners[0].filter_chains[0].filters[0].typed_config", ErrTemplate)
		}
	}
	return n, nil
}

// setRoutes replaces the routes of the first virtual host.
func setRoutes(doc *yaml.Node, rs []*routev3.Route) error {
	hcm, err := hcmNode(doc)
	if err != nil {
		return err
	}
	routes := path(hcm, "route_config", "virtual_hosts", 0, "routes")
	if routes == nil || routes.Kind != yaml.SequenceNode {
		return fmt.Errorf("%w: no route_config.virtual_hosts[0].routes", ErrTemplate)
	}
	routes.Content = routes.Content[:0]
	routes.Style = 0
	for _, r := range rs {
		n, err := protoNode(r)
		if err != nil {
			return err
		}
		routes.Content = append(routes.Content, n)
	}
	return nil
}

// setProvider sets the token provider's issuer and audiences.
func setProvider(doc *yaml.Node, jwt config.JWT) error {
	hcm, err := hcmNode(doc)
	if err != nil {
		return err
	}
	filters := child(hcm, "http_filters")
	if filters == nil {
		return fmt.Errorf("%w: no http_filters", ErrTemplate)
	}
	for _, f := range filters.Content {
		if name := child(f, "name"); name == nil || name.Value != filterJWT {
			continue
		}
		providers := path(f, "typed_config", "providers")
		if providers == nil || providers.Kind != yaml.MappingNode || len(providers.Content) != 2 {
			return fmt.Errorf("%w: %s needs exactly one provider", ErrTemplate, filterJWT)
		}
		p := providers.Content[1]
		issuer, audiences := child(p, "issuer"), child(p, "audiences")
		if issuer == nil || audiences == nil {
			return fmt.Errorf("%w: the token provider has no issuer or audiences", ErrTemplate)
		}
		*issuer = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: jwt.Issuer}
		*audiences = yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, a := range jwt.Audiences {
			audiences.Content = append(audiences.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: a})
		}
		return nil
	}
	return fmt.Errorf("%w: no %s filter", ErrTemplate, filterJWT)
}

// protoNode renders m as a YAML node in block style, with Envoy's field names.
func protoNode(m proto.Message) (*yaml.Node, error) {
	js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("render %T: %w", m, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(js, &doc); err != nil || len(doc.Content) != 1 {
		return nil, fmt.Errorf("render %T: %v", m, err)
	}
	n := doc.Content[0]
	blockStyle(n)
	return n, nil
}

// blockStyle lets the encoder choose each node's style (JSON's flow mappings and quoted strings
// become block YAML; strings that need quotes keep them).
func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// path follows steps (mapping keys and sequence indices) from n; nil when one is missing.
func path(n *yaml.Node, steps ...any) *yaml.Node {
	for _, s := range steps {
		if n = child(n, s); n == nil {
			return nil
		}
	}
	return n
}

func child(n *yaml.Node, step any) *yaml.Node {
	switch s := step.(type) {
	case string:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == s {
				return n.Content[i+1]
			}
		}
	case int:
		if n.Kind == yaml.SequenceNode && s < len(n.Content) {
			return n.Content[s]
		}
	}
	return nil
}
