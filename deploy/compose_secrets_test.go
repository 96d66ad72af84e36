package deploy

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rkms/rkms/internal/testing/env"
)

// composeSecretsDir is what examples/compose/secrets.sh wrote for one test.
type composeSecretsDir struct{ dir string }

// composeSecrets runs examples/compose/secrets.sh into a fresh directory, with a freshly built
// rkms-demo-token. It needs openssl and go (a missing one fails the test).
func composeSecrets(t *testing.T) composeSecretsDir {
	t.Helper()
	root := testenv.RepoRoot(t)
	bin := filepath.Join(t.TempDir(), "rkms-demo-token")
	if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(root, "cmd", "rkms-demo-token")).CombinedOutput(); err != nil {
		t.Fatalf("build rkms-demo-token: %v\n%s", err, out)
	}
	dir := filepath.Join(t.TempDir(), "secrets")
	cmd := exec.Command("bash", filepath.Join(root, "examples", "compose", "secrets.sh"), dir)
	cmd.Env = append(os.Environ(), "RKMS_DEMO_TOKEN="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("secrets.sh: %v\n%s", err, out)
	}
	return composeSecretsDir{dir: dir}
}

// path maps a compose.yaml mount source under ./secrets/ to the file secrets.sh wrote.
func (s composeSecretsDir) path(t testing.TB, src string) string {
	t.Helper()
	rel, ok := strings.CutPrefix(src, "./secrets/")
	if !ok {
		t.Fatalf("%s is not under ./secrets/", src)
	}
	return filepath.Join(s.dir, rel)
}

func (s composeSecretsDir) cert(t testing.TB, name string) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(s.dir, name+".pem"), filepath.Join(s.dir, name+"-key.pem"))
	if err != nil {
		t.Fatalf("secrets.sh %s: %v", name, err)
	}
	return pair.Leaf
}

func (s composeSecretsDir) pool(t testing.TB) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatal("secrets.sh ca.pem holds no certificate")
	}
	return p
}

// rkmsServerTLS is what examples/compose/rkms.yaml configures for ext_proc: the script's rkms
// certificate, and client certificates of the script's CA required.
func (s composeSecretsDir) rkmsServerTLS(t testing.TB) *tls.Config {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(s.dir, "rkms.pem"), filepath.Join(s.dir, "rkms-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: s.pool(t),
		ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
}

// mount is one bind mount of compose.yaml.
type mount struct{ src, dst string }

// composeMounts returns the bind mounts of a compose.yaml service.
func composeMounts(t testing.TB, service string) []mount {
	t.Helper()
	var cf composeFile
	if err := yaml.Unmarshal([]byte(readRepoFile(t, "examples/compose/compose.yaml")), &cf); err != nil {
		t.Fatal(err)
	}
	var out []mount
	for _, v := range cf.Services[service].Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && strings.HasPrefix(parts[0], "./") {
			out = append(out, mount{parts[0], parts[1]})
		}
	}
	return out
}

// TestComposeSecrets: secrets.sh makes a CA, rkms's server certificate for the compose name
// "rkms" and Envoy's client certificate, which verify against it for their purpose only, and the
// token signing key and JWKS; every ./secrets/ file compose.yaml mounts is among them, and the
// paths rkms.yaml and envoy.yaml read are the mounts' targets.
func TestComposeSecrets(t *testing.T) {
	testenv.Integration(t) // openssl and go
	s := composeSecrets(t)
	pool := s.pool(t)
	for _, tc := range []struct {
		name, dns string
		usage     x509.ExtKeyUsage
	}{
		{"rkms", "rkms", x509.ExtKeyUsageServerAuth},
		{"envoy-client", "envoy", x509.ExtKeyUsageClientAuth},
	} {
		c := s.cert(t, tc.name)
		opts := x509.VerifyOptions{Roots: pool, DNSName: tc.dns, KeyUsages: []x509.ExtKeyUsage{tc.usage}}
		if _, err := c.Verify(opts); err != nil {
			t.Errorf("%s certificate: %v", tc.name, err)
		}
		other := x509.ExtKeyUsageServerAuth + x509.ExtKeyUsageClientAuth - tc.usage
		if _, err := c.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{other}}); err == nil {
			t.Errorf("%s certificate is valid for %v too", tc.name, other)
		}
		if c.NotAfter.After(time.Now().Add(31 * 24 * time.Hour)) {
			t.Errorf("%s certificate valid until %s: the example's are short-lived", tc.name, c.NotAfter)
		}
	}
	if _, err := os.Stat(filepath.Join(s.dir, "ca-key.pem")); err == nil {
		t.Error("secrets.sh left the CA's private key behind")
	}

	rkmsCfg, envoyCfg := readRepoFile(t, "examples/compose/rkms.yaml"), readRepoFile(t, "examples/compose/envoy.yaml")
	for svc, cfg := range map[string]string{"rkms": rkmsCfg, "envoy": envoyCfg} {
		ms := composeMounts(t, svc)
		for _, m := range ms {
			if !strings.HasPrefix(m.src, "./secrets/") {
				continue
			}
			if _, err := os.Stat(s.path(t, m.src)); err != nil {
				t.Errorf("service %s mounts %s, which secrets.sh does not make: %v", svc, m.src, err)
			}
			if !strings.Contains(cfg, m.dst) {
				t.Errorf("service %s mounts %s at %s, which its configuration does not read", svc, m.src, m.dst)
			}
		}
		if !slices.ContainsFunc(ms, func(m mount) bool { return strings.HasPrefix(m.src, "./secrets/") }) {
			t.Errorf("service %s mounts nothing from secrets.sh", svc)
		}
	}
}
