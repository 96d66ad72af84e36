package policy

import (
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// revealYAML is the example policy, with a fourth field no rule names.
const revealYAML = `
name: people
match: {path_prefix: /people}
key_id: "tenant-{jwt:tenant}"
trusted_headers: [x-role]
request:
  encrypt: ["$.ssn", "$.cards[*].number", "$.contact.email", "$.notes"]
response:
  decrypt: ["$.ssn", "$.cards[*].number", "$.contact.email", "$.notes"]
  reveal:
    default: redact
    redact_as: "[redacted]"
    audit: true
    rules:
      - name: billing
        when: {jwt: {role: billing}}
        fields: {"$.cards[*].number": full}
      - name: support
        when: {jwt: {role: support}}
        fields: {"$.ssn": "mask:last4", "$.contact.email": "mask:email", "$.cards[*].number": "mask:last4"}
      - name: analytics
        when: {jwt: {scope: analytics}}
        fields: {"$.ssn": token}
      - name: ops
        when: {header: {x-role: ops}, peer: {uri_san: "spiffe://example.org/ops"}}
        fields: {"$.ssn": ciphertext}
`

func revealPolicy(t *testing.T, src string) *Policy {
	t.Helper()
	var c Config
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		t.Fatal(err)
	}
	ps, err := Compile([]Config{c})
	if err != nil {
		t.Fatal(err)
	}
	return ps.Policies()[0]
}

// mapClaims are claims whose values may be lists (as a ClaimMatcher), like a JWT payload.
type mapClaims map[string]any

func (m mapClaims) Claim(name string) (string, bool) { s, ok := m[name].(string); return s, ok }

func (m mapClaims) HasClaim(name, value string) bool { return ClaimHolds(name, m[name], value) }

func TestRevealResolve(t *testing.T) {
	p := revealPolicy(t, revealYAML)
	r := p.Reveals()
	if got := r.Fields(); !slices.Equal(got, []string{"$.ssn", "$.cards[*].number", "$.contact.email", "$.notes"}) {
		t.Fatalf("fields %v", got)
	}
	if string(r.Redacted()) != `"[redacted]"` || !r.Audit() {
		t.Errorf("redacted %s audit %v", r.Redacted(), r.Audit())
	}
	ops := headerList{{"x-role", "ops"}}
	for _, tc := range []struct {
		name string
		src  Source
		want []string // action (rule) per field, in Fields order
	}{
		{"nobody", Source{}, []string{"redact (default)", "redact (default)", "redact (default)", "redact (default)"}},
		{"billing", Source{JWT: claimMap{"role": "billing"}}, []string{"redact (default)", "full (billing)", "redact (default)", "redact (default)"}},
		{"support", Source{JWT: claimMap{"role": "support"}}, []string{"mask:last4 (support)", "mask:last4 (support)", "mask:email (support)", "redact (default)"}},
		{"role is case-sensitive", Source{JWT: claimMap{"role": "Billing"}}, []string{"redact (default)", "redact (default)", "redact (default)", "redact (default)"}},
		{"scope word", Source{JWT: claimMap{"scope": "read analytics write"}}, []string{"token (analytics)", "redact (default)", "redact (default)", "redact (default)"}},
		{"scope prefix is not a word", Source{JWT: claimMap{"scope": "analytics:read"}}, []string{"redact (default)", "redact (default)", "redact (default)", "redact (default)"}},
		{"role is not split on spaces", Source{JWT: claimMap{"role": "support billing"}}, []string{"redact (default)", "redact (default)", "redact (default)", "redact (default)"}},
		{"role list (ClaimMatcher)", Source{JWT: mapClaims{"role": []any{"support", "billing"}, "scope": "analytics"}},
			[]string{"mask:last4 (support)", "full (billing)", "mask:email (support)", "redact (default)"}},
		{"first rule wins per field", Source{JWT: claimMap{"role": "support", "scope": "analytics"}},
			[]string{"mask:last4 (support)", "mask:last4 (support)", "mask:email (support)", "redact (default)"}},
		{"header alone is not enough", Source{Headers: &ops}, []string{"redact (default)", "redact (default)", "redact (default)", "redact (default)"}},
		{"header and SAN", Source{Headers: &ops, PeerURISAN: "spiffe://example.org/ops"}, []string{"ciphertext (ops)", "redact (default)", "redact (default)", "redact (default)"}},
		{"header twice", Source{Headers: &headerList{{"x-role", "ops"}, {"X-Role", "ops"}}, PeerURISAN: "spiffe://example.org/ops"},
			[]string{"redact (default)", "redact (default)", "redact (default)", "redact (default)"}},
	} {
		ds := r.Resolve(nil, &tc.src)
		var got []string
		for _, d := range ds {
			got = append(got, d.Action.String()+" ("+d.Rule+")")
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if p2 := revealPolicy(t, strings.Replace(revealYAML, "  reveal:\n    default: redact\n", "  reveal:\n", 1)); p2.Reveals().Resolve(nil, &Source{})[0].Action.String() != "redact" {
		t.Error("an empty default is not redact")
	}
}

func TestRevealCompileErrors(t *testing.T) {
	for _, tc := range []struct{ name, from, to, want string }{
		{"bad default", "default: redact", "default: show", "response.reveal.default: invalid reveal action"},
		{"bad action", `"$.ssn": token`, `"$.ssn": "mask:keep(1,99)"`, `response.reveal.rules[2].fields["$.ssn"]: invalid reveal action "mask:keep(1,99)": suffix: 99 is more than 64`},
		{"untrusted header", "header: {x-role: ops}", "header: {x-other: ops}", "when.header.x-other: the header is not in trusted_headers"},
		{"bad peer key", "peer: {uri_san:", "peer: {subject:", "when.peer.subject: want uri_san or dns_san"},
		{"no condition", "when: {jwt: {role: billing}}", "when: {}", "response.reveal.rules[0].when: name at least one condition"},
		{"empty claim value", "when: {jwt: {role: billing}}", `when: {jwt: {role: ""}}`, "when.jwt.role: the value must not be empty"},
		{"no fields", `fields: {"$.cards[*].number": full}`, "fields: {}", "response.reveal.rules[0].fields: name at least one field"},
		{"bad selector", `fields: {"$.cards[*].number": full}`, `fields: {"$.[": full}`, `response.reveal.rules[0].fields: selector "$.[":`},
		{"reserved name", "name: billing", "name: default", `response.reveal.rules[0].name: "default"`},
		{"duplicate name", "name: support", "name: billing", `response.reveal.rules[1].name: duplicate rule name "billing"`},
		{"request reveal", "request:\n", "request:\n  reveal: {default: full}\n", "request.reveal: only responses take reveal rules"},
	} {
		src := strings.Replace(revealYAML, tc.from, tc.to, 1)
		if src == revealYAML {
			t.Fatalf("%s: %q not found", tc.name, tc.from)
		}
		var c Config
		if err := yaml.Unmarshal([]byte(src), &c); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		_, err := Compile([]Config{c})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// A response_only policy never sees request headers.
	var c Config
	src := strings.Replace(strings.Replace(revealYAML, "name: people\n", "name: people\nresponse_only: true\ndecrypt_only: true\n", 1), "request:\n  encrypt: [\"$.ssn\", \"$.cards[*].number\", \"$.contact.email\", \"$.notes\"]\n", "", 1)
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		t.Fatal(err)
	}
	if _, err := Compile([]Config{c}); err == nil || !strings.Contains(err.Error(), "a response_only policy never sees the request headers") {
		t.Errorf("response_only with a header condition: %v", err)
	}
}

func TestRevealWarnings(t *testing.T) {
	src := strings.Replace(revealYAML, `fields: {"$.ssn": token}`, `fields: {"$.ssn": token, "$.phone": full}`, 1)
	src = strings.Replace(src, "      - name: ops\n", "      - name: support-again\n        when: {jwt: {role: support, team: eu}}\n        fields: {\"$.ssn\": full}\n      - name: ops\n", 1)
	var c Config
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		t.Fatal(err)
	}
	ws := strings.Join(Warnings([]Config{c}), "\n")
	for _, want := range []string{
		"rules[2] (analytics): field $.phone is not a response.decrypt field of the policy",
		"rules[4] (ops): when.peer matches only when Envoy's listener verifies client certificates",
		"rules[3] (support-again): never applies to $.ssn: rules[1] (support) comes first",
		"no rule names $.notes: every caller gets the default (redact)",
	} {
		if !strings.Contains(ws, want) {
			t.Errorf("warnings lack %q:\n%s", want, ws)
		}
	}
	if strings.Contains(ws, "$.cards") || strings.Contains(ws, "default: full") {
		t.Errorf("unexpected warnings:\n%s", ws)
	}
	c.Response.Reveal.Default = "full"
	if ws := strings.Join(Warnings([]Config{c}), "\n"); !strings.Contains(ws, ".default: full reveals every decrypted field") {
		t.Errorf("default full: no warning:\n%s", ws)
	}
}

func TestRevealExplainFor(t *testing.T) {
	p := revealPolicy(t, revealYAML)
	body := `{"ssn":"rkms:AQEK","cards":[{"number":null}]}`
	fs, err := p.ExplainFor([]byte(body), true, "tenant-acme", &Source{JWT: claimMap{"role": "support"}})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, f := range fs {
		lines = append(lines, f.String())
	}
	got := strings.Join(lines, "\n")
	for _, want := range []string{"$.ssn  label=ssn  reveal=mask:last4 (rule support)", "$.cards[0].number  label=number  reveal=mask:last4 (rule support)"} {
		if !strings.Contains(got, want) {
			t.Errorf("ExplainFor lacks %q:\n%s", want, got)
		}
	}
	if fs, _ := p.Explain([]byte(body), true, "tenant-acme"); fs[0].Reveal != "" {
		t.Errorf("Explain without a caller says %q", fs[0].Reveal)
	}
}

// claimMap is plain Claims (not a ClaimMatcher): string claims only.
type claimMap map[string]string

func (m claimMap) Claim(name string) (string, bool) { v, ok := m[name]; return v, ok }

// headerList is Headers in order, duplicates kept.
type headerList [][2]string

func (h *headerList) Len() int                      { return len(*h) }
func (h *headerList) At(i int) (name, value string) { return (*h)[i][0], (*h)[i][1] }

func TestClaimHolds(t *testing.T) {
	for _, tc := range []struct {
		name  string
		v     any
		value string
		want  bool
	}{
		{"role", "billing", "billing", true},
		{"role", "Billing", "billing", false},
		{"role", "billing support", "billing", false},
		{"scope", "read analytics", "analytics", true},
		{"scp", "read  analytics\t", "analytics", true},
		{"scope", "analytics:read", "analytics", false},
		{"scope", []any{"read", "analytics"}, "analytics", true},
		{"roles", []any{"a", []any{"billing"}}, "billing", false},
		{"roles", []any{7.0, true}, "7", true},
		{"roles", []any{7.0, true}, "true", true},
		{"level", 3.0, "3", true},
		{"level", 3.5, "3", false},
		{"level", 3.0, "3.0", false},
		{"flag", false, "false", true},
		{"obj", map[string]any{"role": "billing"}, "billing", false},
		{"nil", nil, "", false},
	} {
		if got := ClaimHolds(tc.name, tc.v, tc.value); got != tc.want {
			t.Errorf("ClaimHolds(%q, %#v, %q) = %v, want %v", tc.name, tc.v, tc.value, got, tc.want)
		}
	}
}
