package testenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// Envoy is one real Envoy process.
type Envoy struct {
	AdminURL string // http://127.0.0.1:PORT of the admin listener
	proc     *process
}

// EnvoyBin returns the path of the envoy binary (RKMS_ENVOY, else .tools/venv/bin/envoy).
// It fails t when Envoy is not installed.
func EnvoyBin(t testing.TB) string {
	t.Helper()
	return tool(t, "RKMS_ENVOY", "envoy", filepath.Join(RepoRoot(t), ".tools", "venv", "bin", "envoy"))
}

// StartEnvoy runs Envoy with bootstrapYAML (which must configure an admin listener on 127.0.0.1)
// with one worker thread and a dynamic base id, and waits until its admin /ready answers 200.
// Envoy is killed at test cleanup.
func StartEnvoy(t testing.TB, bootstrapYAML string) *Envoy {
	t.Helper()
	bin := EnvoyBin(t)
	var boot struct {
		Admin struct {
			Address struct {
				SocketAddress struct {
					Address   string `json:"address"`
					PortValue int    `json:"port_value"`
				} `json:"socket_address"`
			} `json:"address"`
		} `json:"admin"`
	}
	if err := yaml.Unmarshal([]byte(bootstrapYAML), &boot); err != nil {
		t.Fatalf("testenv: envoy bootstrap: %v", err)
	}
	sa := boot.Admin.Address.SocketAddress
	if sa.Address != "127.0.0.1" || sa.PortValue == 0 {
		t.Fatalf("testenv: envoy bootstrap needs admin.address.socket_address on 127.0.0.1 with a port (got %q:%d)", sa.Address, sa.PortValue)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "envoy.yaml")
	if err := os.WriteFile(cfg, []byte(bootstrapYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &Envoy{AdminURL: fmt.Sprintf("http://127.0.0.1:%d", sa.PortValue)}
	client := &http.Client{Timeout: time.Second}
	e.proc = &process{t: t, name: "envoy", logs: &LockedBuffer{Limit: 1 << 20},
		build: func() *exec.Cmd {
			cmd := exec.Command(bin, "-c", cfg, "--concurrency", "1", "--use-dynamic-base-id",
				"--log-level", "warn", "--disable-hot-restart")
			cmd.Dir = dir
			return cmd
		},
		ready: func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.AdminURL+"/ready", nil)
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("admin /ready: %s", resp.Status)
			}
			return nil
		}}
	e.proc.start()
	t.Cleanup(e.proc.stop)
	return e
}

// Stop kills Envoy. Idempotent.
func (e *Envoy) Stop() { e.proc.stop() }

// Output returns Envoy's recent log output, for failure messages.
func (e *Envoy) Output() string { return e.proc.Output() }

// Validate runs `envoy --mode validate` on bootstrapYAML and returns its combined output and error.
func Validate(t testing.TB, bootstrapYAML string) (string, error) {
	t.Helper()
	bin := EnvoyBin(t)
	cfg := filepath.Join(t.TempDir(), "envoy.yaml")
	if err := os.WriteFile(cfg, []byte(bootstrapYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--mode", "validate", "-c", cfg,
		"--use-dynamic-base-id", "--disable-hot-restart", "--log-level", "warn").CombinedOutput()
	return string(out), err
}
