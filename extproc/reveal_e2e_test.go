package extproc

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rkms/rkms/envoy"
	"github.com/rkms/rkms/extproc/policy"
	"github.com/rkms/rkms/internal/devjwt"
	"github.com/rkms/rkms/internal/testing/env"
	"github.com/rkms/rkms/internal/testing/envoytest"
)

// TestEnvoyReveal is issue 21's acceptance through the real Envoy (envoy/ingress.yaml, whose
// jwt_authn verifies the tokens) and the real keyring: one stored record read with four tokens
// (billing, support, analytics, none) shows its fields full, masked, tokenized and redacted; a
// token whose role claim was forged or tampered with is refused by Envoy before rkms or the app
// sees it; tokens of one tenant never equal another tenant's for the same values.
func TestEnvoyReveal(t *testing.T) {
	testenv.Integration(t)
	cfg, err := envoy.Config("ingress.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var pols []policy.Config
	pols = revealPolicies(t, revealPolicyYAML)(pols)
	s := startStackWith(t, cfg, Options{}, stackConfig{upstream: "app", policies: pols})
	iss := envoytest.TestIssuer()
	bearer := func(tenant string, claims map[string]any) []string {
		c := iss.Tenant(tenant, time.Now(), time.Hour)
		for k, v := range claims {
			c[k] = v
		}
		tok, err := iss.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return []string{"Authorization", "Bearer " + tok}
	}
	const ada = `{"name":"Ada","ssn":"123-45-6789","cards":[{"number":"4111111111111111"}],"contact":{"email":"ada.l@example.com"},"age":36}`
	post := func(tenant string) string {
		r := s.do(t, "POST", "/people", ada, bearer(tenant, nil)...)
		if r.status != 201 {
			t.Fatalf("POST as %s: %d %s", tenant, r.status, r.body)
		}
		id, _ := field(t, r.body, "id").(string)
		stored, _ := s.app.Record("people", id)
		for _, v := range []string{"123-45-6789", "4111111111111111", "ada.l@example.com"} {
			if bytes.Contains(stored, []byte(v)) {
				t.Fatalf("the app stored %s in plaintext: %s", v, stored)
			}
		}
		return id
	}
	acmeID, globexID := post("acme"), post("globex")

	tokenRE := regexp.MustCompile(`"ssn":"(tok_[A-Za-z0-9_-]{22})"`)
	tokens := map[string]string{}
	for _, tenant := range []string{"acme", "globex"} {
		id := map[string]string{"acme": acmeID, "globex": globexID}[tenant]
		for _, tc := range []struct {
			caller string
			claims map[string]any
			want   string
		}{
			{"billing", map[string]any{"role": "billing"},
				`"ssn":null,"cards":[{"number":"4111111111111111"}],"contact":{"email":null},"age":null}`},
			{"support", map[string]any{"role": "support"},
				`"ssn":"*******6789","cards":[{"number":"************1111"}],"contact":{"email":"a****@example.com"},"age":null}`},
			{"analytics", map[string]any{"scope": "openid analytics"},
				`"ssn":"TOKEN","cards":[{"number":null}],"contact":{"email":null},"age":null}`},
			{"none", nil,
				`"ssn":null,"cards":[{"number":null}],"contact":{"email":null},"age":null}`},
		} {
			t.Run(tenant+"/"+tc.caller, func(t *testing.T) {
				r := s.do(t, "GET", "/people/"+id, "", bearer(tenant, tc.claims)...)
				got := string(r.body)
				if m := tokenRE.FindStringSubmatch(got); m != nil {
					tokens[tenant] = m[1]
					got = strings.Replace(got, m[1], "TOKEN", 1)
				}
				want := `{"id":"` + id + `","name":"Ada",` + tc.want
				if r.status != 200 || got != want {
					t.Errorf("%d\n got %s\nwant %s", r.status, got, want)
				}
			})
		}
	}
	if tokens["acme"] == "" || tokens["acme"] == tokens["globex"] {
		t.Errorf("analytics tokens of the same SSN: acme %q, globex %q: want two different tokens", tokens["acme"], tokens["globex"])
	}
	t.Run("the same token on every read", func(t *testing.T) {
		r := s.do(t, "GET", "/people/"+acmeID, "", bearer("acme", map[string]any{"scope": "analytics"})...)
		if m := tokenRE.FindStringSubmatch(string(r.body)); m == nil || m[1] != tokens["acme"] {
			t.Errorf("second read: %s, want token %s", r.body, tokens["acme"])
		}
	})
	t.Run("another tenant's billing role reads nothing of acme's", func(t *testing.T) {
		r := s.do(t, "GET", "/people/"+acmeID, "", bearer("globex", map[string]any{"role": "billing"})...)
		if r.status != 502 || bytes.Contains(r.body, []byte("4111")) {
			t.Errorf("%d %s, want 502 without the card number", r.status, r.body)
		}
	})
	t.Run("a forged role claim is refused by Envoy", func(t *testing.T) {
		forger, err := devjwt.Generate(envoytest.TestKeyID)
		if err != nil {
			t.Fatal(err)
		}
		c := iss.Tenant("acme", time.Now(), time.Hour)
		c["role"] = "billing"
		forged, err := forger.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		// A support token whose payload is swapped for a billing one: the signature no longer holds.
		support := strings.Split(bearer("acme", map[string]any{"role": "support"})[1], ".")
		billing := strings.Split(bearer("acme", map[string]any{"role": "billing"})[1], ".")
		tampered := support[0] + "." + billing[1] + "." + support[2]
		unsigned, err := devjwt.Unsigned(c)
		if err != nil {
			t.Fatal(err)
		}
		n, seen := len(s.app.Received()), requestsSeen(s.streams)
		for name, auth := range map[string]string{"forged": "Bearer " + forged, "tampered": tampered, "unsigned": "Bearer " + unsigned} {
			r := s.do(t, "GET", "/people/"+acmeID, "", "Authorization", auth)
			if r.status != 401 || bytes.Contains(r.body, []byte("4111")) {
				t.Errorf("%s role claim: %d %s, want Envoy's 401", name, r.status, r.body)
			}
		}
		if len(s.app.Received()) != n || requestsSeen(s.streams) != seen {
			t.Error("a request with a forged token reached the app or rkms")
		}
	})
}
