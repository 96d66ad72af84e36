package keyapi

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rkms/rkms/internal/keyservice"
	"github.com/rkms/rkms/keyring/keyringtest"
)

// TestTokenComparedExactly: the gRPC key API compares the token byte for byte, like the admin
// HTTP API (internal/admin TestTokenComparedExactly); only the scheme is case-insensitive.
func TestTokenComparedExactly(t *testing.T) {
	const tok = "Xy7-kQ2m-PLAIN-token-Zz"
	c := serve(t, keyringtest.NewFake(), keyservice.Options{Token: tok})
	do := func(auth string) codes.Code {
		ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", auth)
		_, err := get("alice")(ctx, c)
		return status.Code(err)
	}
	if got := do("bearer " + tok); got != codes.OK {
		t.Fatalf("exact token: %v", got)
	}
	swapped := strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z':
			return r - 32
		case 'A' <= r && r <= 'Z':
			return r + 32
		}
		return r
	}, tok)
	for _, v := range []string{strings.ToUpper(tok), strings.ToLower(tok), swapped, tok[:len(tok)-1], tok + "x"} {
		if got := do("Bearer " + v); got != codes.Unauthenticated {
			t.Errorf("token %q: %v, want Unauthenticated", v, got)
		}
	}
}
