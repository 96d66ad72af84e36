package app

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestHelpEveryCommand is defect 4 of issue 15: --help (and -h, and `help`) on every command
// prints that command's usage to stdout and exits 0.
func TestHelpEveryCommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // in stdout
	}{
		{[]string{"--help"}, "rkms config init"},
		{[]string{"-h"}, "rkms serve"},
		{[]string{"help"}, "rkms policy test"},
		{[]string{"serve", "--help"}, "usage: rkms serve"},
		{[]string{"serve", "-h"}, "--config FILE"},
		{[]string{"config", "--help"}, "usage: rkms config"},
		{[]string{"config", "help"}, "print-defaults"},
		{[]string{"config", "check", "--help"}, "usage: rkms config check"},
		{[]string{"config", "init", "--help"}, "usage: rkms config init"},
		{[]string{"config", "print-defaults", "--help"}, "usage: rkms config print-defaults"},
		{[]string{"policy", "--help"}, "usage: rkms policy test"},
		{[]string{"policy", "test", "--help"}, "usage: rkms policy test"},
		{[]string{"policy", "test", "-h"}, "--response"},
		{[]string{"version", "--help"}, "usage: rkms version"},
		{[]string{"rewrap", "--help"}, "usage: rkms rewrap"},
		{[]string{"seal", "--help"}, "--reject FILE"},
		{[]string{"--help"}, "rkms rewrap"},
		{[]string{"--help"}, "rkms envoy-config"},
		{[]string{"envoy-config", "--help"}, "usage: rkms envoy-config"},
		{[]string{"envoy-config", "-h"}, "--out"},
		{[]string{"plan", "--help"}, "usage: rkms plan"},
		{[]string{"plan", "-h"}, "-kms-quota"},
		{[]string{"--help"}, "rkms plan"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), tc.args, strings.NewReader(""), &stdout, &stderr)
			if code != 0 || !strings.Contains(stdout.String(), tc.want) || stderr.Len() != 0 {
				t.Errorf("exit %d, stdout %q, stderr %q; want 0 and %q on stdout", code, stdout.String(), stderr.String(), tc.want)
			}
		})
	}
}

// TestUnknownFlags: an unknown flag or subcommand exits 2 with a short usage on stderr (the
// offending argument, the synopsis and where the help is), nothing on stdout.
func TestUnknownFlags(t *testing.T) {
	for _, tc := range [][]string{
		{},
		{"--bogus"},
		{"bogus"},
		{"serve", "--bogus"},
		{"serve", "extra"},
		{"config"},
		{"config", "--bogus"},
		{"config", "bogus"},
		{"config", "check"},
		{"config", "check", "--bogus", "x.yaml"},
		{"config", "init", "--bogus"},
		{"config", "init", "--profile", "mars"},
		{"config", "print-defaults", "--bogus"},
		{"config", "print-defaults", "extra"},
		{"policy"},
		{"policy", "--bogus"},
		{"policy", "test", "--bogus"},
		{"version", "--bogus"},
		{"rewrap", "--bogus"},
		{"envoy-config"},
		{"envoy-config", "--bogus"},
		{"envoy-config", "--config", "x.yaml", "extra"},
	} {
		t.Run(strings.Join(tc, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), tc, strings.NewReader(""), &stdout, &stderr)
			lines := strings.Count(stderr.String(), "\n")
			if code != 2 || stdout.Len() != 0 || !strings.Contains(stderr.String(), "usage: rkms") || lines > 6 ||
				!strings.Contains(stderr.String(), "--help") {
				t.Errorf("exit %d, stdout %q, stderr (%d lines) %q; want 2 and a short usage on stderr", code, stdout.String(), lines, stderr.String())
			}
		})
	}
}
