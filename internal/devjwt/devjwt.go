// Package devjwt mints JSON Web Tokens and the JWKS that verifies them, for the demo and the
// tests: the tokens that the shipped Envoy configurations (envoy/ingress.yaml, jwt_authn) accept,
// and the broken ones they must refuse.
//
// It is not an identity provider. Keys are Ed25519 (JWS alg EdDSA, JWK kty OKP); a token is
// signed with [Issuer.Sign] and checked by nothing here: Envoy is the verifier.
//
// # Claims
//
// [Issuer.Tenant] makes the tokens rkms's policies expect: iss [DefaultIssuer], aud
// [DefaultAudience] (the values of envoy/ingress.yaml's provider), sub, the string claim
// "tenant" that a key id template reads with {jwt:tenant}, iat and exp.
//
// # Keys
//
// [Generate] makes a fresh key (the demo's, written to its data directory with [Issuer.Save]);
// [New] takes a given one (the tests' fixed key, in internal/testing/envoytest). Never use either for
// anything but tests and demos.
package devjwt

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// The issuer and audience that envoy/ingress.yaml's jwt_authn provider accepts (envoy_test.go
// checks that they agree). A deployment replaces both with its identity provider's.
const (
	DefaultIssuer   = "https://issuer.example.com"
	DefaultAudience = "https://app.example.com"
)

// TenantClaim is the claim that names the tenant; policies read it with {jwt:tenant}.
const TenantClaim = "tenant"

// Issuer signs tokens with one Ed25519 key.
type Issuer struct {
	Issuer   string // the iss claim of Tenant tokens
	Audience string // the aud claim of Tenant tokens
	KeyID    string // the kid of the key, in token headers and in the JWKS
	key      ed25519.PrivateKey
}

// New returns an issuer that signs with key under kid, for DefaultIssuer and DefaultAudience.
func New(key ed25519.PrivateKey, kid string) *Issuer {
	return &Issuer{Issuer: DefaultIssuer, Audience: DefaultAudience, KeyID: kid, key: key}
}

// Generate returns an issuer with a fresh random key.
func Generate(kid string) (*Issuer, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ed25519 key: %w", err)
	}
	return New(key, kid), nil
}

// Claims is a token payload.
type Claims map[string]any

// Tenant returns the claims of a token for tenant, issued at now and valid for ttl, with the
// issuer's iss and aud.
func (i *Issuer) Tenant(tenant string, now time.Time, ttl time.Duration) Claims {
	return Claims{
		"iss":       i.Issuer,
		"aud":       i.Audience,
		"sub":       "user@" + tenant,
		TenantClaim: tenant,
		"iat":       now.Unix(),
		"exp":       now.Add(ttl).Unix(),
	}
}

// Sign returns a compact JWS (header.payload.signature) of claims, signed with EdDSA.
func (i *Issuer) Sign(claims Claims) (string, error) {
	head, err := encode(map[string]string{"alg": "EdDSA", "typ": "JWT", "kid": i.KeyID})
	if err != nil {
		return "", err
	}
	body, err := encode(claims)
	if err != nil {
		return "", err
	}
	input := head + "." + body
	return input + "." + b64(ed25519.Sign(i.key, []byte(input))), nil
}

// Unsigned returns a token with header {"alg":"none"} and an empty signature: what a client that
// hopes for a verifier accepting unsigned tokens sends.
func Unsigned(claims Claims) (string, error) {
	head, err := encode(map[string]string{"alg": "none", "typ": "JWT"})
	if err != nil {
		return "", err
	}
	body, err := encode(claims)
	if err != nil {
		return "", err
	}
	return head + "." + body + ".", nil
}

// JWKS returns the JSON Web Key Set holding the issuer's public key, as Envoy's jwt_authn
// local_jwks reads it.
func (i *Issuer) JWKS() []byte {
	b, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": i.KeyID,
		"x": b64(i.key.Public().(ed25519.PublicKey)),
	}}})
	return append(b, '\n')
}

// Files in a directory written by Save.
const (
	KeyFile  = "signing-key.pem" // the private key (PKCS #8), mode 0600
	JWKSFile = "jwks.json"       // the public key set, for Envoy
)

// Save writes the private key and the JWKS to dir (created if needed).
func (i *Issuer) Save(dir string) error {
	der, err := x509.MarshalPKCS8PrivateKey(i.key)
	if err != nil {
		return fmt.Errorf("encode signing key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	block := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{"Kid": i.KeyID}, Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, KeyFile), block, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, JWKSFile), i.JWKS(), 0o644)
}

// Load reads the key that Save wrote to dir.
func Load(dir string) (*Issuer, error) {
	path := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: no PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: %T, want an Ed25519 key", path, k)
	}
	kid := block.Headers["Kid"]
	if kid == "" {
		return nil, errors.New(path + ": no Kid header")
	}
	return New(key, kid), nil
}

func encode(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode token: %w", err)
	}
	return b64(b), nil
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
