package config

import "path/filepath"

// The files rkms keeps under data_dir when the configuration names no other place. Each has one
// owner here: a data_dir set in the file moves all of them.
const (
	tokenFileName   = "admin.token"    // admin.token_file
	storeFileName   = "keys.db"        // store.embedded.path
	warmupFileName  = "recent-key-ids" // cache.warmup.file
	localKMSDirName = "local-kms"      // the master keys of kms.provider local (no key of its own)
)

// fillDataPaths sets every path that defaults under data_dir and is still empty.
func (c *Config) fillDataPaths() {
	if c.DataDir == "" {
		return // reported by the check
	}
	for _, f := range []struct {
		p    *string
		name string
	}{
		{&c.Admin.TokenFile, tokenFileName},
		{&c.Store.Embedded.Path, storeFileName},
		{&c.Cache.Warmup.File, warmupFileName},
	} {
		if *f.p == "" {
			*f.p = filepath.Join(c.DataDir, f.name)
		}
	}
}

// LocalKMSDir is where kms.provider local keeps the master keys of its regions: DATA_DIR/local-kms.
func (c *Config) LocalKMSDir() string { return filepath.Join(c.DataDir, localKMSDirName) }
