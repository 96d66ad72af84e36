package envoy

import (
	"slices"
	"testing"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/rkms/rkms/internal/devjwt"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

// Static checks of who the caller is (README.md, "Verified tenants (JWT)", "Peer identity",
// "Request ids"). identity_e2e_test.go and internal/testing/envoytest run the same settings in the real
// Envoy; these catch an edit that would weaken them quietly.

// The jwt_authn requirements the routes name.
const (
	requireToken    = "tenant"            // a valid token is required
	requireIfThere  = "tenant_if_present" // a token is verified when present
	tenantsProvider = "tenants"
)

// checkVerifiedTenants: x-tenant-id is removed before anything reads it; jwt_authn verifies
// bearer tokens from the Authorization header only against the marked local JWKS, with
// devjwt's issuer and audience, an expiry, and its payload in the metadata that ext_proc
// forwards; every route says what it requires (policy routes: a token; the health check:
// nothing; others: a token when present).
func checkVerifiedTenants(t *testing.T, filters []*hcmv3.HttpFilter, ep *extprocfilterv3.ExternalProcessor, routes []*routev3.Route) {
	t.Helper()
	// Only the compressor, which reads accept-encoding, comes before it.
	hm := unpack(t, filterNamed(t, filters, "envoy.filters.http.header_mutation").GetTypedConfig(), &headermutationv3.HeaderMutation{})
	var removed []string
	for _, m := range hm.GetMutations().GetRequestMutations() {
		removed = append(removed, m.GetRemove())
	}
	if !slices.Equal(removed, []string{"x-tenant-id"}) || hm.GetMutations().GetResponseMutations() != nil {
		t.Errorf("header_mutation %v: want exactly the removal of the request's x-tenant-id", hm)
	}

	ja := unpack(t, filterNamed(t, filters, "envoy.filters.http.jwt_authn").GetTypedConfig(), &jwtv3.JwtAuthentication{})
	if len(ja.GetProviders()) != 1 || len(ja.GetRules()) != 0 || ja.GetFilterStateRules() != nil || ja.GetBypassCorsPreflight() {
		t.Errorf("jwt_authn: want one provider, no rules (routes name their requirement), no filter state rules, no CORS bypass")
	}
	p := ja.GetProviders()[tenantsProvider]
	switch {
	case p == nil:
		t.Fatalf("jwt_authn: no provider %q", tenantsProvider)
	case p.GetIssuer() != devjwt.DefaultIssuer || !slices.Equal(p.GetAudiences(), []string{devjwt.DefaultAudience}):
		t.Errorf("provider issuer %q audiences %v: want %q and [%q] (devjwt's, which the tests and the demo sign with)",
			p.GetIssuer(), p.GetAudiences(), devjwt.DefaultIssuer, devjwt.DefaultAudience)
	case p.GetLocalJwks().GetFilename() != "/etc/envoy/jwks.json" || p.GetRemoteJwks() != nil:
		t.Errorf("provider keys %v: want local_jwks.filename /etc/envoy/jwks.json", p.GetJwksSourceSpecifier())
	case !p.GetRequireExpiration():
		t.Error("provider accepts tokens without exp")
	case p.GetForward():
		t.Error("provider forwards the token to rkms and the app")
	case p.GetPayloadInMetadata() != envoytest.JWTPayloadKey:
		t.Errorf("payload_in_metadata %q, want %q (rkms reads it there)", p.GetPayloadInMetadata(), envoytest.JWTPayloadKey)
	case len(p.GetFromParams()) != 0 || len(p.GetFromCookies()) != 0 || len(p.GetFromHeaders()) != 1 ||
		p.GetFromHeaders()[0].GetName() != "Authorization" || p.GetFromHeaders()[0].GetValuePrefix() != "Bearer ":
		t.Errorf("token locations %v %v %v: want only Authorization: Bearer", p.GetFromHeaders(), p.GetFromParams(), p.GetFromCookies())
	}
	for _, c := range p.GetClaimToHeaders() {
		if c.GetHeaderName() != "x-tenant-id" || c.GetClaimName() != devjwt.TenantClaim {
			t.Errorf("claim_to_headers %v: only the tenant claim may become x-tenant-id", c)
		}
	}
	reqs := ja.GetRequirementMap()
	if len(reqs) != 2 || reqs[requireToken].GetProviderName() != tenantsProvider {
		t.Errorf("requirement %q: %v, want provider %s", requireToken, reqs[requireToken], tenantsProvider)
	}
	any := reqs[requireIfThere].GetRequiresAny().GetRequirements()
	if len(any) != 2 || any[0].GetProviderName() != tenantsProvider || any[1].GetAllowMissing() == nil {
		t.Errorf("requirement %q: %v, want provider %s or a missing token (a bad one still fails)", requireIfThere, any, tenantsProvider)
	}

	for _, r := range routes {
		m := r.GetMatch()
		where := m.GetPath() + m.GetPrefix()
		a := r.GetTypedPerFilterConfig()["envoy.filters.http.jwt_authn"]
		if a == nil {
			t.Errorf("route %s has no jwt_authn requirement: say which (a route without one verifies nothing)", where)
			continue
		}
		pr := unpack(t, a, &jwtv3.PerRouteConfig{})
		switch {
		case routePolicy(t, r) != "" && pr.GetRequirementName() != requireToken:
			t.Errorf("route %s names a policy but requires %v, want a token (%s)", where, pr, requireToken)
		case pr.GetDisabled() && !routeDisabled(t, r):
			t.Errorf("route %s: jwt_authn disabled on a route with ext_proc", where)
		case !pr.GetDisabled() && pr.GetRequirementName() == "":
			t.Errorf("route %s: %v names no requirement", where, pr)
		}
	}

	if ns := ep.GetMetadataOptions().GetForwardingNamespaces().GetUntyped(); !slices.Equal(ns, []string{envoytest.JWTNamespace}) {
		t.Errorf("ext_proc forwarding namespaces %v, want [%s]: rkms would get no verified claims", ns, envoytest.JWTNamespace)
	}
	if ns := ep.GetMetadataOptions().GetForwardingNamespaces().GetTyped(); len(ns) != 0 {
		t.Errorf("ext_proc forwards typed namespaces %v", ns)
	}
}

// checkPeerAttributes: ext_proc sends rkms the client certificate's SANs and the client's
// address (streams are charged to it).
func checkPeerAttributes(t *testing.T, ep *extprocfilterv3.ExternalProcessor) {
	t.Helper()
	want := []string{envoytest.AttrPeerURISAN, envoytest.AttrPeerDNSSAN, envoytest.AttrSourceAddress}
	if got := ep.GetRequestAttributes(); !slices.Equal(got, want) {
		t.Errorf("ext_proc request_attributes %v, want %v", got, want)
	}
}

// checkRequestIDs: Envoy replaces a client's x-request-id with its own.
func checkRequestIDs(t *testing.T, hcm *hcmv3.HttpConnectionManager) {
	t.Helper()
	if !hcm.GetUseRemoteAddress().GetValue() || hcm.GetPreserveExternalRequestId() ||
		(hcm.GetGenerateRequestId() != nil && !hcm.GetGenerateRequestId().GetValue()) || hcm.GetXffNumTrustedHops() != 0 ||
		len(hcm.GetInternalAddressConfig().GetCidrRanges()) != 0 {
		t.Errorf("request ids: use_remote_address %v, preserve_external_request_id %v, generate_request_id %v, xff_num_trusted_hops %d, internal cidrs %v: "+
			"want a fresh x-request-id for every request (true, false, true, 0, none)",
			hcm.GetUseRemoteAddress(), hcm.GetPreserveExternalRequestId(), hcm.GetGenerateRequestId(),
			hcm.GetXffNumTrustedHops(), hcm.GetInternalAddressConfig().GetCidrRanges())
	}
}

// filterNamed returns the HTTP filter named name.
func filterNamed(t *testing.T, filters []*hcmv3.HttpFilter, name string) *hcmv3.HttpFilter {
	t.Helper()
	for _, f := range filters {
		if f.GetName() == name {
			return f
		}
	}
	t.Fatalf("no filter %s", name)
	return nil
}
