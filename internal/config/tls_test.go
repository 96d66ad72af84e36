package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rkms/rkms/internal/testing/tlstest"
)

// TestTLSChecks: a tls block must be complete, and its files must exist and parse; `rkms config
// check` reports each problem with its line.
func TestTLSChecks(t *testing.T) {
	ca := tlstest.NewCA(t, "ca")
	srv := ca.Server(t, "server")
	other := tlstest.NewCA(t, "other").Server(t, "other")
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbage, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	absent := filepath.Join(t.TempDir(), "absent.pem")
	tests := []struct {
		name string
		yaml string
		want []string // nil: valid
	}{
		{"admin tls", fmt.Sprintf("admin:\n  tls: {cert_file: %s, key_file: %s}\n", srv.CertFile, srv.KeyFile), nil},
		{"extproc mtls", fmt.Sprintf("extproc:\n  tls:\n    cert_file: %s\n    key_file: %s\n    client_ca_file: %s\n", srv.CertFile, srv.KeyFile, ca.File), nil},
		{"key missing from block", fmt.Sprintf("admin:\n  tls:\n    cert_file: %s\n", srv.CertFile),
			[]string{"line 2: admin.tls.key_file: must be set when admin.tls is used"}},
		{"client ca alone", fmt.Sprintf("extproc:\n  tls:\n    client_ca_file: %s\n", ca.File),
			[]string{"extproc.tls.cert_file: must be set", "extproc.tls.key_file: must be set"}},
		{"cert file absent", fmt.Sprintf("extproc:\n  tls:\n    cert_file: %s\n    key_file: %s\n", absent, srv.KeyFile),
			[]string{"line 2: extproc.tls:", "no such file"}},
		{"key of another certificate", fmt.Sprintf("admin:\n  tls: {cert_file: %s, key_file: %s}\n", srv.CertFile, other.KeyFile),
			[]string{"line 2: admin.tls:", "private key does not match"}},
		{"ca not pem", fmt.Sprintf("admin:\n  tls: {cert_file: %s, key_file: %s, client_ca_file: %s}\n", srv.CertFile, srv.KeyFile, garbage),
			[]string{"admin.tls: client CA file", "holds no PEM certificate"}},
		{"unknown tls key", "admin:\n  tls:\n    certfile: x\n", []string{"line 3:", "certfile"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tt.yaml))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if !cfg.Admin.TLS.Files().Enabled() && !cfg.ExtProc.TLS.Files().Enabled() {
					t.Fatal("tls block not decoded")
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("want problems, got %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("problems %q do not contain %q", err, w)
				}
			}
		})
	}
}

func TestLimitChecks(t *testing.T) {
	tests := []struct {
		yaml, want string
	}{
		{"extproc:\n  max_fields: 0\n", "line 2: extproc.max_fields: must be between 1 and 1000000"},
		{"extproc:\n  max_concurrent_streams: -1\n", "line 2: extproc.max_concurrent_streams: must be between 1 and 1000000"},
		{"extproc:\n  max_compression_ratio: 0\n", "line 2: extproc.max_compression_ratio: must be between 1 and 1048576"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, want %q", tt.yaml, err, tt.want)
		}
	}
	cfg := Default()
	if cfg.ExtProc.MaxFields != 10000 || cfg.ExtProc.MaxConcurrentStreams != 1024 {
		t.Fatalf("defaults: %+v", cfg.ExtProc)
	}
}
