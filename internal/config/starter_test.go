package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestStarterProfilesPass: each starter configuration of `rkms config init` passes the check as
// generated, says what it is, and is what its profile promises.
func TestStarterProfilesPass(t *testing.T) {
	for _, tc := range []struct {
		profile, provider, store string
	}{
		{"local", "local", "embedded"},
		{"aws", "aws", "dynamodb"},
		{"kubernetes", "aws", "dynamodb"},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			t.Setenv(AdminTokenEnv, "")
			data, err := Starter(tc.profile)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Parse(data)
			if err != nil {
				t.Fatalf("starter %s does not pass the check:\n%v", tc.profile, err)
			}
			if cfg.KMS.Provider != tc.provider || cfg.Store.Type != tc.store || len(cfg.Policies) == 0 {
				t.Errorf("provider %s, store %s, %d policies", cfg.KMS.Provider, cfg.Store.Type, len(cfg.Policies))
			}
			if !strings.HasPrefix(string(data), "# rkms configuration: profile \""+tc.profile+"\"") {
				t.Errorf("no header comment naming the profile")
			}
		})
	}
	if _, err := Starter("mars"); err == nil || !strings.Contains(err.Error(), "local, aws, kubernetes") {
		t.Errorf("unknown profile: %v", err)
	}
}

// TestDefaultsYAMLRoundTrip: print-defaults prints every key of the defaults, and the output
// parses back to the same configuration.
func TestDefaultsYAMLRoundTrip(t *testing.T) {
	data, err := DefaultsYAML()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(data)
	if err != nil {
		t.Fatalf("print-defaults output does not parse:\n%v\n%s", err, data)
	}
	opts := []cmp.Option{cmpopts.EquateEmpty(), cmpopts.IgnoreUnexported(Config{})}
	if d := cmp.Diff(Default(), cfg, opts...); d != "" {
		t.Fatalf("round trip differs (-default +parsed):\n%s", d)
	}
	for _, key := range []string{"data_dir:", "token_file: rkms-data/admin.token", "path: rkms-data/keys.db",
		"file: rkms-data/recent-key-ids", "max_stale: 1h0m0s", "key_timeout:", "negative_max_keys:", "policies: []"} {
		if !strings.Contains(string(data), key) {
			t.Errorf("print-defaults lacks %q:\n%s", key, data)
		}
	}
}
