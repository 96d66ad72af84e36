package keysource

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/keyring/localkms"
	"github.com/rkms/rkms/store"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		in   error
		want error
	}{
		{fmt.Errorf("get: %w", keyring.ErrInvalidID), extproc.ErrInvalidKeyID},
		{fmt.Errorf("get: %w", keyring.ErrNotFound), extproc.ErrKeyNotFound},
		{fmt.Errorf("get: %w", keyring.ErrUnavailable), extproc.ErrKeyUnavailable},
		{errors.New("every region refused"), extproc.ErrKeyUnavailable},
	}
	for _, tc := range tests {
		got := Classify(tc.in)
		if !errors.Is(got, tc.want) || !errors.Is(got, tc.in) {
			t.Errorf("Classify(%v) = %v, want %v wrapping the cause", tc.in, got, tc.want)
		}
	}
}

func TestKeyringKeys(t *testing.T) {
	dir := t.TempDir()
	var regions []keyring.Region
	for _, name := range []string{"a", "b", "c"} {
		r, err := localkms.Open(filepath.Join(dir, "kms"), name, nil)
		if err != nil {
			t.Fatal(err)
		}
		regions = append(regions, r)
	}
	kr, err := keyring.New(store.NewMemory(), regions, keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer kr.Close()
	ks := Keyring{kr}
	ctx := context.Background()
	cur, err := ks.Current(ctx, "tenant-a")
	if err != nil || cur.ID != "tenant-a" || cur.Version != 1 || cur.Secret == nil {
		t.Fatalf("Current: %+v %v", cur, err)
	}
	v1, err := ks.Version(ctx, "tenant-a", 1)
	if err != nil || v1.Secret != cur.Secret {
		t.Fatalf("Version: %+v %v", v1, err)
	}
	if _, err := ks.Version(ctx, "tenant-a", 2); !errors.Is(err, extproc.ErrKeyNotFound) {
		t.Fatalf("absent version: %v", err)
	}
	if _, err := ks.Current(ctx, "bad id"); !errors.Is(err, extproc.ErrInvalidKeyID) {
		t.Fatalf("bad id: %v", err)
	}
}
