package envoygen

import (
	"regexp"
	"strings"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"

	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/extproc/policy"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

// overlapping has policies whose prefixes and methods overlap, in an order where the shorter
// prefix comes first for one pair and last for another.
const overlapping = `extproc: {listen: 127.0.0.1:50051}
policies:
  - {name: api-get, match: {path_prefix: /api, methods: [GET]}, key_id: k, response: {decrypt: ["$.a"]}, decrypt_only: true}
  - {name: api-users, match: {path_prefix: /api/users}, key_id: k, request: {encrypt: ["$.a"]}}
  - {name: Docs, match: {path_prefix: /Docs/x}, case_sensitive: true, key_id: k, request: {encrypt: ["$.a"]}}
  - {name: docs, match: {path_prefix: /docs}, key_id: k, request: {encrypt: ["$.a"]}}
  - {name: gets, match: {methods: [DELETE]}, key_id: k, request: {encrypt: ["$.a"]}}
envoy:
  unprotected: [{path: /healthz}, {prefix: /static/}]
`

// TestRoutesPickRkmsPolicy simulates Envoy's first-match over the generated routes for many
// requests and checks each against rkms's own selection: a route that names a policy names the
// one rkms would select, and an unprotected route only takes bodiless GET/HEAD requests that no
// policy selects.
func TestRoutesPickRkmsPolicy(t *testing.T) {
	for name, text := range map[string]string{"mixed": mixed, "overlapping": overlapping} {
		cfg := load(t, text)
		rs, err := routes(cfg)
		if err != nil {
			t.Fatal(err)
		}
		set, err := cfg.PolicySet()
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for _, path := range []string{"/", "/healthz", "/HEALTHZ", "/healthz/x", "/static/a.css", "/Static/a.css", "/static",
			"/api", "/API/x", "/api/users", "/api/Users/1", "/apix", "/docs", "/Docs/x", "/docs/x", "/DOCS/X/1", "/Docs/xy",
			"/patients", "/PATIENTS/1", "/patientsx", "/Files/a", "/files/a", "/reports/1", "/imports", "/other"} {
			for _, method := range []string{"GET", "HEAD", "POST", "PUT", "DELETE"} {
				for _, body := range []bool{false, true} {
					got, ok := envoyPick(t, rs, method, path, body)
					if !ok {
						t.Fatalf("%s: %s %s (body %v): no route (the catch-all is missing)", name, method, path, body)
					}
					want, _, err := set.Select("", policy.Request{Method: method, Path: path, HasBody: body})
					if err != nil {
						t.Fatalf("%s: select %s %s: %v", name, method, path, err)
					}
					switch {
					case got == unprotected && (want != nil || body || method != "GET" && method != "HEAD"):
						t.Errorf("%s: %s %s (body %v) skips rkms, which selects %v", name, method, path, body, policyName(want))
					case got != unprotected && got != "" && got != policyName(want):
						t.Errorf("%s: %s %s (body %v): the route names %q, rkms selects %q", name, method, path, body, got, policyName(want))
					}
					checked++
				}
			}
		}
		t.Logf("%s: %d requests", name, checked)
	}
}

const unprotected = "(unprotected)"

func policyName(p *policy.Policy) string {
	if p == nil {
		return ""
	}
	return p.Name()
}

// envoyPick returns what the first route Envoy would match does: the policy it names, "" when it
// names none (rkms decides), or unprotected when ext_proc is off. A body is sent with a
// content-length header.
func envoyPick(t *testing.T, rs []*routev3.Route, method, path string, body bool) (string, bool) {
	t.Helper()
	for _, r := range rs {
		if !routeMatches(t, r.GetMatch(), method, path, body) {
			continue
		}
		name, off := routePolicy(t, r)
		if off {
			return unprotected, true
		}
		return name, true
	}
	return "", false
}

func routeMatches(t *testing.T, m *routev3.RouteMatch, method, path string, body bool) bool {
	caseSens := m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()
	switch {
	case m.GetPath() != "":
		if path != m.GetPath() {
			return false
		}
	case caseSens && !strings.HasPrefix(path, m.GetPrefix()),
		!caseSens && !strings.HasPrefix(strings.ToLower(path), strings.ToLower(m.GetPrefix())):
		return false
	}
	for _, h := range m.GetHeaders() {
		switch {
		case h.GetName() == ":method":
			if !regexp.MustCompile("^(?:" + h.GetStringMatch().GetSafeRegex().GetRegex() + ")$").MatchString(method) {
				return false
			}
		case h.GetName() == "content-length" && !h.GetPresentMatch():
			if body {
				return false
			}
		case h.GetName() == "transfer-encoding" && !h.GetPresentMatch():
		case h.GetName() == ":path":
			if !regexp.MustCompile("^(?:" + h.GetStringMatch().GetSafeRegex().GetRegex() + ")$").MatchString(path) {
				return false
			}
		default:
			t.Fatalf("header matcher %v not simulated", h)
		}
	}
	return true
}

// routePolicy returns the policy route r names ("" for none) and whether every ext_proc filter
// is off on it. The policy may be named by the main ext_proc filter or by another one that the
// route enables (envoy.config.route.v3.FilterConfig), the main one then being off.
func routePolicy(t *testing.T, r *routev3.Route) (policy string, off bool) {
	t.Helper()
	off = true
	for name, a := range r.GetTypedPerFilterConfig() {
		var ep extprocv3.ExtProcPerRoute
		if name != filterExtProc && !a.MessageIs(&routev3.FilterConfig{}) {
			continue
		}
		if name != filterExtProc {
			var fc routev3.FilterConfig
			if err := a.UnmarshalTo(&fc); err != nil {
				t.Fatal(err)
			}
			if fc.GetConfig() != nil && !fc.GetConfig().MessageIs(&ep) {
				continue // another filter's FilterConfig
			}
		}
		if filterOff, set := envoytest.PerRoute(t, a, &ep); filterOff || !set {
			continue
		}
		if ep.GetDisabled() {
			continue
		}
		off = false
		for _, md := range ep.GetOverrides().GetGrpcInitialMetadata() {
			if md.GetKey() == extproc.PolicyMetadataKey {
				policy = md.GetValue()
			}
		}
	}
	if r.GetTypedPerFilterConfig()[filterExtProc] == nil {
		off = false // the main filter is on by default
	}
	return policy, off
}
