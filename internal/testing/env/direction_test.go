package testenv

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportDirection holds the import rules of README.md's "Layout" section against
// `go list -deps`: the ground floor imports no rkms package, no public package depends on
// internal/, and the config loader reads the ext_proc model and limits without the gRPC server.
func TestImportDirection(t *testing.T) {
	root := RepoRoot(t)
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", "./"+pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps ./%s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	for _, tc := range []struct {
		pkg       string
		forbidden []string // what pkg must not depend on: an import path, or a prefix ending in "/"
	}{
		{"secret", []string{module + "/"}},
		{"store", []string{module + "/"}},
		{"extproc/jsonfield", []string{module + "/"}},
		{"extproc/limits", []string{module + "/", "google.golang.org/grpc"}},
		{"extproc/grpccodec", []string{module + "/"}},
		{"envelope", []string{module + "/internal/", module + "/keyring", module + "/extproc"}},
		{"keyring", []string{module + "/internal/", module + "/extproc"}},
		{"extproc/policy", []string{module + "/internal/", module + "/keyring", "google.golang.org/grpc"}},
		{"extproc", []string{module + "/internal/", module + "/keyring"}},
		{"internal/config", []string{module + "/extproc", "google.golang.org/grpc"}},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			t.Chdir(root)
			self := module + "/" + tc.pkg
			for _, d := range deps(tc.pkg) {
				if d == self {
					continue
				}
				for _, f := range tc.forbidden {
					if d == f || strings.HasSuffix(f, "/") && strings.HasPrefix(d, f) {
						t.Errorf("%s depends on %s (forbidden: %s)", tc.pkg, d, f)
					}
				}
			}
		})
	}
}
