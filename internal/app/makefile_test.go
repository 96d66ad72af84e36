package app

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// makeDryRun runs `make -n ARGS...` in the repository root and returns what make would run.
func makeDryRun(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("make", append([]string{"-n", "--no-print-directory", "-C", filepath.Join("..", "..")}, args...)...)
	cmd.Env = append(os.Environ(), "MAKEFLAGS=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

const versionFlag = "-X github.com/rkms/rkms/internal/app.Version=v9.9.9-test"

// TestMakeStampsVersion is defect 3 of issue 15: every target that builds bin/rkms (build, run,
// demo) stamps the version the same way, so that `rkms version` after `make demo` is not "dev".
func TestMakeStampsVersion(t *testing.T) {
	for _, target := range []string{"build", "run", "demo"} {
		t.Run(target, func(t *testing.T) {
			out := makeDryRun(t, target, "VERSION=v9.9.9-test", "RKMS_ENVOY=/bin/true")
			if !strings.Contains(out, versionFlag) {
				t.Errorf("make -n %s does not stamp the version (%s):\n%s", target, versionFlag, out)
			}
		})
	}
	if testing.Short() {
		return
	}
	// The demo's builds (examples/demo.sh) get the flags through GOFLAGS: build with that
	// GOFLAGS and ask the binary.
	m := regexp.MustCompile(`GOFLAGS="([^"]*)"`).FindStringSubmatch(makeDryRun(t, "demo", "VERSION=v9.9.9-test", "RKMS_ENVOY=/bin/true"))
	if m == nil {
		t.Fatal("make demo passes no GOFLAGS to examples/demo.sh")
	}
	bin := filepath.Join(t.TempDir(), "rkms")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/rkms")
	build.Env = append(os.Environ(), "GOFLAGS="+m[1])
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build with GOFLAGS=%s: %v\n%s", m[1], err, out)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "rkms v9.9.9-test ") {
		t.Fatalf("rkms version after the demo build: %q, %v", out, err)
	}
}

// TestMakeRunTakesConfig is defect 11 of issue 15: `make run CONFIG=file.yaml` passes --config;
// plain `make run` serves the embedded defaults.
func TestMakeRunTakesConfig(t *testing.T) {
	if out := makeDryRun(t, "run", "CONFIG=my rkms.yaml"); !strings.Contains(out, "serve --config 'my rkms.yaml'") {
		t.Errorf("make run CONFIG=... does not pass --config:\n%s", out)
	}
	if out := makeDryRun(t, "run"); strings.Contains(out, "--config") {
		t.Errorf("make run passes --config without CONFIG:\n%s", out)
	}
}

// TestMakeSaysWhatItDoes is defect 10 of issue 15: long steps say what they do, and the Envoy
// install shows pip's progress.
func TestMakeSaysWhatItDoes(t *testing.T) {
	mk, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mk), "pip install --quiet") || strings.Contains(string(mk), "pip install -q") {
		t.Error("Makefile runs pip quietly")
	}
	out := makeDryRun(t, "build")
	if !strings.Contains(out, "echo \"building bin/rkms") {
		t.Errorf("make build prints nothing before a (possibly minute-long) build:\n%s", out)
	}
	ci, err := os.ReadFile(filepath.Join("..", "..", ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(ci), "--quiet") || strings.Contains(string(ci), " -qq") {
		t.Error(".ci/run hides the output of an install")
	}
}
