package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"

	"github.com/rkms/rkms/internal/config"
)

// Version is set at build time with -ldflags "-X github.com/rkms/rkms/internal/app.Version=...".
var Version = "dev"

const usage = `rkms: transparent field encryption for Envoy, keys from a multi-region KMS keyring

Usage:
  rkms serve [--config FILE]   run the ext_proc server and the admin API
                               (without --config: embedded defaults, data in ./rkms-data)
  rkms config check FILE       check a configuration file: every problem at once, with its line
  rkms config init [--profile local|aws|kubernetes] [--out FILE]
                               write a commented starter configuration
  rkms config print-defaults   print the defaults, every key, as YAML
  rkms policy test --config FILE --policy NAME [--response] < body.json
                               show what a policy does with each field of a body (no keys needed)
  rkms seal --config FILE --policy NAME [--claim K=V | --key-id ID] [--server URL] < doc.json
  rkms seal --value --key-id ID [--label L] [--mode randomized|deterministic] < value
                               encrypt a document's fields (or one value) as ext_proc does
  rkms open  (the same flags) < sealed.json
                               decrypt what seal or ext_proc encrypted (errors never print a value)
  rkms seal|open ... --in export.ndjson --out sealed.ndjson [-j N] [--reject FILE] [--from-line N]
                               the same over NDJSON (one record per line), in parallel, resumable
  rkms rewrap --config FILE --policy NAME [--server URL] --in sealed.ndjson --out rewrapped.ndjson
                               move sealed fields to their key's current version (after a rotation)
  rkms inspect [--config FILE --policy NAME] < doc.json
                               list each ciphertext's path, key id, version, mode, label (no keys)
  rkms envoy-config --config FILE [--out FILE]
                               render the Envoy bootstrap, its routes generated from the policies
  rkms plan --tenants N --replicas R [--ttl D] [--mode direct|hierarchical] [--rate RPS]
                               KMS and DynamoDB calls, monthly cost and quota headroom of a fleet
  rkms version                 print the version

Run 'rkms COMMAND --help' for the flags of each command.
`

// mainCommand is the usage of rkms itself, for usage errors.
var mainCommand = command{name: "", help: "usage: rkms COMMAND [FLAGS] [ARGS]\n"}

// Main runs the rkms command with args (without the program name) and returns the exit code.
// stdin is read by `rkms policy test`, `rkms seal`, `rkms open` and `rkms inspect`.
// ctx ends the server (signals are wired by the caller).
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return mainCommand.usageError(stderr, "")
	}
	switch args[0] {
	case "serve":
		return serveCmd(ctx, args[1:], stdout, stderr)
	case "config":
		return configCmd(args[1:], stdout, stderr)
	case "policy":
		return policyCmd(args[1:], stdin, stdout, stderr)
	case "seal":
		return sealCmd(ctx, args[1:], stdin, stdout, stderr)
	case "open":
		return openCmd(ctx, args[1:], stdin, stdout, stderr)
	case "inspect":
		return inspectCmd(args[1:], stdin, stdout, stderr)
	case "rewrap":
		return rewrapCmd(ctx, args[1:], stdin, stdout, stderr)
	case "envoy-config":
		return envoyConfigCmd(args[1:], stdout, stderr)
	case "plan":
		return planCmd(args[1:], stdout, stderr)
	case "version", "--version":
		return versionCmd(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	return mainCommand.usageError(stderr, fmt.Sprintf("unknown command %q", args[0]))
}

var versionCommand = command{name: "version", help: "usage: rkms version\n\nPrints the version of rkms and of the Go toolchain that built it.\n"}

func versionCmd(args []string, stdout, stderr io.Writer) int {
	fs := versionCommand.flags(stderr)
	if code, ok := versionCommand.parse(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() != 0 {
		return versionCommand.usageError(stderr, fmt.Sprintf("unexpected arguments %v", fs.Args()))
	}
	fmt.Fprintln(stdout, "rkms", versionString())
	return 0
}

func versionString() string {
	v := Version
	if bi, ok := debug.ReadBuildInfo(); ok {
		v += " " + bi.GoVersion
	}
	return v
}

var serveCommand = command{name: "serve", help: `usage: rkms serve [--config FILE]

Runs the ext_proc server (Envoy's external processor), the admin HTTP API and the gRPC key API
until SIGINT or SIGTERM. Without --config it runs on the embedded defaults: data in ./rkms-data,
an embedded key store, three local software KMS regions (NOT FOR PRODUCTION), text logs.
'rkms config init' writes a starter file; 'rkms config check FILE' checks one.
`}

func serveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := serveCommand.flags(stderr)
	path := fs.String("config", "", "configuration file (YAML); embedded defaults when empty")
	if code, ok := serveCommand.parse(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() != 0 {
		return serveCommand.usageError(stderr, fmt.Sprintf("unexpected arguments %v", fs.Args()))
	}
	cfg := config.Dev()
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
