package app

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rkms/rkms/internal/testing/env"
)

func TestRecentIDsFile(t *testing.T) {
	tests := []struct {
		name string
		file string // "" = no file
		max  int
		want []string
	}{
		{"missing file", "", 10, nil},
		{"ids", "a\nb\nc\n", 10, []string{"a", "b", "c"}},
		{"capped", "a\nb\nc\n", 2, []string{"a", "b"}},
		{"invalid and repeated lines skipped", "a\n\nbad id\na\n" + strings.Repeat("x", 300) + "\nb", 10, []string{"a", "b"}},
		{"no trailing newline, spaces", "  a \r\nb", 10, []string{"a", "b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ids")
			if tc.file != "" {
				if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := readIDs(path, tc.max)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("readIDs = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	path := filepath.Join(t.TempDir(), "sub", "ids")
	if err := writeIDs(path, []string{"x", "y"}); err != nil {
		t.Fatal(err)
	}
	if got, err := readIDs(path, 10); err != nil || !slices.Equal(got, []string{"x", "y"}) {
		t.Fatalf("round trip: %v %v", got, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode: %v %v", fi.Mode(), err)
	}
}

// TestWarmupAcrossRestart: a replica saves the ids it used when it stops, and unwraps them
// again at its next start before /readyz says ready.
func TestWarmupAcrossRestart(t *testing.T) {
	t.Setenv("RKMS_ADMIN_TOKEN", "test-token-0123456789")
	dir := t.TempDir()
	t.Chdir(dir)
	cfg := writeConfig(t, dir, fmt.Sprintf(`admin: {listen: 127.0.0.1:%d, grpc_listen: ""}
extproc: {listen: 127.0.0.1:%d}
cache:
  warmup: {enabled: true, max_keys: 2, timeout: 10s, save_interval: 1h}
`, testenv.FreePort(t), testenv.FreePort(t)))
	token := "test-token-0123456789"

	r := startServe(t, "--config", cfg)
	waitReady(t, r)
	keys := map[string]string{}
	for _, id := range []string{"old", "b", "a"} { // "old" is the least recent: beyond max_keys
		_, k := call(t, "GET", "http://"+r.admin+"/key?id="+id, token)
		keys[id] = k.Key
	}
	if code := r.stop(); code != 0 {
		t.Fatalf("exit %d: %s", code, r.stderr)
	}
	saved, err := readIDs(filepath.Join(dir, "rkms-data", "recent-key-ids"), 10)
	if err != nil || !slices.Equal(saved, []string{"a", "b"}) {
		t.Fatalf("saved ids %v (%v), want [a b]", saved, err)
	}

	r2 := startServe(t, "--config", cfg)
	waitReady(t, r2)
	if !strings.Contains(r2.stderr.String(), `"msg":"cache warm-up done","ids":2,"loaded":2`) {
		t.Fatalf("no warm-up of 2 keys logged:\n%s", r2.stderr)
	}
	for id, want := range keys {
		if _, k := call(t, "GET", "http://"+r2.admin+"/key?id="+id, token); k.Key != want {
			t.Fatalf("key %s changed across the restart", id)
		}
	}
}

func waitReady(t *testing.T, r *running) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + r.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v\n%s", err, r.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
