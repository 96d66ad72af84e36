package envoy

import (
	"testing"

	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

// TestTenantHeaderRemoval: two mechanisms keep a client's x-tenant-id from rkms and the app in
// Envoy 1.40, and each is enough on its own (README.md, "Verified tenants (JWT)"): the
// header_mutation filter, and jwt_authn, which clears the headers named in claim_to_headers on
// every route before it verifies anything. Without both, the client's header goes through: that
// is why ingress.yaml does not rely on claim_to_headers, which an operator may drop.
func TestTenantHeaderRemoval(t *testing.T) {
	testenv.Integration(t)
	const (
		removal  = "                          - remove: x-tenant-id\n"
		claimHdr = "                          claim_to_headers: [{header_name: x-tenant-id, claim_name: tenant}]\n"
	)
	for _, tc := range []struct {
		name         string
		drop         []string
		wantStripped bool
	}{
		{"shipped", nil, true},
		{"header_mutation alone (no claim_to_headers)", []string{claimHdr}, true},
		{"jwt_authn's sanitizing alone (no header_mutation rule)", []string{removal}, true},
		{"neither", []string{removal, claimHdr}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := envoytest.Start(t, ingress(func(t testing.TB, cfg string) string {
				for _, d := range tc.drop {
					repl := ""
					if d == removal {
						repl = "                          - remove: x-not-a-tenant\n" // keep the list non-empty
					}
					cfg = envoytest.ReplaceOnce(t, cfg, d, repl)
				}
				return cfg
			}), false)
			for _, req := range []struct {
				method, path string
				headers      []string
			}{
				{"GET", "/patients/1", nil},                        // token required
				{"GET", "/notes", []string{"Authorization", ""}},   // no token, optional
				{"GET", "/healthz", []string{"Authorization", ""}}, // jwt_authn disabled
				{"GET", "/notes", nil},                             // token, optional
			} {
				h := append([]string{"X-Tenant-Id", "globex"}, req.headers...)
				if r := st.Do(t, req.method, req.path, "", h...); r.Status != 200 {
					t.Fatalf("%s %s: %d %s", req.method, req.path, r.Status, r.Body)
				}
				got := st.App.LastHeader().Values("X-Tenant-Id")
				leaked := len(got) > 0 && got[0] == "globex"
				if leaked == tc.wantStripped {
					t.Errorf("%s %s: the app got x-tenant-id %q (stripped wanted: %v)", req.method, req.path, got, tc.wantStripped)
				}
				if s, ok := st.Rkms.Last(req.path); ok && req.path != "/healthz" {
					if hv := s.Headers["x-tenant-id"]; (len(hv) > 0 && hv[0] == "globex") == tc.wantStripped {
						t.Errorf("%s %s: ext_proc got x-tenant-id %q (stripped wanted: %v)", req.method, req.path, hv, tc.wantStripped)
					}
				}
			}
		})
	}
}
