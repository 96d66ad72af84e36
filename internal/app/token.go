package app

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rkms/rkms/internal/config"
)

// adminToken returns the admin bearer token: RKMS_ADMIN_TOKEN if set (config.EnvAdminToken), else the content of path,
// else a new random token written to path (0600). generated reports the last case, so that the
// caller can print where the token is. A token shorter than 16 characters is refused whatever
// its source, and so is a token file that group or others may read or write (the rules of
// config.CheckToken and config.ReadTokenFile, which admin.credentials follow too).
func adminToken(path string) (token string, generated bool, err error) {
	if t := config.EnvAdminToken(); t != "" {
		return t, false, config.CheckToken(config.AdminTokenEnv, t)
	}
	t, err := config.ReadTokenFile(path)
	switch {
	case err == nil:
		return t, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", false, fmt.Errorf("admin %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", false, fmt.Errorf("generate admin token: %w", err)
	}
	t = base64.RawURLEncoding.EncodeToString(raw)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, fmt.Errorf("create admin token dir: %w", err)
	}
	// O_EXCL: two processes starting at once must not overwrite each other's token.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return adminToken(path)
	}
	if err != nil {
		return "", false, fmt.Errorf("write admin token: %w", err)
	}
	if _, err := f.WriteString(t + "\n"); err != nil {
		f.Close()
		return "", false, fmt.Errorf("write admin token: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", false, fmt.Errorf("write admin token: %w", err)
	}
	return t, true, nil
}
