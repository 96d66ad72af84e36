package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPolicyTestCommand(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "rkms.yaml")
	if err := os.WriteFile(cfg, []byte(`policies:
  - name: patients
    key_id: "tenant-{header:x-tenant-id}"
    request: {encrypt: ["$..ssn", "$..contact.email"]}
    response: {decrypt: ["$.ssn", "$.items[*].ssn"]}
    allow: ["$.doctor.email"]
  - name: jwt
    key_id: "tenant-{jwt:tenant}"
    request: {encrypt: ["$..ssn"]}
    create: admin_only
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, body string
		args       []string
		code       int
		want       []string
	}{
		{"passes", `{"ssn":"123-45-6789","contact":{"email":"a@x"}}`, nil, 0,
			[]string{"policy patients, request body, key id tenant-acme", "key creation: on_demand", "encrypt    $.ssn  label=ssn", "encrypt    $.contact.email  label=email", "result: passes"}},
		{"refused", `{"contact":[{"email":"a@x"}],"doctor":{"email":"d@x"}}`, nil, 1,
			[]string{"refuse     $.contact[0].email  label=email", "left alone $.doctor.email", "result: refused"}},
		{"response", `{"items":[{"ssn":"123-45-6789"}]}`, []string{"--response"}, 1,
			[]string{"refuse     $.items[0].ssn  label=ssn  (plaintext where a ciphertext is expected)"}},
		{"not JSON", `{"ssn":`, nil, 1, []string{"refuse     (body:"}},
		{"claim", `{"ssn":"123-45-6789"}`, []string{"--policy", "jwt", "--claim", "tenant=globex"}, 0,
			[]string{"key id tenant-globex", "key creation: admin_only (sealing under a key id without a key is refused with 403"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append([]string{"policy", "test", "--config", cfg, "--policy", "patients", "--header", "x-tenant-id=acme"}, tc.args...)
			code := Main(context.Background(), args, strings.NewReader(tc.body), &out, &errb)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tc.code, &out, &errb)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, &out)
				}
			}
			for _, v := range []string{"123-45-6789", "a@x", "d@x"} {
				if strings.Contains(out.String()+errb.String(), v) {
					t.Errorf("output holds the value %s:\n%s", v, &out)
				}
			}
		})
	}
	var errb bytes.Buffer
	if code := Main(context.Background(), []string{"policy", "test", "--config", cfg}, strings.NewReader(""), &bytes.Buffer{}, &errb); code != 2 {
		t.Errorf("missing --policy: exit %d", code)
	}
}

// TestConfigCheckWarnsUntrustedHeader: a key id from a header nothing is declared to verify is
// a warning (a client that sets it chooses its key); trusted_headers silences it.
func TestConfigCheckWarnsUntrustedHeader(t *testing.T) {
	for _, tc := range []struct {
		trusted string
		warn    bool
	}{{"", true}, {"\n    trusted_headers: [x-tenant-id]", false}} {
		cfg := filepath.Join(t.TempDir(), "rkms.yaml")
		if err := os.WriteFile(cfg, []byte(`policies:
  - name: p
    key_id: "tenant-{header:x-tenant-id}"`+tc.trusted+`
    request: {encrypt: ["$.ssn"]}
`), 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		if code := Main(context.Background(), []string{"config", "check", cfg}, nil, &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, &errb)
		}
		if got := strings.Contains(errb.String(), "warning: policy \"p\": key_id reads header x-tenant-id"); got != tc.warn {
			t.Errorf("trusted %q: warning %v, want %v: %s", tc.trusted, got, tc.warn, &errb)
		}
	}
}

// TestPolicyTestReveal: with --response, a policy with response.reveal says what the caller
// described by --claims/--claim sees of each decrypted field, and config check warns about
// rules that never apply.
func TestPolicyTestReveal(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "rkms.yaml")
	if err := os.WriteFile(cfg, []byte(`policies:
  - name: people
    key_id: "tenant-{jwt:tenant}"
    request: {encrypt: ["$.ssn", "$.cards[*].number", "$.email"]}
    response:
      decrypt: ["$.ssn", "$.cards[*].number", "$.email"]
      reveal:
        rules:
          - name: billing
            when: {jwt: {role: billing}}
            fields: {"$.cards[*].number": full, "$.phone": full}
          - name: support
            when: {jwt: {role: support}}
            fields: {"$.ssn": "mask:last4", "$.cards[*].number": "mask:first6last4"}
          - when: {jwt: {scope: analytics}}
            fields: {"$.ssn": token}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	body := `{"ssn":"rkms:AQEK","cards":[{"number":"rkms:AQEK"}]}`
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"support", []string{"--claims", `{"tenant":"acme","role":["intern","support"]}`}, []string{
			"$.ssn  label=ssn  reveal=mask:last4 (rule support)", "$.cards[0].number  label=number  reveal=mask:first6last4 (rule support)",
			"  $.email                  redact (rule default)"}},
		{"analytics scope words", []string{"--claims", `{"tenant":"acme","scope":"read analytics"}`}, []string{
			"$.ssn  label=ssn  reveal=token (rule rules[2])", "$.cards[0].number  label=number  reveal=redact (rule default)"}},
		{"--claim overrides --claims", []string{"--claim", "role=billing", "--claims", `{"tenant":"acme","role":"support"}`}, []string{
			"reveal=full (rule billing)", "  $.ssn                    redact (rule default)"}},
		{"nobody", []string{"--claim", "tenant=acme"}, []string{"reveal=redact (rule default)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append([]string{"policy", "test", "--config", cfg, "--policy", "people", "--response"}, tc.args...)
			if code := Main(context.Background(), args, strings.NewReader(body), &out, &errb); code != 0 && code != 1 {
				t.Fatalf("exit %d\n%s%s", code, &out, &errb)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, &out)
				}
			}
		})
	}
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"policy", "test", "--config", cfg, "--policy", "people", "--claims", "[1]"}, strings.NewReader(body), &out, &errb); code != 2 {
		t.Errorf("--claims [1]: exit %d, want 2\n%s", code, &errb)
	}
	out.Reset()
	errb.Reset()
	if code := Main(context.Background(), []string{"config", "check", cfg}, nil, &out, &errb); code != 0 {
		t.Fatalf("config check: exit %d\n%s", code, &errb)
	}
	for _, w := range []string{"field $.phone is not a response.decrypt field", "no rule names $.email: every caller gets the default (redact)"} {
		if !strings.Contains(errb.String(), w) {
			t.Errorf("config check lacks %q:\n%s", w, &errb)
		}
	}
}
