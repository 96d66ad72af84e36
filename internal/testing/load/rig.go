package load

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/rkms/rkms/extproc"
	"github.com/rkms/rkms/internal/keysource"
	"github.com/rkms/rkms/keyring"
	"github.com/rkms/rkms/keyring/localkms"
	"github.com/rkms/rkms/store"
)

// Rig is an rkms ext_proc server with a real keyring: one software KMS region (localkms) and an
// in-memory store, both behind call counters.
type Rig struct {
	Server  *extproc.Server
	Keyring *keyring.Keyring
	Store   *CountingStore
	Region  *CountingRegion
}

// NewRig builds the server. dir holds the localkms master key. The key cache lives for an hour,
// so that no entry expires during a run. slow, if not nil, turns on the server's slow-stream
// trace (extproc.Options.SlowTrace).
func NewRig(dir string, slow *extproc.SlowTraceOptions) (*Rig, error) {
	region, err := localkms.Open(dir, "local-1", slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, fmt.Errorf("load rig: %w", err)
	}
	r := &Rig{Store: NewCountingStore(store.NewMemory()), Region: &CountingRegion{Region: region}}
	r.Keyring, err = keyring.New(r.Store, []keyring.Region{r.Region}, keyring.Options{CacheTTL: time.Hour,
		CreateRate: -1,       // the rig creates its own tenants' keys up front (Warm): no creation limit
		MaxSeals:   1 << 30}) // seals are counted as with the default keyring.rotation.max_seals
	if err != nil {
		return nil, fmt.Errorf("load rig: %w", err)
	}
	r.Server, err = extproc.NewServer(Policies(), keysource.Keyring{K: r.Keyring}, extproc.Options{SlowTrace: slow})
	if err != nil {
		r.Keyring.Close()
		return nil, fmt.Errorf("load rig: %w", err)
	}
	return r, nil
}

// Warm creates (and so caches) the keys of tenants 0..n-1 and reserves their first block of
// seals, with a few workers.
func (r *Rig) Warm(ctx context.Context, n int) error {
	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				dk, err := r.Keyring.Get(ctx, KeyID(i))
				if err == nil {
					// Reserve the first block of seals, as a replica in service holds one: the
					// store may be released after warming.
					err = r.Keyring.ReserveSeals(ctx, KeyID(i), dk.Version, 1)
				}
				if err != nil {
					errs <- fmt.Errorf("warm key %s: %w", KeyID(i), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// Close releases the keyring.
func (r *Rig) Close() error { return r.Keyring.Close() }
