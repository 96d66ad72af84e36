package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"

	"github.com/rkms/rkms/extproc/policy"
	"github.com/rkms/rkms/internal/config"
)

// Version is set at build time with -ldflags "-X github.com/rkms/rkms/internal/app.Version=...".
var Version = "dev"

const usage = `rkms: transparent field encryption for Envoy, keys from a multi-region KMS keyring

Usage:
  rkms serve [--config FILE]   run the ext_proc server and the admin API
                               (without --config: embedded defaults, data in ./rkms-data)
  rkms config check FILE       check a configuration file and report every problem with its line
  rkms policy test --config FILE --policy NAME [--response] < body.json
                               show what a policy does with each field of a body (no keys needed)
  rkms seal --config FILE --policy NAME [--claim K=V | --key-id ID] [--server URL] < doc.json
  rkms seal --value --key-id ID [--label L] [--mode randomized|deterministic] < value
                               encrypt a document's fields (or one value) as ext_proc does
  rkms open  (the same flags) < sealed.json
                               decrypt what seal or ext_proc encrypted (errors never print a value)
  rkms inspect [--config FILE --policy NAME] < doc.json
                               list each ciphertext's path, key id, version, mode, label (no keys)
  rkms version                 print the version
`

// Main runs the rkms command with args (without the program name) and returns the exit code.
// stdin is read by `rkms policy test`, `rkms seal`, `rkms open` and `rkms inspect`.
// ctx ends the server (signals are wired by the caller).
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serveCmd(ctx, args[1:], stdout, stderr)
	case "config":
		if len(args) != 3 || args[1] != "check" {
			fmt.Fprint(stderr, "usage: rkms config check FILE\n")
			return 2
		}
		return checkCmd(args[2], stdout, stderr)
	case "policy":
		return policyCmd(args[1:], stdin, stdout, stderr)
	case "seal":
		return sealCmd(ctx, args[1:], stdin, stdout, stderr)
	case "open":
		return openCmd(ctx, args[1:], stdin, stdout, stderr)
	case "inspect":
		return inspectCmd(args[1:], stdin, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "rkms", versionString())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "rkms: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func versionString() string {
	v := Version
	if bi, ok := debug.ReadBuildInfo(); ok {
		v += " " + bi.GoVersion
	}
	return v
}

func checkCmd(path string, stdout, stderr io.Writer) int {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return 1
	}
	for _, w := range policy.Warnings(cfg.Policies) {
		fmt.Fprintf(stderr, "%s: warning: %s\n", path, w)
	}
	fmt.Fprintf(stdout, "%s: ok\n", path)
	return 0
}

func serveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML); embedded defaults when empty")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "rkms serve: unexpected arguments %v\n", fs.Args())
		return 2
	}
	cfg := config.Default()
	if *path != "" {
		var err error
		if cfg, err = config.Load(*path); err != nil {
			fmt.Fprintf(stderr, "rkms serve: %s: %v\n", *path, err)
			return 1
		}
	}
	if err := Serve(ctx, cfg, *path == "", stdout, stderr); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "rkms serve: %v\n", err)
		return 1
	}
	return 0
}
