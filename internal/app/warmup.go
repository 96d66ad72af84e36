package app

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rkms/rkms/internal/config"
	"github.com/rkms/rkms/keyring"
)

// warmup is the start-up cache warm-up (config cache.warmup): a running replica saves the ids of
// its most recently used keys (never the keys) to a file in its data dir; at the next start it
// unwraps them before it reports ready.
//
// A file per replica, rather than a list in the key store: it costs the store nothing (no write
// per key use, no scan, which the store interface does not have) and lists exactly what this
// replica served, but it only helps a replica that restarts with the same data dir; a brand-new
// replica starts cold, and a crash loses the uses since the last save (SaveInterval).
type warmup struct {
	cfg   config.Warmup
	path  string
	kr    *keyring.Keyring
	log   *slog.Logger
	ready atomic.Bool
	saved atomic.Bool // the file was written by this run (or warm-up is done): saving is safe
}

func newWarmup(cfg *config.Config, kr *keyring.Keyring, log *slog.Logger) *warmup {
	// cache.warmup.file defaults to DATA_DIR/recent-key-ids (config fills it in).
	w := &warmup{cfg: cfg.Cache.Warmup, path: cfg.Cache.Warmup.File, kr: kr, log: log}
	if !w.cfg.Enabled {
		w.ready.Store(true)
	}
	return w
}

// run warms the cache from the saved ids (at most Timeout), marks the replica ready and calls
// onReady. Without warm-up it only calls onReady.
func (w *warmup) run(ctx context.Context, onReady func()) {
	defer onReady()
	if !w.cfg.Enabled {
		return
	}
	defer func() { w.ready.Store(true); w.saved.Store(true) }()
	ids, err := readIDs(w.path, w.cfg.MaxKeys)
	if err != nil {
		w.log.Warn("cache warm-up: cannot read the saved key ids; starting cold", "file", w.path, "err", err)
		return
	}
	if len(ids) == 0 {
		w.log.Info("cache warm-up: no saved key ids", "file", w.path)
		return
	}
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	res, err := w.kr.Warm(wctx, ids)
	attrs := []any{"ids", len(ids), "loaded", res.Loaded, "missing", res.Missing, "failed", res.Failed,
		"duration", time.Since(start).Round(time.Millisecond).String()}
	if err != nil {
		w.log.Warn("cache warm-up incomplete", append(attrs, "err", err)...)
		return
	}
	w.log.Info("cache warm-up done", attrs...)
}

// saveLoop saves the recent ids every SaveInterval until ctx ends.
func (w *warmup) saveLoop(ctx context.Context) {
	if !w.cfg.Enabled {
		return
	}
	t := time.NewTicker(w.cfg.SaveInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.save()
		}
	}
}

// save writes the cache's most recent ids. Before warm-up is done it does nothing, so that an
// early stop cannot replace a full list by a partial one.
func (w *warmup) save() {
	if !w.cfg.Enabled || !w.saved.Load() {
		return
	}
	if err := writeIDs(w.path, w.kr.RecentIDs(w.cfg.MaxKeys)); err != nil {
		w.log.Warn("cache warm-up: cannot save the recent key ids", "file", w.path, "err", err)
	}
}

// readIDs reads at most max valid, distinct ids from path, one per line; a missing file is no ids.
func readIDs(path string, max int) ([]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, int64(max)*(keyring.MaxIDLen+1)))
	sc.Buffer(make([]byte, 0, 4096), keyring.MaxIDLen+1)
	seen := make(map[string]bool)
	var ids []string
	for sc.Scan() && len(ids) < max {
		id := strings.TrimSpace(sc.Text())
		if keyring.ValidateID(id) != nil || seen[id] {
			continue
		}
		seen[id] = true
		ids = append(ids, id)
	}
	if err := sc.Err(); err != nil {
		return ids, fmt.Errorf("read %s: %w", path, err)
	}
	return ids, nil
}

// writeIDs replaces path atomically with ids, one per line, mode 0600.
func writeIDs(path string, ids []string) error {
	var b bytes.Buffer
	for _, id := range ids {
		b.WriteString(id)
		b.WriteByte('\n')
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".recent-key-ids-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(b.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// readyKeyring reports not ready until the warm-up is done; everything else is the keyring's.
type readyKeyring struct {
	*keyring.Keyring
	w *warmup
}

// errWarming is what /readyz says while the cache is warming up.
var errWarming = fmt.Errorf("cache warm-up in progress: %w", keyring.ErrUnavailable)

func (r readyKeyring) Ready(ctx context.Context) error {
	if !r.w.ready.Load() {
		return errWarming
	}
	return r.Keyring.Ready(ctx)
}
