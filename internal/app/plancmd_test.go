package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPlanCmd: rkms plan's flags, table form, config file and usage errors.
func TestPlanCmd(t *testing.T) {
	dir := t.TempDir()
	direct := filepath.Join(dir, "direct.yaml")
	if err := os.WriteFile(direct, []byte("cache: {ttl: 1m, max_keys: 5000}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The keys of the hierarchical mode, whether or not this build's loader knows them.
	hier := filepath.Join(dir, "hier.yaml")
	if err := os.WriteFile(hier, []byte("kms:\n  mode: hierarchical\n  hierarchical: {branch_keys: 3}\ncache: {ttl: 2m, wrapped_ttl: 30m, wrapped_max_keys: 7000}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("cache: {tll: 1m}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string // in stdout (code 0) or stderr
	}{
		{"worst case", []string{"--tenants", "10000", "--replicas", "5"}, 0, []string{"direct mode, 10,000 tenants, 5 replicas", "KMS Decrypt/s", "167", "$1,296"}},
		{"table", []string{"--tenants", "10000,100000", "--replicas", "5,20", "--mode", "direct,hierarchical"}, 0, []string{"| direct | 100,000 | 20 | 6,667 |", "| hierarchical | 10,000 | 5 |"}},
		{"rate zipf", []string{"--tenants", "1000", "--replicas", "2", "--rate", "100", "--dist", "zipf:1.1", "--ttl", "15s"}, 0, []string{"100 requests/s, tenants zipf:1.1"}},
		{"config", []string{"--config", direct, "--tenants", "10000", "--replicas", "2"}, 0, []string{"cache.ttl 1m0s, cache.max_keys 5,000", "warning: 10000 tenants exceed cache.max_keys 5000"}},
		{"config flag wins", []string{"--config", direct, "--tenants", "10", "--replicas", "2", "--ttl", "10s"}, 0, []string{"cache.ttl 10s"}},
		{"config hierarchical", []string{"--config", hier, "--tenants", "10", "--replicas", "2"}, 0, []string{"hierarchical mode", "branch_keys 3, cache.wrapped_ttl 30m0s, cache.wrapped_max_keys 7,000", "cache.ttl 2m0s"}},
		{"config mode overridden", []string{"--config", hier, "--mode", "direct", "--tenants", "10", "--replicas", "2"}, 0, []string{"direct mode"}},
		{"config invalid", []string{"--config", bad, "--tenants", "10", "--replicas", "2"}, 2, []string{"tll"}},
		{"missing", []string{"--tenants", "10"}, 2, []string{"--tenants and --replicas are required"}},
		{"unpaired", []string{"--tenants", "10,20", "--replicas", "2"}, 2, []string{"paired"}},
		{"not a number", []string{"--tenants", "ten", "--replicas", "2"}, 2, []string{`"ten" is not an integer`}},
		{"bad dist", []string{"--tenants", "10", "--replicas", "2", "--dist", "pareto"}, 2, []string{"--dist"}},
		{"bad mode", []string{"--tenants", "10", "--replicas", "2", "--mode", "fast"}, 2, []string{`mode "fast"`}},
		{"too many rows", []string{"--tenants", strings.Repeat("1,", 100) + "1", "--replicas", "1"}, 2, []string{"at most 100"}},
		{"arguments", []string{"--tenants", "10", "--replicas", "2", "extra"}, 2, []string{"unexpected arguments"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, append([]string{"plan"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			out := stdout
			if tc.code != 0 {
				out = stderr
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
