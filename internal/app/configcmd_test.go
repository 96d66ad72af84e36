package app

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rkms/rkms/internal/config"
)

func runMain(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestConfigInit: each profile written with --out passes `rkms config check`; an existing file is
// kept unless --force; without --out the starter goes to stdout.
func TestConfigInit(t *testing.T) {
	t.Setenv(config.AdminTokenEnv, "")
	dir := t.TempDir()
	for _, profile := range config.StarterProfiles() {
		t.Run(profile, func(t *testing.T) {
			out := filepath.Join(dir, profile+".yaml")
			if code, _, stderr := runMain(t, "config", "init", "--profile", profile, "--out", out); code != 0 {
				t.Fatalf("init: exit %d: %s", code, stderr)
			}
			if code, stdout, stderr := runMain(t, "config", "check", out); code != 0 || !strings.HasSuffix(stdout, ": ok\n") {
				t.Fatalf("check of the %s starter: exit %d\n%s%s", profile, code, stdout, stderr)
			}
		})
	}
	t.Run("no overwrite", func(t *testing.T) {
		out := filepath.Join(dir, "mine.yaml")
		if err := os.WriteFile(out, []byte("# mine\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := runMain(t, "config", "init", "--out", out)
		if b, _ := os.ReadFile(out); code != 1 || string(b) != "# mine\n" || !strings.Contains(stderr, "--force") {
			t.Fatalf("exit %d, file %q, stderr %q: want 1, the file kept, a hint at --force", code, b, stderr)
		}
		if code, _, stderr := runMain(t, "config", "init", "--profile", "aws", "--out", out, "--force"); code != 0 {
			t.Fatalf("--force: exit %d: %s", code, stderr)
		}
		if b, _ := os.ReadFile(out); !strings.Contains(string(b), `profile "aws"`) {
			t.Fatalf("--force did not replace the file: %q", b)
		}
	})
	t.Run("stdout", func(t *testing.T) {
		code, stdout, _ := runMain(t, "config", "init", "--profile", "kubernetes")
		want, _ := config.Starter("kubernetes")
		if code != 0 || stdout != string(want) {
			t.Fatalf("exit %d, stdout %q", code, stdout)
		}
	})
}

// TestConfigPrintDefaults: the output is a valid configuration file of every default.
func TestConfigPrintDefaults(t *testing.T) {
	code, stdout, stderr := runMain(t, "config", "print-defaults")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	p := filepath.Join(t.TempDir(), "defaults.yaml")
	if err := os.WriteFile(p, []byte(stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runMain(t, "config", "check", p); code != 0 {
		t.Fatalf("print-defaults output does not check: %s", stderr)
	}
}

// TestConfigCheckReport: `rkms config check` prints every problem on its own line, prefixed with
// the file, then the count, and exits 1.
func TestConfigCheckReport(t *testing.T) {
	const file = "../config/testdata/check/mistakes.yaml"
	code, stdout, stderr := runMain(t, "config", "check", file)
	golden, err := os.ReadFile("../config/testdata/check/mistakes.golden")
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	lines := strings.Split(strings.TrimSuffix(string(golden), "\n"), "\n")
	for _, l := range lines {
		want.WriteString(file + ": " + l + "\n")
	}
	want.WriteString(file + ": 16 problem(s)\n")
	if code != 1 || stdout != "" || stderr != want.String() || len(lines) != 16 {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s\nwant:\n%s", code, stdout, stderr, want.String())
	}
}

// TestDevServerLogsText is defect 11 of issue 15 at the logger: the embedded defaults (no
// --config) log text, a file's defaults JSON.
func TestDevServerLogsText(t *testing.T) {
	for _, tc := range []struct {
		cfg    *config.Config
		prefix string
	}{
		{config.Dev(), "time="},
		{config.Default(), `{"time":`},
	} {
		var b bytes.Buffer
		newLogger(tc.cfg.Log, &b).Info("hello")
		if !strings.HasPrefix(b.String(), tc.prefix) {
			t.Errorf("log.format %s: %q, want prefix %q", tc.cfg.Log.Format, b.String(), tc.prefix)
		}
	}
}
