// Command rkms-demo-token makes the signing key and JWKS of the rkms demo and mints its bearer
// tokens (see internal/devjwt): `make demo` and examples/compose use it. NOT FOR PRODUCTION: a
// real deployment gets its tokens from its identity provider.
//
//	rkms-demo-token init -dir rkms-data/demo/jwt
//	rkms-demo-token mint -dir rkms-data/demo/jwt acme
package main

import (
	"fmt"
	"os"

	"github.com/rkms/rkms/internal/devjwt"
)

func main() {
	if err := devjwt.Main(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "rkms-demo-token:", err)
		os.Exit(2)
	}
}
