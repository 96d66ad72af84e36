package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// command is the usage of one rkms command: help is its full text for --help (on stdout), whose
// first line, the synopsis, is also the short usage printed with a usage error (on stderr).
type command struct {
	name string // "serve", "config check"
	help string // starts with "usage: rkms NAME ..."
}

// flags returns the command's flag set: parse errors go to stderr, without Go's default usage.
func (c command) flags(stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("rkms "+c.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	return fs
}

// parse parses args with fs. ok is false when the command must exit with code: 0 after printing
// the help (-h, --help), 2 after a usage error (an unknown flag, a bad value).
func (c command) parse(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		return c.printHelp(fs, stdout), false
	}
	return c.usageError(stderr, ""), false // the flag package printed what was wrong
}

// printHelp prints the full help, with the flags, to stdout; it returns 0.
func (c command) printHelp(fs *flag.FlagSet, stdout io.Writer) int {
	fmt.Fprint(stdout, c.help)
	if fs != nil && hasFlags(fs) {
		fmt.Fprintln(stdout, "\nFlags:")
		fs.SetOutput(stdout)
		fs.PrintDefaults()
	}
	return 0
}

// usageError prints msg (when not empty), the synopsis and where the help is to stderr; it
// returns 2.
func (c command) usageError(stderr io.Writer, msg string) int {
	name := strings.TrimSpace("rkms " + c.name) // "rkms" for the program itself
	if msg != "" {
		fmt.Fprintf(stderr, "%s: %s\n", name, msg)
	}
	synopsis, _, _ := strings.Cut(c.help, "\n")
	fmt.Fprintf(stderr, "%s\nrun '%s --help' for more\n", synopsis, name)
	return 2
}

// isHelp reports whether arg asks for help in place of a subcommand.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}
