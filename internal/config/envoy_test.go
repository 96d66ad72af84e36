package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/rkms/rkms/extproc/policy"
)

// TestEnvoyUnprotectedChecks: an unprotected route is refused when a request it takes could be
// one a policy processes (case folding, prefixes both ways, methods), when it is not GET/HEAD,
// and when its path is not canonical; routes clear of every policy pass.
func TestEnvoyUnprotectedChecks(t *testing.T) {
	const policies = `policies:
  - {name: patients, match: {path_prefix: /patients}, key_id: k, request: {encrypt: ["$.ssn"]}}
  - {name: Exact, match: {path_prefix: /Files/, methods: [POST]}, case_sensitive: true, key_id: k, request: {encrypt: ["$.ssn"]}}
  - {name: reads, match: {path_prefix: /reports, methods: [GET]}, key_id: k, response: {decrypt: ["$.ssn"]}, decrypt_only: true}
  - {name: named, key_id: k, request: {encrypt: ["$.ssn"]}}
`
	for _, tc := range []struct {
		name, routes string
		want         string // a line of the report starts with it; "" for no problem
	}{
		{"clear of every policy", `[{path: /healthz}, {prefix: /static/}, {path: /files/x}, {prefix: /Files/, methods: [GET]}]`, ""},
		{"exact path under a prefix", `[{path: /patients/healthz}]`, `envoy.unprotected[0].path: "/patients/healthz" takes requests that policy "patients"`},
		{"case folded", `[{path: /PATIENTS}]`, `envoy.unprotected[0].path: "/PATIENTS" takes requests that policy "patients"`},
		{"prefix above a policy's", `[{prefix: /pat}]`, `envoy.unprotected[0].prefix: "/pat" takes requests that policy "patients"`},
		{"policy's methods include GET", `[{prefix: /reports/public}]`, `envoy.unprotected[0].prefix: "/reports/public" takes requests that policy "reads"`},
		{"case-sensitive policy, same case", `[{prefix: /Files/x}, {prefix: /files/x}]`, ""},
		{"not GET or HEAD", `[{path: /healthz, methods: [GET, POST]}]`, `envoy.unprotected[0].methods[1]: only GET and HEAD`},
		{"both path and prefix", `[{path: /a, prefix: /b}]`, "envoy.unprotected[0]: set path or prefix, not both"},
		{"neither", `[{methods: [GET]}]`, "envoy.unprotected[0]: needs a path"},
		{"not canonical", `[{path: /a/../patients}]`, `envoy.unprotected[0].path: "/a/../patients" must start with "/"`},
		{"query", `[{path: "/healthz?x=1"}]`, `envoy.unprotected[0].path: "/healthz?x=1" must start`},
		{"everything", `[{prefix: /}]`, `envoy.unprotected[0].prefix: "/" would take every GET`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(policies + "envoy:\n  unprotected: " + tc.routes + "\n"))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("want no problem, got %v", err)
				}
				return
			}
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("want Problems, got %v", err)
			}
			if !strings.Contains("\n"+ps.Report(), ": "+tc.want) {
				t.Errorf("no problem %q in:\n%s", tc.want, ps.Report())
			}
		})
	}
}

// TestEnvoyMethodsOnlyPolicy: a policy with methods and no path prefix matches every path, so it
// overlaps every unprotected route of its methods.
func TestEnvoyMethodsOnlyPolicy(t *testing.T) {
	_, err := Parse([]byte(`policies:
  - {name: gets, match: {methods: [HEAD]}, key_id: k, response: {decrypt: ["$.ssn"]}, decrypt_only: true}
envoy: {unprotected: [{path: /healthz, methods: [GET]}, {path: /ping}]}
`))
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Path != "envoy.unprotected[1].path" {
		t.Fatalf("want one problem at envoy.unprotected[1].path, got %v", err)
	}
}

// TestEnvoySettingsChecks: ports, the token provider's values and the bound on routes.
func TestEnvoySettingsChecks(t *testing.T) {
	many := "envoy:\n  unprotected:\n" + strings.Repeat("    - {path: /healthz}\n", MaxUnprotectedRoutes+1)
	for _, tc := range []struct{ yaml, want string }{
		{"envoy: {listener_port: 0}", "envoy.listener_port: must be a port"},
		{"envoy: {app_port: 70000}", "envoy.app_port: must be a port"},
		{"envoy: {rkms_port: -1}", "envoy.rkms_port: must be a port"},
		{"envoy: {jwt: {audiences: []}}", "envoy.jwt.audiences: needs at least one"},
		{"envoy: {jwt: {issuer: \"\"}}", "envoy.jwt.issuer: must not be empty"},
		{"envoy: {jwt: {issuer: \"a\\nb\"}}", "envoy.jwt.issuer: must not contain control"},
		{"envoy: {jwt: {jwks_file: jwks.json}}", "envoy.jwt.jwks_file: must be an absolute path"},
		{many, "envoy.unprotected: at most 256 routes"},
	} {
		_, err := Parse([]byte(tc.yaml + "\n"))
		var ps Problems
		if !errors.As(err, &ps) || !strings.Contains(ps.Report(), tc.want) {
			t.Errorf("%q: want %q, got %v", tc.yaml, tc.want, err)
		}
	}
	cfg, err := Parse([]byte("envoy: {rkms_port: 0}\n"))
	if err != nil || cfg.Envoy.ListenerPort != DefaultEnvoyListenerPort || cfg.Envoy.JWT.Audiences[0] != DefaultJWTAudience {
		t.Fatalf("defaults: %+v, %v", cfg, err)
	}
}

// FuzzUnprotectedOverlap checks the overlap rule against rkms's own matcher: whenever a request
// path is taken by the unprotected route (Envoy's exact or prefix match, case-sensitive) and
// rkms would select the policy for a bodiless GET, the check must have refused the route.
func FuzzUnprotectedOverlap(f *testing.F) {
	f.Add("/healthz", false, "/health", false, "/healthz")
	f.Add("/static/", true, "/STATIC/a", false, "/static/a/b")
	f.Add("/a", true, "/ab", true, "/abc")
	f.Fuzz(func(t *testing.T, u string, isPrefix bool, pp string, caseSens bool, req string) {
		if !policy.ValidPathPrefix(u) || !policy.ValidPathPrefix(pp) || policy.Canonical(req) != req {
			return
		}
		pc := policy.Config{Name: "p", Match: policy.Match{PathPrefix: pp}, CaseSensitive: caseSens,
			KeyID: "k", Request: policy.Direction{Encrypt: []policy.Field{{Path: "$.ssn"}}}}
		set, err := policy.Compile([]policy.Config{pc})
		if err != nil {
			return
		}
		takes := req == u || isPrefix && strings.HasPrefix(req, u)
		p, _, err := set.Select("", policy.Request{Method: "GET", Path: req})
		if !takes || err != nil || p == nil {
			return
		}
		if _, overlaps := unprotectedOverlap(isPrefix, u, []string{"GET", "HEAD"}, pc); !overlaps {
			t.Fatalf("unprotected %q (prefix %v) takes %q, which policy prefix %q (case_sensitive %v) matches, and was not refused", u, isPrefix, req, pp, caseSens)
		}
	})
}
