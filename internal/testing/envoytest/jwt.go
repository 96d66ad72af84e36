package envoytest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rkms/rkms/internal/devjwt"
)

// The tests' bearer tokens. Every test that sends requests through a shipped Envoy configuration
// (envoy/, deploy/, extproc/, internal/testing/chaos, internal/testing/load, internal/app) mints them here and
// gives Envoy the JWKS of [WriteJWKS], so that one key and one set of claims serve them all.
//
// The signing key is FIXED AND PUBLIC (derived from a constant string below) so that tokens and
// the JWKS can be made by separate processes (the load tool's children); it protects nothing.
// Never put its JWKS in front of real data.

// testOnlySigningSeed derives the tests' Ed25519 key. TEST ONLY.
var testOnlySigningSeed = sha256.Sum256([]byte("rkms internal/envoytest: TEST-ONLY JWT signing key, public, protects nothing"))

// TestKeyID is the kid of the tests' signing key.
const TestKeyID = "rkms-test-only"

// TestIssuer returns the issuer of the tests' tokens: the fixed test key, with the issuer and
// audience that envoy/ingress.yaml accepts.
func TestIssuer() *devjwt.Issuer {
	return devjwt.New(ed25519.NewKeyFromSeed(testOnlySigningSeed[:]), TestKeyID)
}

// WriteJWKS writes the JWKS of [TestIssuer] to dir/test-only-jwks.json and returns the path.
func WriteJWKS(dir string) (string, error) {
	path := filepath.Join(dir, "test-only-jwks.json")
	if err := os.WriteFile(path, TestIssuer().JWKS(), 0o644); err != nil {
		return "", fmt.Errorf("write test jwks: %w", err)
	}
	return path, nil
}

// JWKSFile writes the JWKS of [TestIssuer] to a fresh temporary directory of t.
func JWKSFile(t testing.TB) string {
	t.Helper()
	path, err := WriteJWKS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// TenantToken returns a valid token for tenant (claim "tenant"), valid for an hour.
func TenantToken(tenant string) (string, error) {
	i := TestIssuer()
	return i.Sign(i.Tenant(tenant, time.Now(), time.Hour))
}

// Token is [TenantToken] for tests.
func Token(t testing.TB, tenant string) string {
	t.Helper()
	tok, err := TenantToken(tenant)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Bearer returns the Authorization header (name, value) that carries a valid token for tenant.
func Bearer(t testing.TB, tenant string) []string {
	t.Helper()
	return []string{"Authorization", "Bearer " + Token(t, tenant)}
}

// BadToken is a token that a shipped configuration must refuse, and why.
type BadToken struct {
	Name  string // what is wrong with it
	Token string
	// Status is what Envoy 1.40's jwt_authn answers: 401, or 403 for an audience it does not
	// accept.
	Status int
}

// BadTokens returns, for tenant, one token of each kind that must be refused: signed with another
// key under the same kid (forged), with its payload changed after signing (tampered), unsigned
// (alg none), expired, not yet valid, without exp, from another issuer, for another audience, and
// not a JWT at all.
func BadTokens(t testing.TB, tenant string) []BadToken {
	t.Helper()
	now := time.Now()
	good := TestIssuer()
	forger, err := devjwt.Generate(TestKeyID)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(i *devjwt.Issuer, c devjwt.Claims) string {
		tok, err := i.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	claims := func(edit func(devjwt.Claims)) devjwt.Claims {
		c := good.Tenant(tenant, now, time.Hour)
		if edit != nil {
			edit(c)
		}
		return c
	}
	unsigned, err := devjwt.Unsigned(claims(nil))
	if err != nil {
		t.Fatal(err)
	}
	// The payload of a valid token for another tenant, with this tenant's payload swapped in.
	other := strings.Split(sign(good, good.Tenant(tenant+"-other", now, time.Hour)), ".")
	mine := strings.Split(sign(good, claims(nil)), ".")
	tampered := other[0] + "." + mine[1] + "." + other[2]
	return []BadToken{
		{"forged (another key, same kid)", sign(forger, claims(nil)), 401},
		{"tampered payload", tampered, 401},
		{"unsigned (alg none)", unsigned, 401},
		{"expired", sign(good, claims(func(c devjwt.Claims) {
			c["iat"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
		})), 401},
		{"not yet valid", sign(good, claims(func(c devjwt.Claims) { c["nbf"] = now.Add(time.Hour).Unix() })), 401},
		{"no exp", sign(good, claims(func(c devjwt.Claims) { delete(c, "exp") })), 401},
		{"wrong issuer", sign(good, claims(func(c devjwt.Claims) { c["iss"] = "https://evil.example.com" })), 401},
		{"wrong audience", sign(good, claims(func(c devjwt.Claims) { c["aud"] = "https://other-app.example.com" })), 403},
		{"not a JWT", "not-a-jwt", 401},
	}
}
