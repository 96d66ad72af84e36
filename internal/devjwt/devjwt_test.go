package devjwt

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// verify checks tok's EdDSA signature against the first key of jwks and returns its header and
// payload. Envoy is the real verifier (envoy/ and deploy/ tests); this checks the encoding.
func verify(t *testing.T, jwks []byte, tok string) (head, payload map[string]any, ok bool) {
	t.Helper()
	var set struct {
		Keys []struct{ Kty, Crv, X, Kid, Alg string }
	}
	if err := json.Unmarshal(jwks, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("jwks %s: %v", jwks, err)
	}
	k := set.Keys[0]
	if k.Kty != "OKP" || k.Crv != "Ed25519" || k.Alg != "EdDSA" || k.Kid == "" {
		t.Fatalf("jwk %+v", k)
	}
	pub, err := base64.RawURLEncoding.DecodeString(k.X)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		t.Fatalf("jwk x %q: %v", k.X, err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q: %d parts", tok, len(parts))
	}
	for i, v := range []*map[string]any{&head, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, v) != nil {
			t.Fatalf("token part %d %q: %v", i, parts[i], err)
		}
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	return head, payload, ed25519.Verify(pub, []byte(parts[0]+"."+parts[1]), sig)
}

func TestSign(t *testing.T) {
	iss, err := Generate("k1")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	tok, err := iss.Sign(iss.Tenant("acme", now, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	head, p, ok := verify(t, iss.JWKS(), tok)
	if !ok || head["alg"] != "EdDSA" || head["kid"] != "k1" || head["typ"] != "JWT" {
		t.Fatalf("header %v, signature valid %v", head, ok)
	}
	if p["iss"] != DefaultIssuer || p["aud"] != DefaultAudience || p[TenantClaim] != "acme" ||
		p["iat"] != float64(1_800_000_000) || p["exp"] != float64(1_800_003_600) {
		t.Errorf("payload %v", p)
	}

	other, _ := Generate("k1")
	forged, _ := other.Sign(iss.Tenant("acme", now, time.Hour))
	if _, _, ok := verify(t, iss.JWKS(), forged); ok {
		t.Error("a token of another key verifies")
	}
	un, err := Unsigned(iss.Tenant("acme", now, time.Hour))
	if err != nil || !strings.HasSuffix(un, ".") || strings.Count(un, ".") != 2 {
		t.Fatalf("unsigned token %q: %v", un, err)
	}
	b, _ := base64.RawURLEncoding.DecodeString(strings.Split(un, ".")[0])
	if string(b) != `{"alg":"none","typ":"JWT"}` {
		t.Errorf("unsigned header %s", b)
	}
}

func TestSaveLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "jwt")
	iss, _ := Generate("k2")
	if err := iss.Save(dir); err != nil {
		t.Fatal(err)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.KeyID != "k2" || !bytes.Equal(got.JWKS(), iss.JWKS()) {
		t.Errorf("loaded %+v", got)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("signing key file mode %v (%v), want 0600", fi.Mode(), err)
	}
	if _, err := Load(t.TempDir()); !os.IsNotExist(err) {
		t.Errorf("Load of an empty dir: %v", err)
	}
}

func TestCLI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "jwt")
	run := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := Main(args, &out, &errb)
		return out.String() + errb.String(), err
	}
	if out, err := run("init", "-dir", dir); err != nil || !strings.Contains(out, "made a signing key") {
		t.Fatalf("init: %v %s", err, out)
	}
	jwks, _ := os.ReadFile(filepath.Join(dir, JWKSFile))
	if out, err := run("init", "-dir", dir); err != nil || !strings.Contains(out, "kept the signing key") {
		t.Fatalf("second init: %v %s", err, out)
	}
	if again, _ := os.ReadFile(filepath.Join(dir, JWKSFile)); !bytes.Equal(again, jwks) {
		t.Error("a second init changed the key")
	}
	tok, err := run("mint", "-dir", dir, "-ttl", "5m", "acme")
	if err != nil {
		t.Fatal(err)
	}
	_, p, ok := verify(t, jwks, strings.TrimSpace(tok))
	if !ok || p[TenantClaim] != "acme" || p["exp"].(float64)-p["iat"].(float64) != 300 {
		t.Errorf("minted token: valid %v, payload %v", ok, p)
	}
	forged, err := run("forge", "-dir", dir, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if head, _, ok := verify(t, jwks, strings.TrimSpace(forged)); ok || head["kid"] != DemoKeyID {
		t.Errorf("forged token verifies (%v) or has another kid (%v)", ok, head["kid"])
	}
	for _, args := range [][]string{nil, {"nope"}, {"mint", "-dir", dir}, {"mint", "-dir", t.TempDir(), "acme"},
		{"mint", "-dir", dir, "-ttl", "-1s", "acme"}, {"init", "-dir", dir, "extra"}} {
		if _, err := run(args...); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
}
