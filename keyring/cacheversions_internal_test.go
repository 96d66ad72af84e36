package keyring

import (
	"errors"
	"testing"
	"time"

	"github.com/rkms/rkms/secret"
)

// TestCacheEntryVersions covers the per-entry version list: lookups by version, the current
// version following the record, a duplicate fill handing out the cached key and wiping its own,
// and unlink wiping every version.
func TestCacheEntryVersions(t *testing.T) {
	tests := []struct {
		name        string
		puts        []struct{ v, recCurrent uint32 }
		wantCurrent uint32
		wantCached  []uint32
		wantMissing []uint32
	}{
		{"one version", []struct{ v, recCurrent uint32 }{{1, 1}}, 1, []uint32{1}, []uint32{0, 2}},
		{"rotated twice", []struct{ v, recCurrent uint32 }{{1, 1}, {2, 2}, {3, 3}}, 3, []uint32{1, 2, 3}, []uint32{4}},
		{"old version opened after the current", []struct{ v, recCurrent uint32 }{{5, 5}, {2, 5}}, 5, []uint32{2, 5}, []uint32{1, 3, 4}},
		{"same version twice", []struct{ v, recCurrent uint32 }{{1, 1}, {1, 1}}, 1, []uint32{1}, []uint32{2}},
	}
	now := time.Unix(1000, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(10, time.Minute, 0, func() time.Time { return now }, 0)
			var handed []*secret.Key
			for _, p := range tt.puts {
				key := secret.New(make([]byte, 32))
				got := c.put(c.generation(), "id", p.v, p.recCurrent, 0, key, origin{})
				if got != key {
					if !errors.Is(key.Use(func([]byte) error { return nil }), secret.ErrWiped) {
						t.Fatal("a duplicate fill's own key was not wiped")
					}
				}
				handed = append(handed, got)
			}
			dk, ok := c.current("id")
			if !ok || dk.Version != tt.wantCurrent {
				t.Fatalf("current = %d, %v; want %d", dk.Version, ok, tt.wantCurrent)
			}
			for _, v := range tt.wantCached {
				if dk, ok := c.version("id", v); !ok || dk.Version != v || dk.Secret == nil {
					t.Fatalf("version %d not cached", v)
				}
			}
			for _, v := range tt.wantMissing {
				if _, ok := c.version("id", v); ok {
					t.Fatalf("version %d cached, want a miss", v)
				}
			}
			c.remove("id")
			for i, k := range handed {
				if !errors.Is(k.Use(func([]byte) error { return nil }), secret.ErrWiped) {
					t.Fatalf("key %d not wiped by remove", i)
				}
			}
		})
	}
}
