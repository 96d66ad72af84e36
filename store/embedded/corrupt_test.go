package embedded_test

import (
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/rkms/rkms/store"
	"github.com/rkms/rkms/store/embedded"
)

// writeRaw writes key=value pairs into buckets of a bbolt file, bypassing the store.
func writeRaw(t *testing.T, path string, data map[string]map[string]string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		for bucket, kv := range data {
			b, err := tx.CreateBucketIfNotExists([]byte(bucket))
			if err != nil {
				return err
			}
			for k, v := range kv {
				if err := b.Put([]byte(k), []byte(v)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenRejectsForeignFiles(t *testing.T) {
	tests := []struct {
		name string
		data map[string]map[string]string
	}{
		{"newer-format", map[string]map[string]string{"meta": {"format": "2"}}},
		{"no-format-marker", map[string]map[string]string{"meta": {}}},
		{"records-without-meta", map[string]map[string]string{"records": {"k": "{}"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keys.db")
			writeRaw(t, path, tc.data)
			s, err := embedded.Open(path)
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("Open = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestCorruptRecord(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "keys.db")
	s, err := embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	writeRaw(t, path, map[string]map[string]string{"records": {
		"garbage":  "not json",
		"misnamed": `{"format":1,"id":"other","revision":1,"current":0,"versions":[]}`,
	}})
	s = open(t, path)
	for _, id := range []string{"garbage", "misnamed"} {
		if _, err := s.Get(ctx, id); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("Get(%q) = %v, want ErrCorrupt", id, err)
		}
		if err := s.Update(ctx, &store.Record{ID: id, Revision: 1}); !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("Update(%q) = %v, want ErrCorrupt", id, err)
		}
		if err := s.Create(ctx, &store.Record{ID: id}); !errors.Is(err, store.ErrExists) {
			t.Errorf("Create(%q) over a corrupt record = %v, want ErrExists", id, err)
		}
	}
}
