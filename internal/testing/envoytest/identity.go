package envoytest

import (
	"slices"
	"strings"
	"testing"
)

// ErrInvalidToken is the error of the shipped configurations' reply when jwt_authn refuses a
// request (local_reply_config).
const ErrInvalidToken = "missing or invalid token"

// runIdentity checks what the configuration tells rkms about the caller, in the real Envoy:
// only a valid bearer token's verified payload (never a client's x-tenant-id) and an
// x-request-id Envoy made itself.
func runIdentity(t *testing.T, s Suite) {
	st := StartConfig(t, Config{Render: s.Render, RkmsTLS: s.RkmsTLS})
	tagged := s.TaggedPrefix + "/1"
	const body = `{"ssn":"123-45-6789"}`

	t.Run("tokens refused before rkms", func(t *testing.T) {
		cases := BadTokens(t, DefaultTestTenant)
		cases = append(cases,
			BadToken{Name: "missing", Token: "", Status: 401},
			BadToken{Name: "in the query string only", Token: "", Status: 401})
		for _, bt := range cases {
			t.Run(bt.Name, func(t *testing.T) {
				path, auth := s.TaggedPrefix, ""
				if bt.Token != "" {
					auth = "Bearer " + bt.Token
				}
				if bt.Name == "in the query string only" {
					path += "?access_token=" + Token(t, DefaultTestTenant)
				}
				n := len(st.Rkms.Streams())
				wantRefused(t, st, bt.Status, ErrInvalidToken, "POST", path, body, "Authorization", auth)
				// ext_proc sees Envoy's reply on its way out (rkms passes it unchanged), never
				// the request.
				for _, str := range st.Rkms.Streams()[n:] {
					if slices.Contains(str.Recv, "request_headers") {
						t.Errorf("ext_proc received the refused request: %+v", str)
					}
				}
			})
		}
		// The requirement belongs to the route, which matches in any case.
		wantRefused(t, st, 401, ErrInvalidToken, "GET", strings.ToUpper(tagged), "", "Authorization", "")
		// Envoy says which kind of failure in www-authenticate (RFC 6750), not in the body.
		r := st.Do(t, "GET", tagged, "", "Authorization", "")
		if h := r.Header.Get("Www-Authenticate"); !strings.HasPrefix(h, "Bearer ") || strings.Contains(h, "invalid_token") {
			t.Errorf("no token: www-authenticate %q, want a Bearer challenge without an error", h)
		}
		r = st.Do(t, "GET", tagged, "", "Authorization", "Bearer "+BadTokens(t, DefaultTestTenant)[0].Token)
		if h := r.Header.Get("Www-Authenticate"); !strings.Contains(h, `error="invalid_token"`) {
			t.Errorf("forged token: www-authenticate %q, want error=\"invalid_token\"", h)
		}
	})

	t.Run("verified payload reaches rkms, x-tenant-id is the token's", func(t *testing.T) {
		r := st.Do(t, "POST", s.TaggedPrefix, body, "Authorization", "Bearer "+Token(t, "acme"), "X-Tenant-Id", "globex")
		wantPassed(t, st, r, "POST "+s.TaggedPrefix+" "+body)
		str, _ := st.Rkms.Last(s.TaggedPrefix)
		if str.JWT["tenant"] != "acme" || str.JWT["iss"] != TestIssuer().Issuer || str.JWT["aud"] != TestIssuer().Audience {
			t.Errorf("ext_proc metadata_context %s.%s = %v, want the token's payload (tenant acme)", JWTNamespace, JWTPayloadKey, str.JWT)
		}
		if got := str.Headers["x-tenant-id"]; !slices.Equal(got, []string{"acme"}) {
			t.Errorf("x-tenant-id at ext_proc %q, want only the token's [acme]", got)
		}
		if got := st.App.LastHeader().Values("X-Tenant-Id"); !slices.Equal(got, []string{"acme"}) {
			t.Errorf("x-tenant-id at the app %q, want only the token's [acme]", got)
		}
		if got := str.Headers["authorization"]; got != nil {
			t.Errorf("the token reached ext_proc: %q", got)
		}
		if got := st.App.LastHeader().Get("Authorization"); got != "" {
			t.Errorf("the token reached the app: %q", got)
		}
	})

	t.Run("other routes: a token is optional, verified when present", func(t *testing.T) {
		r := st.Do(t, "POST", "/notes", body, "Authorization", "", "X-Tenant-Id", "globex", Behaviour, PassThrough)
		wantPassed(t, st, r, "POST /notes "+body)
		str, _ := st.Rkms.Last("/notes")
		if str.JWT != nil || str.Headers["x-tenant-id"] != nil || st.App.LastHeader().Get("X-Tenant-Id") != "" {
			t.Errorf("no token: ext_proc got payload %v and x-tenant-id %q, the app %q; want none",
				str.JWT, str.Headers["x-tenant-id"], st.App.LastHeader().Get("X-Tenant-Id"))
		}
		r = st.Do(t, "POST", "/notes", body, "Authorization", "Bearer "+Token(t, "globex"), Behaviour, PassThrough)
		wantPassed(t, st, r, "POST /notes "+body)
		if str, _ := st.Rkms.Last("/notes"); str.JWT["tenant"] != "globex" {
			t.Errorf("valid token on another route: payload %v, want tenant globex", str.JWT)
		}
		for _, bt := range BadTokens(t, "globex") {
			wantRefused(t, st, bt.Status, ErrInvalidToken, "POST", "/notes", body, "Authorization", "Bearer "+bt.Token)
		}
		// The health check needs no token and ignores a bad one; x-tenant-id is removed there too.
		r = st.Do(t, "GET", "/healthz", "", "Authorization", "Bearer not-a-jwt", "X-Tenant-Id", "globex")
		wantPassed(t, st, r, "GET /healthz ")
		if got := st.App.LastHeader().Get("X-Tenant-Id"); got != "" {
			t.Errorf("GET /healthz: x-tenant-id %q reached the app", got)
		}
	})

	t.Run("request ids are Envoy's", func(t *testing.T) {
		seen := map[string]bool{}
		for i, sent := range []string{"client-chosen-id", "client-chosen-id", ""} {
			var h []string
			if sent != "" {
				h = []string{"X-Request-Id", sent}
			}
			r := st.Do(t, "GET", tagged, "", h...)
			wantPassed(t, st, r, "GET "+tagged+" ")
			str, _ := st.Rkms.Last(tagged)
			got := str.Headers["x-request-id"]
			app := st.App.LastHeader().Values("X-Request-Id")
			if len(got) != 1 || got[0] == sent || len(got[0]) != 36 || !slices.Equal(app, got) || seen[got[0]] {
				t.Errorf("request %d: client sent %q; ext_proc got x-request-id %q, the app %q: want one fresh UUID, the same for both",
					i, sent, got, app)
			}
			if len(got) > 0 {
				seen[got[0]] = true
			}
		}
	})
}
