package config

import (
	"path/filepath"
	"testing"
)

// TestPathsFollowDataDir is defect 1 of issue 15: `data_dir: /x` alone must move every file that
// defaults under the data dir (the admin token, the embedded store, the local KMS keys, the
// warm-up file); a path the file names itself stays where it says.
func TestPathsFollowDataDir(t *testing.T) {
	for _, tc := range []struct {
		name, yaml                        string
		token, store, warmup, localKMSDir string
	}{
		{"defaults", "", "rkms-data/admin.token", "rkms-data/keys.db", "rkms-data/recent-key-ids", "rkms-data/local-kms"},
		{"data_dir alone", "data_dir: /x\n", "/x/admin.token", "/x/keys.db", "/x/recent-key-ids", "/x/local-kms"},
		{"relative data_dir", "data_dir: var/rkms\n", "var/rkms/admin.token", "var/rkms/keys.db", "var/rkms/recent-key-ids", "var/rkms/local-kms"},
		{"explicit paths stay", "data_dir: /x\nadmin: {token_file: /etc/rkms/token}\nstore: {embedded: {path: /db/keys.db}}\n" +
			"cache: {warmup: {file: /run/ids}}\n", "/etc/rkms/token", "/db/keys.db", "/run/ids", "/x/local-kms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			got := [4]string{cfg.Admin.TokenFile, cfg.Store.Embedded.Path, cfg.Cache.Warmup.File, cfg.LocalKMSDir()}
			want := [4]string{filepath.FromSlash(tc.token), filepath.FromSlash(tc.store), filepath.FromSlash(tc.warmup), filepath.FromSlash(tc.localKMSDir)}
			if got != want {
				t.Errorf("token, store, warm-up, local kms = %q, want %q", got, want)
			}
		})
	}
}

// TestLoadFollowsDataDir: the same through Load, the path `rkms serve --config` takes.
func TestLoadFollowsDataDir(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rkms.yaml")
	writeFile(t, p, "data_dir: /srv/rkms\n")
	cfg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin.TokenFile != "/srv/rkms/admin.token" || cfg.Store.Embedded.Path != "/srv/rkms/keys.db" {
		t.Fatalf("token %s, store %s", cfg.Admin.TokenFile, cfg.Store.Embedded.Path)
	}
}
