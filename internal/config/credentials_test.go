package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rkms/rkms/internal/access"
)

// writeToken writes token to a file of mode perm in dir and returns its path.
func writeToken(t *testing.T, dir, name, token string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(token+"\n"), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil { // the umask may have narrowed it
		t.Fatal(err)
	}
	return p
}

func TestCredentialsParse(t *testing.T) {
	dir := t.TempDir()
	ops := writeToken(t, dir, "ops", "ops-token-0123456789", 0o600)
	t.Setenv("RKMS_BILLING_TOKEN", "billing-token-0123456789")
	cfg, err := Parse([]byte(`admin:
  tls: {}
  credentials:
    - name: ops
      token_file: ` + ops + `
      allow: [read, create, rotate, delete, list, rewrap]
    - name: billing-svc
      token_env: RKMS_BILLING_TOKEN
      allow: [read]
      id_prefixes: ["tenant-"]
`))
	if err != nil {
		t.Fatal(err)
	}
	cr := cfg.Admin.Credentials
	if len(cr) != 2 || cr[1].Name != "billing-svc" || !slices.Equal(cr[1].IDPrefixes, []string{"tenant-"}) {
		t.Fatalf("credentials: %+v", cr)
	}
	if tok, err := cr[1].Token(); err != nil || tok != "billing-token-0123456789" {
		t.Fatalf("env token: %q %v", tok, err)
	}
	if p := cr[0].Principal(); p.Name != "ops" || !slices.Equal(p.Allow, access.Operations) {
		t.Fatalf("principal: %+v", p)
	}
}

// TestCredentialProblems is the golden report of a file with every credential mistake: all of
// them at once, each at its own line, and never a token in the text.
func TestCredentialProblems(t *testing.T) {
	dir := t.TempDir()
	good := writeToken(t, dir, "good", "good-token-0123456789", 0o600)
	same := writeToken(t, dir, "same", "good-token-0123456789", 0o600)
	short := writeToken(t, dir, "short", "short", 0o600)
	open := writeToken(t, dir, "open", "open-token-0123456789", 0o644)
	t.Setenv("RKMS_UNSET_TOKEN", "")
	t.Setenv(AdminTokenEnv, "")
	file := strings.Join([]string{
		/* 1 */ "admin:",
		/* 2 */ "  token_file: /run/secrets/admin",
		/* 3 */ "  credentials:",
		/* 4 */ "    - name: ops",
		/* 5 */ "      token_file: " + good,
		/* 6 */ "      allow: [read, purge]",
		/* 7 */ "    - name: ops",
		/* 8 */ "      token_file: " + same,
		/* 9 */ "      allow: [read]",
		/* 10 */ "    - name: short",
		/* 11 */ "      token_file: " + short,
		/* 12 */ "      allow: [read]",
		/* 13 */ "    - name: open",
		/* 14 */ "      token_file: " + open,
		/* 15 */ "      allow: [read]",
		/* 16 */ "    - name: nothing",
		/* 17 */ "      allow: [read]",
		/* 18 */ "    - name: unset",
		/* 19 */ "      token_env: RKMS_UNSET_TOKEN",
		/* 20 */ "      allow: []",
		/* 21 */ "    - name: gitops",
		/* 22 */ `      mtls_subject: "spiffe://cluster/ns/ops/sa/gitops"`,
		/* 23 */ "      allow: [rotate]",
		/* 24 */ "      id_prefixes: [\"bad prefix\"]",
		/* 25 */ "    - name: \"has space\"",
		/* 26 */ "      token_env: A",
		/* 27 */ "      mtls_subject: x",
		/* 28 */ "      allow: [read]",
		"",
	}, "\n")
	_, err := Parse([]byte(file))
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("want Problems, got %v", err)
	}
	var got []string
	for _, p := range ps {
		if strings.HasPrefix(p.Path, "admin.") {
			got = append(got, p.String())
		}
	}
	want := []string{
		"line 2: admin.token_file: admin.credentials replaces the single token: remove token_file, or add it as a credential",
		`line 6: admin.credentials[0].allow[1]: unknown operation "purge" (operations: read, create, rotate, delete, list, rewrap)`,
		`line 7: admin.credentials[1].name: duplicate credential name "ops" (first at admin.credentials[0])`,
		"line 8: admin.credentials[1].token_file: same token as admin.credentials[0]: each credential needs its own",
		"line 11: admin.credentials[2].token_file: token file " + short + ": token shorter than 16 characters",
		"line 14: admin.credentials[3].token_file: token file " + open + ": mode 0644 lets group or others read it: chmod 600 " + open,
		"line 16: admin.credentials[4]: needs a token source: token_file, token_env or mtls_subject",
		"line 19: admin.credentials[5].token_env: environment variable RKMS_UNSET_TOKEN is not set",
		"line 20: admin.credentials[5].allow: must list at least one operation (read, create, rotate, delete, list, rewrap)",
		"line 22: admin.credentials[6].mtls_subject: needs mutual TLS on the admin listeners: set admin.tls.client_ca_file",
		`line 24: admin.credentials[6].id_prefixes[0]: must be the start of a valid key id: 1 to 256 characters of A-Z a-z 0-9 . _ : / @ + = - (got "bad prefix")`,
		`line 25: admin.credentials[7].name: must be 1 to 64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit (got "has space")`,
		"line 25: admin.credentials[7]: set only one of token_file, token_env and mtls_subject",
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	if strings.Contains(err.Error(), "good-token") || strings.Contains(err.Error(), "open-token") {
		t.Errorf("a token is in the report: %v", err)
	}
}

// TestSingleTokenWithCredentials: RKMS_ADMIN_TOKEN next to credentials is a problem, unless a
// credential takes it as its token_env; the default token_file (not written in the file) is not.
func TestSingleTokenWithCredentials(t *testing.T) {
	dir := t.TempDir()
	ops := writeToken(t, dir, "ops", "ops-token-0123456789", 0o600)
	base := "admin:\n  credentials:\n    - name: ops\n      token_file: " + ops + "\n      allow: [read]\n"
	withEnv := base + "    - name: admin\n      token_env: RKMS_ADMIN_TOKEN\n      allow: [read, create, rotate, delete, list]\n"
	for _, tc := range []struct {
		name, env, yaml string
		ok              bool
	}{
		{"credentials alone", "", base, true},
		{"env beside credentials", "env-token-0123456789", base, false},
		{"env as a credential", "env-token-0123456789", withEnv, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(AdminTokenEnv, tc.env)
			_, err := Parse([]byte(tc.yaml))
			if (err == nil) != tc.ok {
				t.Fatalf("%v, want ok %v", err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "admin.credentials: RKMS_ADMIN_TOKEN is set") {
				t.Fatalf("problem: %v", err)
			}
		})
	}
}
