package app

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/rkms/rkms/extproc/policy"
	"github.com/rkms/rkms/internal/config"
)

var (
	configCommand = command{name: "config", help: `usage: rkms config check|init|print-defaults [FLAGS]

  rkms config check FILE       check a configuration file: every problem at once, one per line,
                               with its line and key (exit 1 when there is one)
  rkms config init [--profile local|aws|kubernetes] [--out FILE] [--force]
                               write a commented starter configuration (stdout without --out)
  rkms config print-defaults   print the defaults, every key, as YAML

Run 'rkms config COMMAND --help' for the flags of each.
`}
	checkCommand = command{name: "config check", help: `usage: rkms config check FILE

Checks a configuration file as 'rkms serve --config FILE' would (TLS files must exist, policies
compile) and prints every problem at once, one per line: FILE: line N: key.path: what is wrong.
Unknown keys come with the nearest known key. Policy warnings are printed too.
Exit status: 0 when the file is valid, 1 when it has problems, 2 on usage errors.
`}
	initCommand = command{name: "config init", help: `usage: rkms config init [--profile local|aws|kubernetes] [--out FILE] [--force]

Writes a commented starter configuration that passes 'rkms config check' as generated:
  local        everything on this machine (embedded store, local software KMS): not for production
  aws          AWS KMS in three regions and a DynamoDB table (placeholders marked CHANGE ME)
  kubernetes   as aws, for a pod with an Envoy sidecar (listen addresses, mounted token, emptyDir)
Without --out it prints to stdout. An existing file is never overwritten without --force.
`}
	printDefaultsCommand = command{name: "config print-defaults", help: `usage: rkms config print-defaults

Prints the defaults that a configuration file is laid over, every key, as YAML. The output is
itself a valid configuration file.
`}
)

// configCmd runs `rkms config SUBCOMMAND ...`.
func configCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return configCommand.usageError(stderr, "missing subcommand")
	}
	switch args[0] {
	case "check":
		return checkCmd(args[1:], stdout, stderr)
	case "init":
		return initCmd(args[1:], stdout, stderr)
	case "print-defaults":
		return printDefaultsCmd(args[1:], stdout, stderr)
	}
	if isHelp(args[0]) {
		return configCommand.printHelp(nil, stdout)
	}
	return configCommand.usageError(stderr, fmt.Sprintf("unknown subcommand %q", args[0]))
}

func checkCmd(args []string, stdout, stderr io.Writer) int {
	fs := checkCommand.flags(stderr)
	if code, ok := checkCommand.parse(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() != 1 {
		return checkCommand.usageError(stderr, "want one FILE")
	}
	path := fs.Arg(0)
	cfg, err := config.Load(path)
	var ps config.Problems
	switch {
	case errors.As(err, &ps):
		for _, p := range ps {
			fmt.Fprintf(stderr, "%s: %s\n", path, p)
		}
		fmt.Fprintf(stderr, "%s: %d problem(s)\n", path, len(ps))
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return 1
	}
	for _, w := range policy.Warnings(cfg.Policies) {
		fmt.Fprintf(stderr, "%s: warning: %s\n", path, w)
	}
	fmt.Fprintf(stdout, "%s: ok\n", path)
	return 0
}

func initCmd(args []string, stdout, stderr io.Writer) int {
	fs := initCommand.flags(stderr)
	profile := fs.String("profile", "local", "starter profile: "+strings.Join(config.StarterProfiles(), ", "))
	out := fs.String("out", "", "file to write (default: stdout)")
	force := fs.Bool("force", false, "overwrite --out if it exists")
	if code, ok := initCommand.parse(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() != 0 {
		return initCommand.usageError(stderr, fmt.Sprintf("unexpected arguments %v", fs.Args()))
	}
	data, err := config.Starter(*profile)
	if err != nil {
		return initCommand.usageError(stderr, err.Error())
	}
	if *out == "" {
		_, err := stdout.Write(data)
		if err != nil {
			fmt.Fprintf(stderr, "rkms config init: %v\n", err)
			return 1
		}
		return 0
	}
	if err := writeNew(*out, data, *force); err != nil {
		fmt.Fprintf(stderr, "rkms config init: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "rkms config init: wrote %s (profile %s); edit it, then: rkms config check %s\n", *out, *profile, *out)
	return 0
}

// writeNew writes data to path (mode 0600), refusing to replace an existing file unless force.
func writeNew(path string, data []byte, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists: not overwritten (--force replaces it)", path)
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func printDefaultsCmd(args []string, stdout, stderr io.Writer) int {
	fs := printDefaultsCommand.flags(stderr)
	if code, ok := printDefaultsCommand.parse(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() != 0 {
		return printDefaultsCommand.usageError(stderr, fmt.Sprintf("unexpected arguments %v", fs.Args()))
	}
	data, err := config.DefaultsYAML()
	if err == nil {
		_, err = stdout.Write(data)
	}
	if err != nil {
		fmt.Fprintf(stderr, "rkms config print-defaults: %v\n", err)
		return 1
	}
	return 0
}
