package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rkms/rkms/internal/config"
	"github.com/rkms/rkms/internal/testing/env"
)

// composeFile is the part of compose.yaml the test reads.
type composeFile struct {
	Services map[string]struct {
		Image   string   `yaml:"image"`
		Volumes []string `yaml:"volumes"`
		Build   *struct {
			Context    string `yaml:"context"`
			Dockerfile string `yaml:"dockerfile"`
		} `yaml:"build"`
		Environment map[string]string `yaml:"environment"`
	} `yaml:"services"`
}

// TestComposeExample checks examples/compose without Docker: the rkms config passes the config
// check and names the compose services as endpoints, Envoy's bootstrap validates, and every
// mounted file and Dockerfile exists.
func TestComposeExample(t *testing.T) {
	dir := filepath.Join(testenv.RepoRoot(t), "examples", "compose")
	raw, err := os.ReadFile(filepath.Join(dir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	if err := yaml.Unmarshal(raw, &cf); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	for _, name := range []string{"envoy", "rkms", "app", "dynamodb", "kms-us-east-1", "kms-us-west-2", "kms-eu-west-1"} {
		if _, ok := cf.Services[name]; !ok {
			t.Errorf("compose.yaml has no service %s", name)
		}
	}
	for name, s := range cf.Services {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			// ./secrets/ is made by secrets.sh (TestComposeSecrets checks those).
			if strings.HasPrefix(src, "./") && !strings.HasPrefix(src, "./secrets/") {
				if _, err := os.Stat(filepath.Join(dir, src)); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			}
		}
		if s.Build != nil {
			if _, err := os.Stat(filepath.Join(dir, s.Build.Context, s.Build.Dockerfile)); err != nil {
				t.Errorf("service %s builds from %s: %v", name, s.Build.Dockerfile, err)
			}
		}
	}

	// The configurations name the files secrets.sh makes at the paths compose.yaml mounts them:
	// checked with the script's real files in their place.
	testenv.Integration(t) // secrets.sh needs openssl and go; envoy from make tools
	sec := composeSecrets(t)
	b, err := os.ReadFile(filepath.Join(dir, "rkms.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(withMounts(t, sec, "rkms", string(b))))
	if err != nil {
		t.Fatalf("examples/compose/rkms.yaml (with secrets.sh's files) fails rkms config check: %v", err)
	}
	if cfg.ExtProc.TLS.ClientCAFile == "" || cfg.ExtProc.Insecure || !cfg.ExtProc.TrustRequestID {
		t.Errorf("ext_proc tls %+v, insecure %v, trust_request_id %v: want mutual TLS, not insecure, and Envoy's request ids trusted",
			cfg.ExtProc.TLS, cfg.ExtProc.Insecure, cfg.ExtProc.TrustRequestID)
	}
	for _, r := range cfg.KMS.Regions {
		svc := "kms-" + r.Name
		if _, ok := cf.Services[svc]; !ok || r.Endpoint != "http://"+svc+":8080" {
			t.Errorf("region %s: endpoint %s, want the compose service %s", r.Name, r.Endpoint, svc)
		}
		if cf.Services[svc].Environment["KMS_REGION"] != r.Name {
			t.Errorf("service %s simulates region %q, not %s", svc, cf.Services[svc].Environment["KMS_REGION"], r.Name)
		}
		seed, err := os.ReadFile(filepath.Join(dir, "kms", "seed-"+r.Name+".yaml"))
		if err != nil || !strings.Contains(r.KeyID, strings.Fields(strings.Split(string(seed), "KeyId:")[1])[0]) {
			t.Errorf("region %s: key %s is not the one seeded (%v)", r.Name, r.KeyID, err)
		}
	}
	if cfg.Store.DynamoDB.Endpoint != "http://dynamodb:4567" || !strings.HasSuffix(cfg.ExtProc.Listen, ":50051") {
		t.Errorf("store endpoint %s, ext_proc %s", cfg.Store.DynamoDB.Endpoint, cfg.ExtProc.Listen)
	}

	boot, err := os.ReadFile(filepath.Join(dir, "envoy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	boot = []byte(withMounts(t, sec, "envoy", string(boot)))
	for _, want := range []string{"failure_mode_allow: false", "address: rkms, port_value: 50051", "address: app, port_value: 8000"} {
		if !strings.Contains(string(boot), want) {
			t.Errorf("envoy.yaml lacks %q", want)
		}
	}
	if out, err := testenv.Validate(t, string(boot)); err != nil {
		t.Errorf("envoy --mode validate: %v\n%s", err, out)
	}
}

// withMounts returns cfg with the target path of each of service's ./secrets/ mounts replaced by
// the file secrets.sh made.
func withMounts(t *testing.T, sec composeSecretsDir, service, cfg string) string {
	t.Helper()
	for _, m := range composeMounts(t, service) {
		if strings.HasPrefix(m.src, "./secrets/") {
			cfg = strings.ReplaceAll(cfg, m.dst, sec.path(t, m.src))
		}
	}
	return cfg
}
