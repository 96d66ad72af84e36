package app

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rkms/rkms/internal/testing/env"
)

// TestServeWithCredentials starts rkms on the embedded store and local KMS with two named
// credentials: ops (every operation) creates and rotates a key; reader (read only, tenant-
// ids) reads it but may not rotate it, create another or read outside its prefix (403); the
// single token no longer works; the audit records carry each caller's name.
func TestServeWithCredentials(t *testing.T) {
	t.Setenv("RKMS_ADMIN_TOKEN", "")
	dir := t.TempDir()
	t.Chdir(dir)
	const opsToken, readerToken = "ops-token-0123456789abcdef", "reader-token-0123456789ab"
	if err := os.WriteFile(filepath.Join(dir, "ops.token"), []byte(opsToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RKMS_READER_TOKEN", readerToken)
	cfg := writeConfig(t, dir, fmt.Sprintf(`admin:
  listen: 127.0.0.1:%d
  grpc_listen: 127.0.0.1:%d
  credentials:
    - name: ops
      token_file: ops.token
      allow: [read, create, rotate, delete, list]
    - name: reader
      token_env: RKMS_READER_TOKEN
      allow: [read]
      id_prefixes: ["tenant-"]
extproc: {listen: 127.0.0.1:%d}
`, testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)))

	r := startServe(t, "--config", cfg)
	if strings.Contains(r.stdout.String(), "generated admin token") || !strings.Contains(r.stdout.String(), "admin.credentials: ops, reader") {
		t.Fatalf("banner: %s", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "rkms-data", "admin.token")); err == nil {
		t.Error("a single admin token was generated next to the credentials")
	}
	base := "http://" + r.admin
	steps := []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/key?id=tenant-acme", opsToken, http.StatusOK},    // ops creates
		{"GET", "/key?id=tenant-acme", readerToken, http.StatusOK}, // reader reads
		{"POST", "/key/rotate?id=tenant-acme", readerToken, http.StatusForbidden},
		{"GET", "/key?id=tenant-new", readerToken, http.StatusForbidden}, // would create
		{"GET", "/key?id=other", readerToken, http.StatusForbidden},      // outside its prefix
		{"DELETE", "/key?id=tenant-acme", readerToken, http.StatusForbidden},
		{"POST", "/key/rotate?id=tenant-acme", opsToken, http.StatusOK}, // ops rotates
		{"GET", "/key?id=tenant-acme", "not-a-token-0123456789", http.StatusUnauthorized},
	}
	for _, s := range steps {
		if st, resp := call(t, s.method, base+s.path, s.token); st != s.want {
			t.Fatalf("%s %s as %.6s: %d %+v, want %d", s.method, s.path, s.token, st, resp, s.want)
		}
	}
	if _, kr := call(t, "GET", base+"/key?id=tenant-acme", readerToken); kr.Version != 2 {
		t.Fatalf("reader sees version %d after the rotation, want 2", kr.Version)
	}
	if code := r.stop(); code != 0 {
		t.Fatalf("serve exit code %d: %s", code, r.stderr)
	}
	logs := r.stderr.String()
	// Each audited event, as the attributes its one record must carry.
	for _, want := range [][]string{
		{`"op":"create"`, `"key_id":"tenant-acme"`, `"result":"ok"`, `"principal":"ops"`},
		{`"op":"read"`, `"key_id":"tenant-acme"`, `"result":"ok"`, `"principal":"reader"`},
		{`"op":"rotate"`, `"key_id":"tenant-acme"`, `"result":"denied"`, `"principal":"reader"`},
		{`"op":"create"`, `"key_id":"tenant-new"`, `"result":"denied"`, `"principal":"reader"`},
		{`"op":"rotate"`, `"key_id":"tenant-acme"`, `"version":2`, `"result":"ok"`, `"principal":"ops"`},
	} {
		if !hasRecord(logs, want) {
			t.Errorf("no audit record with %v", want)
		}
	}
	if strings.Contains(logs, opsToken) || strings.Contains(logs, readerToken) {
		t.Error("a token is in the logs")
	}
}

// hasRecord reports whether one line of logs contains every part.
func hasRecord(logs string, parts []string) bool {
	for _, line := range strings.Split(logs, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}
