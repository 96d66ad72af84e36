package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/rkms/rkms/extproc/policy"
)

// Envoy configures `rkms envoy-config`, which renders the Envoy bootstrap (envoy/ingress.yaml
// with a route table generated from the policies). rkms serve does not read it.
type Envoy struct {
	// Ports of the rendered bootstrap: Envoy's listener and admin interface, the application.
	ListenerPort int `yaml:"listener_port"`
	AdminPort    int `yaml:"admin_port"`
	AppPort      int `yaml:"app_port"`
	// RkmsPort is where Envoy reaches rkms's ext_proc on 127.0.0.1; 0: the port of
	// extproc.listen.
	RkmsPort int `yaml:"rkms_port"`
	JWT      JWT `yaml:"jwt"`
	// Unprotected lists routes that never reach rkms (0 ext_proc messages): health checks and
	// static assets, GET and HEAD without a body only. Each one is checked against the policies:
	// a path some policy could match is refused.
	Unprotected []UnprotectedRoute `yaml:"unprotected"`
}

// JWT is the bearer token provider of the rendered jwt_authn filter.
type JWT struct {
	Issuer    string   `yaml:"issuer"`
	Audiences []string `yaml:"audiences"`
	// JWKSFile is the JSON Web Key Set Envoy verifies tokens with (public keys; read at start).
	JWKSFile string `yaml:"jwks_file"`
}

// UnprotectedRoute is one route of envoy.unprotected: exactly one of Path (that exact path) and
// Prefix, both canonical like a policy's path_prefix and matched case-sensitively.
type UnprotectedRoute struct {
	Path   string `yaml:"path"`
	Prefix string `yaml:"prefix"`
	// Methods: GET and/or HEAD (empty: both). Requests of any other method, and requests with a
	// body, go through rkms like any other.
	Methods []string `yaml:"methods"`
}

// UnprotectedMethods returns r's methods, upper case: GET and HEAD when it lists none.
func (r UnprotectedRoute) UnprotectedMethods() []string {
	if len(r.Methods) == 0 {
		return []string{"GET", "HEAD"}
	}
	out := make([]string, len(r.Methods))
	for i, m := range r.Methods {
		out[i] = strings.ToUpper(m)
	}
	return out
}

// Defaults of the envoy section: those of the shipped envoy/ingress.yaml. The issuer and
// audience are placeholders, as in that file: set your identity provider's.
const (
	DefaultEnvoyListenerPort = 10000
	DefaultEnvoyAdminPort    = 9901
	DefaultEnvoyAppPort      = 8000
	DefaultJWTIssuer         = "https://issuer.example.com"
	DefaultJWTAudience       = "https://app.example.com"
	DefaultJWKSFile          = "/etc/envoy/jwks.json"
	// MaxUnprotectedRoutes bounds envoy.unprotected, and MaxEnvoyValueLen each path, prefix,
	// issuer, audience and file name.
	MaxUnprotectedRoutes = 256
	MaxEnvoyValueLen     = 1024
)

func defaultEnvoy() Envoy {
	return Envoy{
		ListenerPort: DefaultEnvoyListenerPort,
		AdminPort:    DefaultEnvoyAdminPort,
		AppPort:      DefaultEnvoyAppPort,
		JWT:          JWT{Issuer: DefaultJWTIssuer, Audiences: []string{DefaultJWTAudience}, JWKSFile: DefaultJWKSFile},
	}
}

// envoy checks the envoy section, and that no unprotected route takes a request a policy
// would process.
func (c *checker) envoy(e *Envoy, policies []policy.Config) {
	for _, p := range []struct {
		path string
		port int
		zero bool // 0 allowed
	}{
		{"envoy.listener_port", e.ListenerPort, false},
		{"envoy.admin_port", e.AdminPort, false},
		{"envoy.app_port", e.AppPort, false},
		{"envoy.rkms_port", e.RkmsPort, true},
	} {
		if p.port < 0 || p.port > 65535 || p.port == 0 && !p.zero {
			c.add(p.path, "must be a port, 1..65535 (got %d)", p.port)
		}
	}
	c.envoyValue("envoy.jwt.issuer", e.JWT.Issuer)
	if len(e.JWT.Audiences) == 0 {
		c.add("envoy.jwt.audiences", "needs at least one audience: without one, a token for any other application is accepted")
	}
	for i, a := range e.JWT.Audiences {
		c.envoyValue(fmt.Sprintf("envoy.jwt.audiences[%d]", i), a)
	}
	if c.envoyValue("envoy.jwt.jwks_file", e.JWT.JWKSFile) && !strings.HasPrefix(e.JWT.JWKSFile, "/") {
		c.add("envoy.jwt.jwks_file", "must be an absolute path (got %q)", e.JWT.JWKSFile)
	}
	if len(e.Unprotected) > MaxUnprotectedRoutes {
		c.add("envoy.unprotected", "at most %d routes (got %d)", MaxUnprotectedRoutes, len(e.Unprotected))
		return
	}
	for i, r := range e.Unprotected {
		c.unprotected(fmt.Sprintf("envoy.unprotected[%d]", i), r, policies)
	}
}

// envoyValue checks a value written into the bootstrap: not empty, bounded, one line.
func (c *checker) envoyValue(path, v string) bool {
	switch {
	case v == "":
		c.add(path, "must not be empty")
	case len(v) > MaxEnvoyValueLen:
		c.add(path, "must be at most %d bytes (got %d)", MaxEnvoyValueLen, len(v))
	case strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		c.add(path, "must not contain control characters")
	default:
		return true
	}
	return false
}

func (c *checker) unprotected(path string, r UnprotectedRoute, policies []policy.Config) {
	key, v := "path", r.Path
	switch {
	case r.Path != "" && r.Prefix != "":
		c.add(path, "set path or prefix, not both")
		return
	case r.Prefix != "":
		key, v = "prefix", r.Prefix
	case r.Path == "":
		c.add(path, "needs a path (exact) or a prefix")
		return
	}
	if len(v) > MaxEnvoyValueLen || !policy.ValidPathPrefix(v) {
		c.add(path+"."+key, "%q must start with \"/\" and be a canonical path of at most %d bytes: no query, fragment, space, "+
			"percent escape, backslash, ';', dot segment or repeated slash", v, MaxEnvoyValueLen)
		return
	}
	if key == "prefix" && v == "/" {
		c.add(path+".prefix", "\"/\" would take every GET and HEAD away from rkms")
		return
	}
	methods := r.UnprotectedMethods()
	for j, m := range methods {
		if m != "GET" && m != "HEAD" {
			c.add(fmt.Sprintf("%s.methods[%d]", path, j), "only GET and HEAD may skip rkms (got %q): other methods carry bodies", r.Methods[j])
		}
	}
	for i, p := range policies {
		if name, overlaps := unprotectedOverlap(key == "prefix", v, methods, p); overlaps {
			c.add(path+"."+key, "%q takes requests that policy %q (policies[%d]) matches: a request Envoy sends past rkms "+
				"must be one no policy could process", v, name, i)
		}
	}
}

// unprotectedOverlap reports whether a request the unprotected route takes (exact path v, or
// any path under prefix v; case-sensitive; one of methods; no body) could be one that policy p
// matches by its own rules (path prefix, case-insensitive unless case_sensitive; its methods
// limit bodiless requests). A policy selected only by name matches nothing by itself.
func unprotectedOverlap(isPrefix bool, v string, methods []string, p policy.Config) (string, bool) {
	pp := p.Match.PathPrefix
	if pp == "" && len(p.Match.Methods) == 0 {
		return "", false
	}
	if pp == "" {
		pp = "/"
	}
	if len(p.Match.Methods) > 0 && !slices.ContainsFunc(p.Match.Methods, func(m string) bool {
		return slices.Contains(methods, strings.ToUpper(m))
	}) {
		return "", false
	}
	u := v
	if !p.CaseSensitive {
		u, pp = strings.ToUpper(u), strings.ToUpper(pp)
	}
	// Every path of the route starts with u (an exact path is its own prefix): the policy takes
	// it when u starts with the policy's prefix; under a prefix route, also when the policy's
	// prefix starts with u (a longer path under the route).
	return p.Name, strings.HasPrefix(u, pp) || isPrefix && strings.HasPrefix(pp, u)
}
