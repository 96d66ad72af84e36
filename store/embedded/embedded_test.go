package embedded_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rkms/rkms/store"
	"github.com/rkms/rkms/store/embedded"
	"github.com/rkms/rkms/store/storetest"
)

var embeddedOpen = embedded.Open

func open(t *testing.T, path string) *embedded.Store {
	t.Helper()
	s, err := embedded.Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "keys.db"))
	})
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new", "dir", "keys.db")
	open(t, path)
	tests := []struct {
		path string
		want os.FileMode
	}{
		{path, 0o600},
		{filepath.Dir(path), 0o700 | os.ModeDir},
	}
	for _, tc := range tests {
		fi, err := os.Stat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != tc.want {
			t.Errorf("%s has mode %v, want %v", tc.path, fi.Mode(), tc.want)
		}
	}
}

func TestSecondOpenFailsClearly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.db")
	open(t, path)
	start := time.Now()
	s, err := embedded.Open(path)
	elapsed := time.Since(start)
	if err == nil {
		_ = s.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if !errors.Is(err, embedded.ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if elapsed > embedded.LockTimeout+2*time.Second {
		t.Fatalf("second Open took %v, more than the lock timeout %v", elapsed, embedded.LockTimeout)
	}
	t.Logf("second Open failed after %v: %v", elapsed.Round(time.Millisecond), err)
}

func TestDataSurvivesReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "keys.db")
	s, err := embedded.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	rec := &store.Record{ID: "k", Current: 1, Versions: []store.Version{{
		Number: 1, Created: time.Unix(1700000000, 0).UTC(),
		Wrapped: map[string]store.Wrapped{"us-east-1": {KeyID: "kid", Blob: []byte{0, 1, 0xfe, 0xff}}},
	}}}
	if err := s.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Get after Close = %v, want ErrUnavailable", err)
	}

	s2 := open(t, path)
	got, err := s2.Get(ctx, "k")
	if err != nil {
		t.Fatalf("Get after reopen: %v", err)
	}
	if got.Revision != rec.Revision || got.Current != 1 || string(got.Versions[0].Wrapped["us-east-1"].Blob) != "\x00\x01\xfe\xff" {
		t.Fatalf("after reopen got %+v", got)
	}
}

func TestOpenRejects(t *testing.T) {
	dir := t.TempDir()
	notBolt := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(notBolt, []byte("this is not a bbolt file, just some text padding it out......"), 0o600); err != nil {
		t.Fatal(err)
	}
	parentIsFile := filepath.Join(notBolt, "keys.db")
	tests := []struct {
		name string
		path string
	}{
		{"empty-path", ""},
		{"not-bbolt", notBolt},
		{"parent-is-file", parentIsFile},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := embedded.Open(tc.path)
			if err == nil {
				_ = s.Close()
				t.Fatalf("Open(%q) succeeded", tc.path)
			}
		})
	}
}
