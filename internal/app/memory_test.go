package app

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rkms/rkms/internal/config"
)

// TestSizeMemory: the body budget is the configured one, else half the container limit (256 MiB
// when none is known); the Go soft limit is 90 % of the container limit unless GOMEMLIMIT is set.
func TestSizeMemory(t *testing.T) {
	v2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(v2, "memory.max"), []byte("268435456\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	none := filepath.Join(t.TempDir(), "missing")
	ext := config.Default().ExtProc
	configured := ext
	configured.MemoryBudgetBytes = 64 << 20
	for _, tc := range []struct {
		name      string
		e         config.ExtProc
		root, env string
		want      memorySettings
	}{
		{"container limit", ext, v2, "", memorySettings{containerLimit: 256 << 20, budget: 128 << 20, goLimit: 256 << 20 / 10 * 9}},
		{"GOMEMLIMIT set", ext, v2, "200MiB", memorySettings{containerLimit: 256 << 20, budget: 128 << 20}},
		{"no limit known", ext, none, "", memorySettings{budget: 256 << 20}},
		{"budget configured", configured, v2, "", memorySettings{containerLimit: 256 << 20, budget: 64 << 20, goLimit: 256 << 20 / 10 * 9}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sizeMemory(tc.e, tc.root, tc.env); got != tc.want {
				t.Errorf("sizeMemory = %+v, want %+v", got, tc.want)
			}
		})
	}
}
