package testenv

import (
	"context"
	"fmt"
	"io"
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
	e, err := LaunchEnvoy(context.Background(), EnvoyBin(t), t.TempDir(), bootstrapYAML, nil, 0)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(e.Stop)
	return e
}

// LaunchEnvoy is the one Envoy launcher of the rigs: [StartEnvoy] for tests, and rigs that run
// outside go test (cmd/rkms-load) call it directly. It writes bootstrapYAML (which must configure
// an admin listener on 127.0.0.1) into dir, runs bin on it in dir with one worker thread, a
// dynamic base id, no hot restart and warnings only, and returns once admin /ready answers 200,
// waiting at most wait (0: 30 s) or until ctx is done. Envoy's output is kept for
// [Envoy.Output] and also copied to logs (nil: not copied). The caller must call [Envoy.Stop].
func LaunchEnvoy(ctx context.Context, bin, dir, bootstrapYAML string, logs io.Writer, wait time.Duration) (*Envoy, error) {
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
		return nil, fmt.Errorf("envoy bootstrap: %w", err)
	}
	sa := boot.Admin.Address.SocketAddress
	if sa.Address != "127.0.0.1" || sa.PortValue == 0 {
		return nil, fmt.Errorf("envoy bootstrap needs admin.address.socket_address on 127.0.0.1 with a port (got %q:%d)", sa.Address, sa.PortValue)
	}
	cfg := filepath.Join(dir, "envoy.yaml")
	if err := os.WriteFile(cfg, []byte(bootstrapYAML), 0o600); err != nil {
		return nil, err
	}
	e := &Envoy{AdminURL: fmt.Sprintf("http://127.0.0.1:%d", sa.PortValue)}
	client := &http.Client{Timeout: time.Second}
	e.proc = &process{name: "envoy", logs: &LockedBuffer{Limit: 1 << 20}, tee: logs, wait: wait,
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
	if err := e.proc.launch(ctx, 3); err != nil {
		return nil, fmt.Errorf("envoy did not become ready: %w\n--- output ---\n%s", err, e.proc.Output())
	}
	return e, nil
}

// Stop kills Envoy. Idempotent.
func (e *Envoy) Stop() { e.proc.stop() }

// Pid is the Envoy process's id (0 when it is not running), to read its CPU time and memory
// from /proc.
func (e *Envoy) Pid() int { return e.proc.pid() }

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
