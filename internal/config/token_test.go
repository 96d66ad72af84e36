package config

import "testing"

func TestEnvAdminToken(t *testing.T) {
	for _, tc := range []struct{ env, want string }{{"", ""}, {"  \n", ""}, {" tok-0123456789abcdef\n", "tok-0123456789abcdef"}} {
		t.Setenv(AdminTokenEnv, tc.env)
		if got := EnvAdminToken(); got != tc.want {
			t.Errorf("%s=%q: %q, want %q", AdminTokenEnv, tc.env, got, tc.want)
		}
	}
}

// TestTokenSourceRequired: with no token file, only a non-blank RKMS_ADMIN_TOKEN is a token
// source (a blank one would leave the server with none).
func TestTokenSourceRequired(t *testing.T) {
	for _, tc := range []struct {
		env string
		ok  bool
	}{{"", false}, {"   ", false}, {"tok-0123456789abcdef", true}} {
		t.Setenv(AdminTokenEnv, tc.env)
		cfg := Default()
		cfg.Admin.TokenFile = ""
		var found bool
		for _, p := range Check(cfg, nil) {
			found = found || p.Path == "admin.token_file"
		}
		if found == tc.ok {
			t.Errorf("%s=%q, no token file: admin.token_file problem %v, want %v", AdminTokenEnv, tc.env, found, !tc.ok)
		}
	}
}
