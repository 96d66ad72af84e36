package memlimit

import (
	"path/filepath"
	"testing"
)

func TestLimit(t *testing.T) {
	for _, tc := range []struct {
		dir   string
		limit int64
		ok    bool
	}{
		{"v2", 256 << 20, true},
		{"v2-max", 0, false},
		{"v2-garbage", 0, false},
		{"v1", 512 << 20, true},
		{"v1-unlimited", 0, false},
		{"v2-over-v1", 128 << 20, true}, // v2 is read first
		{"missing", 0, false},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			limit, ok := Limit(filepath.Join("testdata", tc.dir))
			if limit != tc.limit || ok != tc.ok {
				t.Errorf("Limit = %d, %v; want %d, %v", limit, ok, tc.limit, tc.ok)
			}
		})
	}
}
