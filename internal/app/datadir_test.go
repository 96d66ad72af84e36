package app

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/rkms/rkms/internal/testing/env"
)

// TestServeFilesUnderDataDir is defect 1 of issue 15 through `rkms serve`: a file that sets only
// data_dir (and the ports) gets the admin token, the embedded store, the local KMS keys and the
// warm-up file in that directory, and nothing in ./rkms-data.
func TestServeFilesUnderDataDir(t *testing.T) {
	t.Setenv("RKMS_ADMIN_TOKEN", "")
	cwd := t.TempDir()
	t.Chdir(cwd)
	data := filepath.Join(t.TempDir(), "elsewhere")
	cfg := writeConfig(t, cwd, fmt.Sprintf("data_dir: %s\nadmin: {listen: 127.0.0.1:%d, grpc_listen: \"\"}\n"+
		"extproc: {listen: 127.0.0.1:%d}\ncache: {warmup: {enabled: true}}\n", data, testenv.FreePort(t), testenv.FreePort(t)))
	r := startServe(t, "--config", cfg)
	if code := r.stop(); code != 0 {
		t.Fatalf("exit %d: %s", code, r.stderr)
	}
	for _, name := range []string{"admin.token", "keys.db", "local-kms", "recent-key-ids"} {
		if _, err := os.Stat(filepath.Join(data, name)); err != nil {
			t.Errorf("%s not under data_dir: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(cwd, "rkms-data")); !os.IsNotExist(err) {
		t.Errorf("./rkms-data was created: %v", err)
	}
}
