package app

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rkms/rkms/envelope"
	"github.com/rkms/rkms/secret"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files of rkms inspect in testdata/")

// inspectDoc is a document with ciphertexts under two key ids, two versions and both modes,
// one in a list, one as a member name (deterministic: its path is stable) and one that does
// not parse. The keys are fixed and the
// plaintexts are never printed: rkms inspect reads headers only.
func inspectDoc(t *testing.T) string {
	t.Helper()
	seal := func(id string, v uint32, mode envelope.Mode, label, pt string) string {
		k := envelope.Key{ID: id, Version: v, Secret: secret.New(bytes.Repeat([]byte{byte(v)}, envelope.DataKeyLen))}
		ct, err := envelope.Seal(nil, k, mode, label, nil, []byte(pt))
		if err != nil {
			t.Fatal(err)
		}
		return string(ct)
	}
	return `{"name":"Ann",` +
		`"ssn":"` + seal("tenant-acme", 1, envelope.Randomized, "ssn", `"INSPECT-PLAINTEXT-1"`) + `",` +
		`"contact":{"email":"` + seal("tenant-acme", 2, envelope.Deterministic, "email", `"INSPECT-PLAINTEXT-2"`) + `"},` +
		`"items":[{"ssn":"` + seal("tenant-b", 7, envelope.Randomized, "ssn", `"INSPECT-PLAINTEXT-3"`) + `"}],` +
		`"` + seal("tenant-b", 7, envelope.Deterministic, "k", `"INSPECT-PLAINTEXT-4"`) + `":1,` +
		`"broken":"rkms:AQEK"}`
}

// TestInspectGolden: rkms inspect lists each ciphertext's path, key id, version, mode, label
// (with a policy) and format version, as a table or JSON, exits 1 because one ciphertext does
// not parse, and prints no plaintext. It needs no keyring: the configuration only names labels.
func TestInspectGolden(t *testing.T) {
	cfg, _ := sealConfig(t)
	doc := inspectDoc(t)
	tests := []struct {
		golden string
		stdin  string
		args   []string
		code   int
	}{
		{"inspect.golden", doc, nil, 1},
		{"inspect-policy.golden", doc, []string{"--config", cfg, "--policy", "patients"}, 1},
		{"inspect-json.golden", doc, []string{"--json"}, 1},
		{"inspect-value.golden", jsonField(t, doc, "ssn") + "\n", nil, 0},
		{"inspect-none.golden", `{"ssn":"123"}`, nil, 0},
	}
	for _, tc := range tests {
		t.Run(tc.golden, func(t *testing.T) {
			code, out, stderr := cli(t, tc.stdin, append([]string{"inspect"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, stderr)
			}
			if strings.Contains(out+stderr, "INSPECT-PLAINTEXT") {
				t.Fatalf("inspect printed a plaintext:\n%s%s", out, stderr)
			}
			path := filepath.Join("testdata", tc.golden)
			if *updateGolden {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestInspectGolden -update)", err)
			}
			if out != string(want) {
				t.Errorf("rkms inspect %v:\n%s\nwant (%s):\n%s", tc.args, out, path, want)
			}
		})
	}
	if code, _, _ := cli(t, "not json", "inspect"); code != 1 {
		t.Errorf("inspect of neither a ciphertext nor JSON: exit %d, want 1", code)
	}
	if code, _, _ := cli(t, doc, "inspect", "--config", cfg); code != 2 {
		t.Errorf("inspect --config without --policy: exit %d, want 2", code)
	}
}
