package envoy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	celv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/filters/cel/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/lua/v3" // TestCheckNoRerouteCatches
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

// Static checks of the bypass protection and local replies (README.md). bypass_test.go runs the
// same configuration in the real Envoy; these catch an edit that would weaken it quietly.

// checkStampCheck: ext_proc keeps rkms's metadata, and the rbac filter lets through only
// requests carrying rkms.processed == true.
func checkStampCheck(t *testing.T, ep *extprocfilterv3.ExternalProcessor, rbac *rbacfilterv3.RBAC) {
	t.Helper()
	if ns := ep.GetMetadataOptions().GetReceivingNamespaces().GetUntyped(); !slices.Equal(ns, []string{"rkms"}) {
		t.Errorf("ext_proc receiving namespaces %v, want [rkms]: without it Envoy drops rkms's stamp", ns)
	}
	if rbac.GetMatcher() != nil || rbac.GetShadowRules() != nil || rbac.GetShadowMatcher() != nil {
		t.Error("rbac: matcher or shadow rules would replace or dilute the stamp check")
	}
	rules := rbac.GetRules()
	pols := rules.GetPolicies()
	if rules.GetAction().String() != "ALLOW" || len(pols) != 1 {
		t.Fatalf("rbac rules %v: want one ALLOW policy", rules)
	}
	for name, p := range pols {
		if len(p.GetPermissions()) != 1 || !p.GetPermissions()[0].GetAny() || len(p.GetPrincipals()) != 1 {
			t.Fatalf("rbac policy %s: want permission any and a single principal, got %v", name, p)
		}
		sm := p.GetPrincipals()[0].GetSourcedMetadata()
		m := sm.GetMetadataMatcher()
		if sm.GetMetadataSource().String() != "DYNAMIC" || m.GetFilter() != "rkms" || len(m.GetPath()) != 1 ||
			m.GetPath()[0].GetKey() != "processed" || !m.GetValue().GetBoolMatch() || m.GetInvert() {
			t.Errorf("rbac policy %s principal %v: want dynamic metadata rkms.processed == true", name, p.GetPrincipals()[0])
		}
	}
}

// checkRoutes: the stamp check is off only on routes that also skip ext_proc (with healthOnly:
// and match one exact path for GET or HEAD); routes that name a policy match case-insensitively.
func checkRoutes(t *testing.T, routes []*routev3.Route, healthOnly bool) {
	t.Helper()
	for _, r := range routes {
		m := r.GetMatch()
		where := m.GetPath() + m.GetPrefix()
		if a := r.GetTypedPerFilterConfig()["envoy.filters.http.rbac"]; a != nil {
			pr := &rbacfilterv3.RBACPerRoute{}
			envoytest.PerRoute(t, a, pr) // left out of the chain (FilterConfig disabled) or no rbac: off
			if pr.GetRbac() == nil && !routeDisabled(t, r) {
				t.Errorf("route %s: the stamp check is off but ext_proc is on: an unprocessed request would pass", where)
			}
			if pr.GetRbac() == nil && healthOnly && (m.GetPath() == "" || !getOrHead(m) || !bodiless(m)) {
				t.Errorf("route %s: the stamp check is off, so it must match one exact path for GET/HEAD without a body only", where)
			}
			if pr.GetRbac() != nil {
				t.Errorf("route %s: a per-route rbac replaces the stamp check", where)
			}
		}
		if routePolicy(t, r) != "" && (m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()) {
			t.Errorf("route %s names a policy but matches case-sensitively: /PATIENTS would dodge it", where)
		}
	}
}

// bodiless: the route matches only requests without content-length and transfer-encoding, so
// that no body reaches the app past rkms.
func bodiless(m *routev3.RouteMatch) bool {
	absent := map[string]bool{}
	for _, h := range m.GetHeaders() {
		if pm, ok := h.GetHeaderMatchSpecifier().(*routev3.HeaderMatcher_PresentMatch); ok && !pm.PresentMatch && !h.GetInvertMatch() {
			absent[h.GetName()] = true
		}
	}
	return absent["content-length"] && absent["transfer-encoding"]
}

func getOrHead(m *routev3.RouteMatch) bool {
	for _, h := range m.GetHeaders() {
		if h.GetName() == ":method" && h.GetStringMatch().GetSafeRegex().GetRegex() == "GET|HEAD" {
			return true
		}
	}
	return false
}

// checkLocalReplies: the first mapper keeps replies that are JSON already (rkms's), every other
// one writes {"error": ...}, the last one catches everything, and there is no global body_format
// (it would apply to rkms's replies too).
func checkLocalReplies(t *testing.T, lr *hcmv3.LocalReplyConfig) {
	t.Helper()
	ms := lr.GetMappers()
	if lr.GetBodyFormat() != nil || len(ms) < 2 {
		t.Fatalf("local_reply_config %v: want mappers and no body_format", lr)
	}
	keep := ms[0]
	if cel(t, keep.GetFilter()) != "'content-type' in response.headers && response.headers['content-type'].startsWith('application/json')" ||
		keep.GetBody() != nil || keep.GetBodyFormatOverride() != nil || keep.GetStatusCode() != nil || keep.GetHeadersToAdd() != nil {
		t.Errorf("first mapper %v: want one that keeps JSON replies unchanged", keep)
	}
	for i, m := range ms[1:] {
		js := m.GetBodyFormatOverride().GetJsonFormat().AsMap()
		if len(js) != 1 || js["error"] != "%LOCAL_REPLY_BODY%" || m.GetStatusCode() != nil {
			t.Errorf("mapper %d: body format %v, want {error: %%LOCAL_REPLY_BODY%%} and the status kept", i+1, js)
		}
		if cel(t, m.GetFilter()) == "" {
			t.Errorf("mapper %d has no CEL filter", i+1)
		}
	}
	if last := ms[len(ms)-1]; cel(t, last.GetFilter()) != "true" || last.GetBody() != nil {
		t.Errorf("last mapper %v: want a catch-all that keeps Envoy's text", last)
	}
}

// cel returns the expression of a CEL access log filter, "" for another filter.
func cel(t *testing.T, f *accesslogv3.AccessLogFilter) string {
	t.Helper()
	ef := f.GetExtensionFilter()
	if ef == nil || ef.GetName() != "envoy.access_loggers.extension_filters.cel" {
		return ""
	}
	e := unpack(t, ef.GetTypedConfig(), &celv3.ExpressionFilter{})
	return strings.TrimSpace(e.GetExpression())
}

// errRecorder is a testing.TB that records Errorf instead of failing.
type errRecorder struct {
	testing.TB
	errs []string
}

func (r *errRecorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestCheckNoRerouteCatches: the check that guards the unprotected routes' shortened filter
// chain catches a jwt_authn provider that clears the route cache and a filter it does not know
// (a Lua filter could rewrite the path and clear it), and passes the shipped chain.
func TestCheckNoRerouteCatches(t *testing.T) {
	cfg, err := Config("ingress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		edit   func(string) string
		errors int
	}{
		{"shipped", func(s string) string { return s }, 0},
		{"jwt_authn clears the route cache", func(s string) string {
			return envoytest.ReplaceOnce(t, s, "require_expiration: true\n", "require_expiration: true\n                          clear_route_cache: true\n")
		}, 1},
		{"unknown filter", func(s string) string {
			return envoytest.ReplaceOnce(t, s, "                  - name: envoy.filters.http.router\n",
				"                  - name: envoy.filters.http.lua\n                    typed_config:\n                      \"@type\": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua\n                      default_source_code: {inline_string: \"function envoy_on_request(h) end\"}\n                  - name: envoy.filters.http.router\n")
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := parse(t, []byte(tc.edit(string(cfg))))
			hcm := unpack(t, b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig(), &hcmv3.HttpConnectionManager{})
			rec := &errRecorder{TB: t}
			envoytest.CheckNoReroute(rec, hcm)
			if len(rec.errs) != tc.errors {
				t.Errorf("%d errors, want %d: %q", len(rec.errs), tc.errors, rec.errs)
			}
		})
	}
}
