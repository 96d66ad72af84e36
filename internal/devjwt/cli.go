package devjwt

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"time"
)

// DemoKeyID is the kid of the keys that the demo tool makes.
const DemoKeyID = "rkms-demo"

const usage = `usage: rkms-demo-token COMMAND [flags]

Tokens for the rkms demo (examples/demo.sh) and the compose example: NOT FOR PRODUCTION.

  init  [-dir DIR]                    make an Ed25519 signing key (DIR/signing-key.pem) and the
                                      JWKS Envoy verifies with (DIR/jwks.json), unless DIR has one
  mint  [-dir DIR] [-ttl D] TENANT    print a token for TENANT signed with DIR's key
  forge [-dir DIR] [-ttl D] TENANT    print a token for TENANT signed with a throwaway key under
                                      the same kid: what a forger sends; Envoy must refuse it

DIR defaults to rkms-data/demo/jwt. Tokens carry iss %s, aud %s,
the claim "tenant" and an expiry (-ttl, default 1h).
`

// Main runs the demo token tool (cmd/rkms-demo-token) with args (without the program name).
func Main(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintf(stderr, usage, DefaultIssuer, DefaultAudience)
		return errors.New("no command")
	}
	cmd := args[0]
	flags := flag.NewFlagSet("rkms-demo-token "+cmd, flag.ContinueOnError)
	flags.SetOutput(stderr)
	dir := flags.String("dir", filepath.Join("rkms-data", "demo", "jwt"), "directory of the signing key and the JWKS")
	ttl := flags.Duration("ttl", time.Hour, "validity of a minted token")
	if err := flags.Parse(args[1:]); err != nil {
		return err
	}
	switch cmd {
	case "init":
		if flags.NArg() != 0 {
			return fmt.Errorf("init takes no arguments")
		}
		return initDir(*dir, stdout)
	case "mint", "forge":
		if flags.NArg() != 1 || flags.Arg(0) == "" {
			return fmt.Errorf("%s needs one TENANT", cmd)
		}
		if *ttl <= 0 {
			return fmt.Errorf("-ttl %s: want a positive duration", *ttl)
		}
		iss, err := Load(*dir)
		if err != nil {
			return fmt.Errorf("load signing key (run rkms-demo-token init -dir %s first): %w", *dir, err)
		}
		if cmd == "forge" {
			forger, err := Generate(iss.KeyID)
			if err != nil {
				return err
			}
			iss = forger
		}
		tok, err := iss.Sign(iss.Tenant(flags.Arg(0), time.Now(), *ttl))
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, tok)
		return err
	default:
		fmt.Fprintf(stderr, usage, DefaultIssuer, DefaultAudience)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

// initDir makes a signing key and JWKS in dir, or keeps the ones there (rewriting the JWKS from
// the key, so that the two always match).
func initDir(dir string, stdout io.Writer) error {
	iss, err := Load(dir)
	switch {
	case err == nil:
		fmt.Fprintf(stdout, "kept the signing key in %s\n", dir)
	case errors.Is(err, fs.ErrNotExist):
		if iss, err = Generate(DemoKeyID); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "made a signing key in %s\n", dir)
	default:
		return err
	}
	if err := iss.Save(dir); err != nil {
		return fmt.Errorf("save %s: %w", dir, err)
	}
	_, err = fmt.Fprintf(stdout, "JWKS for Envoy: %s\n", filepath.Join(dir, JWKSFile))
	return err
}
